"""librdkafka's lines as Python records: their loggers, the repeats held back, the JSON fields."""

from __future__ import annotations

import json
import logging

import pytest

from core.kafka_logs import LibrdkafkaLog, RepeatGate
from core.logs import JsonFormatter, configure_logging, keep_librdkafka_back

FAIL = "127.0.0.1:9/bootstrap: Connect to ipv4#127.0.0.1:9 failed: Connection refused"


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_repeat_is_held_back_for_the_window_and_counted_when_the_next_goes_through() -> None:
    clock = Clock()
    gate = RepeatGate(window_s=30, clock=clock)
    assert gate.admit("a") == 0
    assert [gate.admit("a") for _ in range(3)] == [None, None, None]
    assert gate.admit("b") == 0  # another line has a window of its own
    clock.now = 30.0
    assert gate.admit("a") == 3
    assert gate.admit("a") is None


def lines(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name.startswith("cqrs.librdkafka")]


def test_confluent_kafkas_call_becomes_a_record_of_the_clients_kind(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    log = LibrdkafkaLog(RepeatGate(window_s=30, clock=Clock()))
    # confluent-kafka calls logger.log(python_level, "%s [%s] %s", facility, client, text)
    log.log(logging.ERROR, "%s [%s] %s", "FAIL", "cqrs#consumer-2", FAIL + " (after 0ms)")
    log.log(logging.WARNING, "%s [%s] %s", "SESSTMOUT", "cqrs#producer-1", "session timed out")
    first, second = lines(caplog)
    assert (first.name, first.levelno) == ("cqrs.librdkafka.consumer", logging.ERROR)
    assert first.getMessage() == f"FAIL [cqrs#consumer-2] {FAIL} (after 0ms)"
    assert (first.__dict__["kafka_facility"], first.__dict__["kafka_client"]) == (
        "FAIL",
        "cqrs#consumer-2",
    )
    assert (second.name, second.levelno) == ("cqrs.librdkafka.producer", logging.WARNING)


def test_the_same_failure_from_many_clients_is_one_line_per_window(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    clock = Clock()
    log = LibrdkafkaLog(RepeatGate(window_s=30, clock=clock))
    for attempt in range(200):
        client = f"cqrs#producer-{attempt % 7}"
        log.log(logging.ERROR, "%s [%s] %s", "FAIL", client, f"{FAIL} (after {attempt}ms)")
    assert len(lines(caplog)) == 1
    clock.now = 31.0
    log.log(logging.ERROR, "%s [%s] %s", "FAIL", "cqrs#producer-1", f"{FAIL} (after 3ms)")
    assert lines(caplog)[-1].getMessage().endswith("(199 identical lines held back)")


def test_a_level_the_logger_drops_is_not_counted_as_seen(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    log = LibrdkafkaLog(RepeatGate(window_s=30, clock=Clock()))
    log.log(logging.DEBUG, "%s [%s] %s", "BROKER", "cqrs#producer-1", "debug line")
    assert lines(caplog) == []


def test_json_records_carry_the_facility_and_the_client() -> None:
    record = logging.LogRecord("cqrs.librdkafka.producer", logging.ERROR, "", 0, "x", (), None)
    record.__dict__.update(kafka_facility="FAIL", kafka_client="cqrs#producer-1")
    entry = json.loads(JsonFormatter().format(record))
    assert entry["level"] == "ERROR" and entry["logger"] == "cqrs.librdkafka.producer"
    assert (entry["kafka_facility"], entry["kafka_client"]) == ("FAIL", "cqrs#producer-1")
    plain = logging.LogRecord("cqrs.loop", logging.INFO, "", 0, "y", (), None)
    assert "kafka_client" not in json.loads(JsonFormatter().format(plain))


def test_one_shot_commands_keep_lines_back_until_logging_is_configured() -> None:
    librdkafka = logging.getLogger("cqrs.librdkafka")
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    try:
        keep_librdkafka_back()
        assert not librdkafka.isEnabledFor(logging.ERROR)
        assert librdkafka.isEnabledFor(logging.CRITICAL)
        configure_logging("INFO")
        assert librdkafka.getChild("consumer").isEnabledFor(logging.INFO)
    finally:
        root.handlers[:], level = saved
        root.setLevel(level)
        librdkafka.setLevel(logging.NOTSET)
