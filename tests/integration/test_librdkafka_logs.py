"""librdkafka's own lines reach Python logging from real clients, and a worker's JSON log."""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient

from core.kafka_logs import served
from core.settings import Settings


def unused_port() -> int:
    """A port nothing listens on (bound once by the OS to pick it, then let go)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def settings_for(port: int) -> Settings:
    return Settings(kafka={"bootstrap_servers": f"127.0.0.1:{port}"})


def librdkafka_records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name.startswith("cqrs.librdkafka")]


def test_a_polled_producer_that_cannot_connect_logs_an_error_record(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    port = unused_port()
    producer = Producer(settings_for(port).kafka.confluent_config())
    producer.produce("t", b"x")  # a producer connects when it has something to send
    deadline = time.monotonic() + 15
    while not librdkafka_records(caplog) and time.monotonic() < deadline:
        producer.poll(0.2)
    producer.purge()
    (record,) = librdkafka_records(caplog)  # repeats within the window are held back
    assert (record.name, record.levelname) == ("cqrs.librdkafka.producer", "ERROR")
    message = record.getMessage()
    assert message.startswith("FAIL [cqrs#producer-") and f"127.0.0.1:{port}" in message
    assert "Connection refused" in message and "%3|" not in message


def test_an_admin_client_nobody_polls_still_logs_when_served(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    port = unused_port()
    admin = served(AdminClient(settings_for(port).kafka.confluent_config()))
    with pytest.raises(Exception, match="Failed to get metadata"):
        admin.list_topics(timeout=3)
    deadline = time.monotonic() + 10
    while not librdkafka_records(caplog) and time.monotonic() < deadline:
        time.sleep(0.2)
    (record,) = librdkafka_records(caplog)
    assert record.levelname == "ERROR" and f"127.0.0.1:{port}" in record.getMessage()


def test_a_worker_writes_librdkafkas_lines_as_json_records(tmp_path: Path) -> None:
    port = unused_port()
    stderr = tmp_path / "stderr"
    env = {
        **os.environ,
        "CQRS_KAFKA__BOOTSTRAP_SERVERS": f"127.0.0.1:{port}",
        "CQRS_OBSERVABILITY__LOG_FORMAT": "json",
        "CQRS_OBSERVABILITY__PORT": "0",
        "CQRS_PROCESSOR__DATADIR": str(tmp_path / "data"),
    }
    with stderr.open("w") as sink:
        worker = subprocess.Popen(
            [sys.executable, "-m", "cqrs", "worker"], stdout=sink, stderr=sink, env=env
        )
    try:
        deadline = time.monotonic() + 30
        while "cqrs.librdkafka" not in stderr.read_text() and time.monotonic() < deadline:
            assert worker.poll() is None, stderr.read_text()
            time.sleep(0.2)
        time.sleep(2)  # more reconnect attempts: they must not add lines
    finally:
        worker.terminate()
        worker.wait(timeout=30)
    lines = stderr.read_text().splitlines()
    assert not [line for line in lines if line.startswith("%")], lines  # librdkafka's own
    records = [json.loads(line) for line in lines]
    failed = [r for r in records if r["logger"].startswith("cqrs.librdkafka")]
    assert len(failed) == 1, failed
    (record,) = failed
    assert record["level"] == "ERROR" and record["kafka_facility"] == "FAIL"
    assert record["kafka_client"].startswith("cqrs#") and f"127.0.0.1:{port}" in record["message"]
