"""Dead-letter tooling against the real stack: letters the real worker wrote, listed,
shown, replayed once, skipped the second time, replayed again when asked."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, replace

import pytest
from confluent_kafka import Consumer, Message, Producer, TopicPartition

from core.errors import AvroDecodeError, DeadLetterNotFoundError
from core.settings import Settings
from cqrs.client import CommandClient
from cqrs.dead_letter_tools import (
    DeadLetter,
    DeadLetterRef,
    Matching,
    Outcome,
    list_dead_letters,
    parse_selection,
    replay_dead_letters,
    show_dead_letter,
)
from schemas.dead_letters import REPLAYED_FROM, dead_letter_headers
from tests.integration.event_log import ADDRESS
from tests.integration.pipeline import Pipeline

TRACE = ("traceparent", b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")


@dataclass(frozen=True)
class Letters:
    """What the module's worker dead-lettered: keys of each kind of letter."""

    pipeline: Pipeline
    raw_key: str  # not Avro at all: NOT_CONFLUENT_FRAMED
    order_id: str  # a PlaceOrder without lines: ORDER_HAS_NO_LINES, decodes
    replayed_key: str  # an unknown schema id: UNKNOWN_SCHEMA_ID, the one replayed
    event_key: str  # written to events-dlq as a sink would


@pytest.fixture(scope="module")
def letters(local_stack: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Letters]:
    pipeline = Pipeline.create(
        local_stack, tmp_path_factory.mktemp("logs"), tmp_path_factory.mktemp("state")
    )
    settings = pipeline.settings
    prefix = settings.kafka.topic_prefix
    found = Letters(pipeline, _unique("sku"), _unique("o"), _unique("sku"), _unique("o"))
    worker = pipeline.process("worker", name="worker")
    worker.start()
    try:
        producer = Producer({**settings.kafka.confluent_config(), "partitioner": "murmur2_random"})
        for key, value in (
            (found.raw_key, b"not avro at all"),
            (found.replayed_key, b"\x00\x7f\xff\xff\xf0garbage"),
        ):
            producer.produce(prefix + "commands", key=key.encode(), value=value, headers=[TRACE])
        producer.flush(10)
        with CommandClient(settings) as client:
            empty = {"customer_id": "c", "shipping_address": ADDRESS, "lines": []}
            refused = client.send_and_wait("PlaceOrder", found.order_id, empty)
            assert refused.rejection_code == "ORDER_HAS_NO_LINES"
            # Commands of one key are decided in order: these answer after the bad records.
            for key in (found.raw_key, found.replayed_key):
                assert client.send_and_wait("RegisterItem", key, {"name": "x"}).accepted
    finally:
        worker.stop()  # replayed commands stay where they land, to be looked at
    error = AvroDecodeError("Avro body of schema id 1 (cqrs.events.X) is corrupt")
    headers: list[tuple[str, str | bytes | None]] = [
        *dead_letter_headers(
            error,
            topic=prefix + "events",
            partition=0,
            offset=7,
            timestamp_ms=1_700_000_000_000,
            component="sink-order-summary",
            component_class="cqrs.sinks.SinkRunner",
        )
    ]
    producer.produce(
        prefix + "events-dlq",
        key=found.event_key.encode(),
        value=b"\x00\x00\x00\x00\x01\x02",
        headers=headers,
    )
    producer.flush(10)
    yield found


def _unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def _by_key(letters: list[DeadLetter]) -> dict[str | None, DeadLetter]:
    return {letter.key: letter for letter in letters}


def test_every_dead_letter_is_listed_with_what_failed_and_where_it_came_from(
    letters: Letters,
) -> None:
    settings = letters.pipeline.settings
    prefix = settings.kafka.topic_prefix
    listed = list_dead_letters(settings)
    assert len(listed) == 4
    found = _by_key(listed)
    raw = found[letters.raw_key]
    assert (raw.topic, raw.code, raw.error_class) == (
        prefix + "commands-dlq",
        "NOT_CONFLUENT_FRAMED",
        "InputRejectedError",  # the worker's wrapper of whatever refused the input
    )
    assert raw.component == "command-processor"
    assert raw.original_topic == prefix + "commands" and raw.original_offset is not None
    assert raw.age_s is not None and 0 <= raw.age_s < 600
    assert not raw.replayed and raw.replay is None and not raw.key_is_hex
    assert found[letters.order_id].code == "ORDER_HAS_NO_LINES"
    assert found[letters.replayed_key].code == "UNKNOWN_SCHEMA_ID"
    sink = found[letters.event_key]
    assert (sink.topic, sink.code, sink.component, sink.original) == (
        prefix + "events-dlq",
        "AVRO_DECODE_FAILED",
        "sink-order-summary",
        f"{prefix}events/0/7",
    )
    assert [letter.timestamp_ms or 0 for letter in listed] == sorted(
        letter.timestamp_ms or 0 for letter in listed
    )

    assert len(list_dead_letters(settings, topic="commands-dlq")) == 3
    [only] = list_dead_letters(settings, topic=prefix + "events-dlq")
    assert replace(only, age_s=None) == replace(sink, age_s=None)
    [coded] = list_dead_letters(settings, code="UNKNOWN_SCHEMA_ID")
    assert coded.key == letters.replayed_key
    assert len(list_dead_letters(settings, limit=2)) == 2


