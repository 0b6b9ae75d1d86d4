"""Dead letters as data: selections, header decoding, replayed headers, the skip rule."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from uuid import UUID

import pytest

from core.errors import BadSelectionError, DeadLetterNotFoundError, NotConfluentFramedError
from cqrs.dead_letter_records import (
    DeadLetter,
    DeadLetterDetail,
    DeadLetterRef,
    Matching,
    Outcome,
    ReplayMark,
    dead_letter,
    key_text,
    last_header,
    parse_selection,
    reason_not_to_replay,
    replayed_headers,
    resolve_topic,
    selected,
    text_headers,
)
from cqrs.dead_letter_replay import ReplayOutcome, ReplayReport
from schemas.dead_letters import REPLAYED_FROM, dead_letter_headers, is_dead_letter_header

KNOWN = {"commands-dlq": "p1-commands-dlq", "events-dlq": "p1-events-dlq"}
TARGETS = frozenset({"p1-commands", "p1-events", "p1-fulfilment-inbox"})
MARK = ReplayMark("2030-01-01T00:00:00.000+00:00", "p1-commands", 2, 17, "ops@host")


def contract_headers(error: Exception | None = None) -> list[tuple[str, bytes]]:
    return dead_letter_headers(
        error or NotConfluentFramedError("not Confluent-framed Avro"),
        topic="p1-commands",
        partition=2,
        offset=41,
        timestamp_ms=1_796_000_000_000,
        component="command-processor",
        component_class="cqrs.command-processor",
    )


def letter(replay: ReplayMark | None = None, original: str | None = "p1-commands") -> DeadLetter:
    headers = [(n, v) for n, v in contract_headers() if original or n != "original.topic"]
    if original and original != "p1-commands":
        headers.append(("original.topic", original.encode()))
    return dead_letter(
        DeadLetterRef("p1-commands-dlq", 0, 5),
        b"sku-1",
        text_headers(headers),
        timestamp_ms=1_000_000,
        now_ms=1_090_500,
        replay=replay,
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("commands-dlq/0/42", DeadLetterRef("commands-dlq", 0, 42)),
        ("p1.x_y-dlq/11/0", DeadLetterRef("p1.x_y-dlq", 11, 0)),
    ],
)
def test_a_selection_names_topic_partition_and_offset(text: str, expected: DeadLetterRef) -> None:
    assert parse_selection(text) == expected
    assert str(expected) == text


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("commands-dlq", "is not TOPIC/PARTITION/OFFSET"),
        ("commands-dlq/1", "is not TOPIC/PARTITION/OFFSET"),
        ("commands-dlq/x/1", "the partition in 'commands-dlq/x/1' must be a number"),
        ("commands-dlq/1/-3", "the offset in 'commands-dlq/1/-3' must be a number"),
        ("commands-dlq/1/٣", "the offset"),  # a digit, but not one Kafka would print
        ("/1/2", "is not a Kafka topic name"),
        ("a b/1/2", "is not a Kafka topic name"),
    ],
)
def test_a_bad_selection_is_a_value_error_saying_what_is_wrong(text: str, says: str) -> None:
    with pytest.raises(BadSelectionError) as raised:
        parse_selection(text)
    assert says in str(raised.value)
    assert isinstance(raised.value, ValueError)


def test_a_matching_selection_needs_a_criterion_and_matches_both() -> None:
    with pytest.raises(BadSelectionError):
        Matching()
    found = letter()
    assert selected(found, Matching(code="NOT_CONFLUENT_FRAMED"))
    assert selected(found, Matching("p1-commands-dlq", "NOT_CONFLUENT_FRAMED"))
    assert not selected(found, Matching("p1-events-dlq", "NOT_CONFLUENT_FRAMED"))
    assert not selected(found, Matching("p1-commands-dlq", "UNKNOWN_SCHEMA_ID"))


def test_topics_are_named_logically_or_really_and_nothing_else() -> None:
    assert resolve_topic("commands-dlq", KNOWN) == "p1-commands-dlq"
    assert resolve_topic("p1-events-dlq", KNOWN) == "p1-events-dlq"
    with pytest.raises(DeadLetterNotFoundError, match="one of commands-dlq, events-dlq"):
        resolve_topic("commands", KNOWN)


def test_headers_become_text_and_the_dead_letters_own_value_wins() -> None:
    headers = text_headers(
        [
            ("error.code", b"THE_RECORDS_OWN"),
            ("blob", b"\xff\x00a"),
            ("none", None),
            ("error.code", b"NOT_CONFLUENT_FRAMED"),
            ("text", "already text"),
        ]
    )
    assert headers[1] == ("blob", "\\xff\x00a")  # not UTF-8: the bytes stay visible
    assert headers[2] == ("none", None)
    assert last_header(headers, "error.code") == "NOT_CONFLUENT_FRAMED"
    assert last_header(headers, "text") == "already text"
    assert last_header(headers, "missing") is None


def test_keys_are_text_when_utf8_and_hex_otherwise() -> None:
    assert key_text(b"sku-\xc3\xa9") == ("sku-é", False)
    assert key_text(b"\xff\x01") == ("ff01", True)
    assert key_text(None) == (None, False)


def test_a_dead_letter_is_read_from_the_contracts_headers() -> None:
    found = letter()
    assert (found.code, found.error_class) == ("NOT_CONFLUENT_FRAMED", "NotConfluentFramedError")
    assert found.message == "not Confluent-framed Avro"
    assert (found.original_topic, found.original_partition, found.original_offset) == (
        "p1-commands",
        2,
        41,
    )
    assert found.original == "p1-commands/2/41"
    assert found.component == "command-processor"
    assert (found.timestamp_ms, found.age_s) == (1_000_000, 90.5)
    assert (found.key, found.key_is_hex, found.replayed) == ("sku-1", False, False)
    assert found.as_dict()["ref"] == "p1-commands-dlq/0/5"
    assert letter(MARK).replayed and letter(MARK).as_dict()["replay"]["target_offset"] == 17


def test_a_record_with_no_contract_headers_lists_with_unknowns() -> None:
    found = dead_letter(
        DeadLetterRef("t", 0, 0), None, (), timestamp_ms=None, now_ms=0, replay=None
    )
    assert (found.code, found.original, found.age_s, found.key) == (None, "?/?/?", None, None)


def test_every_header_the_contract_writes_is_one_a_replay_removes() -> None:
    names = [name for name, _ in contract_headers()]
    assert all(is_dead_letter_header(name) for name in names)
    assert is_dead_letter_header(REPLAYED_FROM)
    assert not is_dead_letter_header("traceparent")


def test_a_replayed_record_keeps_its_own_headers_and_says_where_it_came_from() -> None:
    own = [("traceparent", b"00-abc-01"), ("binary", b"\xff\xfe"), ("empty", None)]
    earlier = [(REPLAYED_FROM, b"p1-commands-dlq/0/1")]  # it was replayed and dead again
    headers = replayed_headers(
        [*own, *earlier, *contract_headers()], DeadLetterRef("p1-commands-dlq", 0, 5)
    )
    assert headers == [*own, (REPLAYED_FROM, b"p1-commands-dlq/0/5")]


def test_a_replayed_dead_letter_is_skipped_unless_again() -> None:
    once = letter(MARK)
    skipped = reason_not_to_replay(
        once, again=False, targets=TARGETS, source_of_truth=frozenset({"p1-events"})
    )
    assert skipped is not None and skipped[0] is Outcome.SKIPPED
    assert "already replayed 2030-01-01" in skipped[1] and "p1-commands/2/17" in skipped[1]
    assert "--again" in skipped[1]
    assert (
        reason_not_to_replay(
            once, again=True, targets=TARGETS, source_of_truth=frozenset({"p1-events"})
        )
        is None
    )
    fresh = letter()
    assert (
        reason_not_to_replay(
            fresh, again=False, targets=TARGETS, source_of_truth=frozenset({"p1-events"})
        )
        is None
    )


@pytest.mark.parametrize(
    ("original", "says"),
    [
        (None, "no original.topic header"),
        ("p1-events", "is the event log and is never written to"),
        ("elsewhere", "elsewhere is not a topic of this pipeline"),
    ],
)
def test_a_dead_letter_goes_only_back_to_a_topic_of_the_pipeline_and_never_to_events(
    original: str | None, says: str
) -> None:
    found = reason_not_to_replay(
        letter(original=original),
        again=True,
        targets=TARGETS,
        source_of_truth=frozenset({"p1-events"}),
    )
    assert found is not None and found[0] is Outcome.FAILED and says in found[1]


def test_a_replay_record_reads_back_and_an_unreadable_one_still_marks_a_replay() -> None:
    assert ReplayMark.from_json(MARK.to_json()) == MARK
    assert json.loads(MARK.to_json())["by"] == "ops@host"
    broken = ReplayMark.from_json(b"{not json")
    assert broken.target_offset == -1 and "unreadable" in broken.by


def test_a_detail_is_json_ready_whatever_its_decoded_value_holds() -> None:
    value = {
        "blob": b"\x00\x01",
        "amount": Decimal("1.50"),
        "at": datetime(2030, 1, 1, tzinfo=UTC),
        "id": UUID(int=1),
        "lines": [{"n": 1}],
    }
    detail = DeadLetterDetail(letter(), (("a", "b"),), 12, "cqrs.X", 3, value, decoded=True)
    found = json.loads(json.dumps(detail.as_dict()))
    assert found["value"] == {
        "blob": "AAE=",
        "amount": "1.50",
        "at": "2030-01-01T00:00:00+00:00",
        "id": "00000000-0000-0000-0000-000000000001",
        "lines": [{"n": 1}],
    }
    assert found["headers"] == [["a", "b"]] and found["letter"]["code"] == "NOT_CONFLUENT_FRAMED"


def test_a_report_counts_each_outcome() -> None:
    report = ReplayReport.of(
        [
            ReplayOutcome("a/0/1", Outcome.REPLAYED, None, "t", 0, 9),
            ReplayOutcome("a/0/2", Outcome.SKIPPED, "already"),
            ReplayOutcome("a/0/3", Outcome.SKIPPED, "already"),
            ReplayOutcome("a/0/4", Outcome.FAILED, "gone"),
        ],
        dry_run=False,
    )
    assert (report.replayed, report.skipped, report.failed, report.planned) == (1, 2, 1, 0)
    assert json.loads(json.dumps(report.as_dict()))["outcomes"][1]["outcome"] == "skipped"
