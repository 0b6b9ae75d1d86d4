"""The one dead-letter header contract: the product's names and Kafka Connect's."""

from __future__ import annotations

from core.errors import AvroDecodeError
from schemas.dead_letters import MAX_MESSAGE, dead_letter_headers


def headers_for(error: Exception) -> dict[str, str]:
    try:
        raise error
    except Exception as raised:  # raised, so that it carries a traceback
        found = dead_letter_headers(
            raised,
            topic="p-events",
            partition=2,
            offset=41,
            timestamp_ms=1_796_000_000_000,
            component="sink-books",
            component_class="cqrs.sinks.SinkRunner",
        )
    return {name: value.decode() for name, value in found}


def test_every_field_is_there_twice_where_connect_has_a_name_for_it() -> None:
    found = headers_for(ValueError("no such book"))
    assert found["error.class"] == "ValueError"
    assert found["error.code"] == "ValueError"  # no code of its own: its class
    assert found["original.topic"] == found["__connect.errors.topic"] == "p-events"
    assert found["original.partition"] == found["__connect.errors.partition"] == "2"
    assert found["original.offset"] == found["__connect.errors.offset"] == "41"
    assert found["original.timestamp"] == "1796000000000"
    assert found["dead_letter.component"] == found["__connect.errors.connector.name"]
    assert found["__connect.errors.exception.class.name"] == "builtins.ValueError"
    assert found["__connect.errors.exception.message"] == "no such book"
    assert "raise error" in found["__connect.errors.exception.stacktrace"]
    assert found["__connect.errors.stage"] == "TASK_PUT"
    assert found["__connect.errors.task.id"] == "0"


def test_a_record_that_cannot_be_decoded_is_a_converter_failure_with_its_code() -> None:
    found = headers_for(AvroDecodeError("bad bytes"))
    assert found["__connect.errors.stage"] == "VALUE_CONVERTER"
    assert found["error.code"] == AvroDecodeError.code


def test_long_messages_are_cut() -> None:
    found = headers_for(ValueError("x" * 5000))
    assert len(found["error.message"]) == MAX_MESSAGE