def test_the_command_line_lists_as_json_and_as_a_table(
    letters: Letters, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "200")  # the table's cells unwrapped, to be searched
    run = letters.pipeline.cli("dlq", "list", "--topic", "commands-dlq", "--json")
    assert run.returncode == 0, run.stderr
    listed = json.loads(run.stdout)
    assert {item["key"] for item in listed} == {
        letters.raw_key,
        letters.order_id,
        letters.replayed_key,
    }
    assert all(
        item["ref"] == f"{item['topic']}/{item['partition']}/{item['offset']}" for item in listed
    )
    table = letters.pipeline.cli("dlq", "list", "--code", "ORDER_HAS_NO_LINES")
    assert table.returncode == 0 and "ORDER_HAS_NO_LINES" in table.stdout, table
    assert "NOT_CONFLUENT_FRAMED" not in table.stdout


def test_a_decodable_dead_letter_is_shown_decoded_with_every_header(letters: Letters) -> None:
    settings = letters.pipeline.settings
    letter = _by_key(list_dead_letters(settings))[letters.order_id]
    detail = show_dead_letter(settings, "commands-dlq", letter.partition, letter.offset)
    assert detail.letter == replace(letter, age_s=detail.letter.age_s)
    assert detail.decoded and detail.record_type == "cqrs.commands.PlaceOrder"
    assert detail.value is not None and detail.value["metadata"]["aggregate_id"] == letters.order_id
    assert detail.value["lines"] == [] and detail.value_hex is None
    names = [name for name, _ in detail.headers]
    assert names[:3] == ["error.class", "error.code", "error.message"]
    assert dict(detail.headers)["__connect.errors.stage"] == "TASK_PUT"
    json.dumps(detail.as_dict())  # JSON-ready as it is


def test_an_undecodable_dead_letter_is_shown_raw_with_the_reason(letters: Letters) -> None:
    settings = letters.pipeline.settings
    letter = _by_key(list_dead_letters(settings))[letters.raw_key]
    detail = show_dead_letter(settings, letter.topic, letter.partition, letter.offset)
    assert not detail.decoded and detail.value is None
    assert detail.value_hex == b"not avro at all".hex() and detail.value_size == 15
    assert detail.undecoded_reason is not None
    assert detail.undecoded_reason.startswith("NOT_CONFLUENT_FRAMED: not Confluent-framed Avro")
    assert dict(detail.headers)[TRACE[0]] == TRACE[1].decode()  # the record's own, kept
    run = letters.pipeline.cli("dlq", "show", str(letter.ref))
    assert run.returncode == 0, run.stderr
    assert "not decoded: NOT_CONFLUENT_FRAMED" in run.stdout and str(letter.ref) in run.stdout


def test_showing_an_offset_holding_no_dead_letter_says_why(letters: Letters) -> None:
    settings = letters.pipeline.settings
    letter = _by_key(list_dead_letters(settings))[letters.raw_key]
    with pytest.raises(DeadLetterNotFoundError, match="beyond the end of the partition"):
        show_dead_letter(settings, letter.topic, letter.partition, 10_000)
    run = letters.pipeline.cli("dlq", "show", letter.topic, "99", "0")
    assert run.returncode == 1 and run.stderr.strip().endswith("has no partition 99"), run


def test_a_replay_happens_once_unless_asked_again(letters: Letters) -> None:
    pipeline = letters.pipeline
    settings = pipeline.settings
    commands = settings.kafka.topic_prefix + "commands"
    letter = _by_key(list_dead_letters(settings))[letters.replayed_key]
    ref = parse_selection(str(letter.ref))

    dry = replay_dead_letters(settings, [ref], dry_run=True)
    assert (dry.planned, dry.replayed, dry.skipped, dry.failed) == (1, 0, 0, 0)
    before = _end_offsets(settings, commands)
    cli_dry = pipeline.cli("dlq", "replay", str(ref))
    assert cli_dry.returncode == 0 and "Add --yes to replay them" in cli_dry.stdout, cli_dry
    assert _end_offsets(settings, commands) == before  # a dry run writes nothing

    first = replay_dead_letters(settings, [ref], by="ops@test")
    assert (first.replayed, first.skipped, first.failed) == (1, 0, 0)
    [outcome] = first.outcomes
    assert (outcome.ref, outcome.outcome, outcome.target_topic) == (
        str(ref),
        Outcome.REPLAYED,
        commands,
    )
    assert outcome.target_partition is not None and outcome.target_offset is not None
    original = _record_at(settings, commands, letter.original_partition, letter.original_offset)
    replayed = _record_at(settings, commands, outcome.target_partition, outcome.target_offset)
    assert (replayed.key(), replayed.value()) == (original.key(), original.value())
    assert replayed.partition() == original.partition()  # the key's partition, as before
    assert replayed.headers() == [*(original.headers() or []), (REPLAYED_FROM, str(ref).encode())]
    assert original.headers() == [TRACE]

    marks = _replay_records(settings)
    assert list(marks) == [str(ref)]
    assert marks[str(ref)]["target_offset"] == outcome.target_offset
    assert marks[str(ref)]["by"] == "ops@test"
    assert _by_key(list_dead_letters(settings))[letters.replayed_key].replayed

    after_first = _end_offsets(settings, commands)
    second = replay_dead_letters(settings, [ref])
    assert (second.replayed, second.skipped, second.failed) == (0, 1, 0)
    assert "already replayed" in str(second.outcomes[0].reason)
    cli_second = pipeline.cli("dlq", "replay", str(ref), "--yes")
    assert cli_second.returncode == 0 and "0 replayed, 1 skipped, 0 failed" in cli_second.stdout
    assert _end_offsets(settings, commands) == after_first  # nothing produced, no transaction

    again = replay_dead_letters(settings, [Matching(code="UNKNOWN_SCHEMA_ID")], again=True)
    assert (again.replayed, again.skipped, again.failed) == (1, 0, 0)
    assert again.outcomes[0].target_offset is not None
    assert again.outcomes[0].target_offset > outcome.target_offset
    assert _replay_records(settings)[str(ref)]["target_offset"] == again.outcomes[0].target_offset


def test_a_sinks_dead_letter_is_never_replayed_into_the_event_log(letters: Letters) -> None:
    settings = letters.pipeline.settings
    events = settings.kafka.topic_prefix + "events"
    before = _end_offsets(settings, events)
    report = replay_dead_letters(settings, [Matching(topic="events-dlq")])
    assert (report.replayed, report.failed) == (0, 1)
    assert "is the event log and is never written to" in str(report.outcomes[0].reason)
    missing = DeadLetterRef("commands-dlq", 0, 10_000)
    gone = replay_dead_letters(settings, [missing])
    assert gone.failed == 1 and "beyond the end" in str(gone.outcomes[0].reason)
    run = letters.pipeline.cli("dlq", "replay", "--topic", "events-dlq", "--yes")
    assert run.returncode == 1 and "0 replayed, 0 skipped, 1 failed" in run.stdout, run
    assert _end_offsets(settings, events) == before


def _consumer(settings: Settings) -> Consumer:
    return Consumer(
        {
            **settings.kafka.confluent_config(),
            "group.id": uuid.uuid4().hex,
            "enable.auto.commit": False,
            "isolation.level": "read_committed",
            "enable.partition.eof": True,
        }
    )


def _end_offsets(settings: Settings, topic: str) -> list[int]:
    """The high watermark of every partition: a transaction moves it (its marker) even
    when it carries no record."""
    consumer = _consumer(settings)
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        return [
            consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
            for p in sorted(partitions)
        ]
    finally:
        consumer.close()


def _record_at(
    settings: Settings, topic: str, partition: int | None, offset: int | None
) -> Message:
    assert partition is not None and offset is not None
    consumer = _consumer(settings)
    try:
        consumer.assign([TopicPartition(topic, partition, offset)])
        message = consumer.poll(10)
        assert message is not None and message.error() is None, message
        assert message.offset() == offset
        return message
    finally:
        consumer.close()


def _replay_records(settings: Settings) -> dict[str, dict[str, object]]:
    topic = settings.kafka.topic_prefix + "dead-letter-replays"
    consumer = _consumer(settings)
    found: dict[str, dict[str, object]] = {}
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        for partition in sorted(partitions):
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), 10)
            if high <= low:
                continue
            consumer.assign([TopicPartition(topic, partition, low)])
            while (message := consumer.poll(10)) is not None and message.error() is None:
                found[(message.key() or b"").decode()] = json.loads(message.value() or b"")
    finally:
        consumer.close()
    return found
