"""Exactly-once on a minimal Faust app: counts survive a restart via the changelog.

The app runs on the product's transactional layer; its second life is sent
records while it restores its table, and must lose and repeat none of them.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections import defaultdict
from pathlib import Path

from confluent_kafka import Consumer, Producer

from cqrs.settings import Settings
from tests.integration.conftest import TopicFactory

ROOT = Path(__file__).resolve().parents[2]
KEYS = [b"alpha", b"beta", b"gamma"]


def _start_worker(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            [
                sys.executable,
                "-m",
                "faust",
                "-A",
                "tests.integration.apps.faust_counter",
                "worker",
                "--without-web",
                "-l",
                "info",
            ],
            cwd=ROOT,
            env={**os.environ, **env},
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def _stop_worker(worker: subprocess.Popen[bytes]) -> None:
    worker.send_signal(signal.SIGTERM)
    try:
        worker.wait(60)
    except subprocess.TimeoutExpired:
        worker.kill()
        worker.wait()


def _produce_round(settings: Settings, topic: str, per_key: int) -> None:
    producer = Producer(settings.kafka.confluent_config())
    for i in range(per_key):
        for key in KEYS:
            producer.produce(topic, key=key, value=str(i).encode())
    assert producer.flush(30) == 0


def _value(consumer: Consumer) -> str | None:
    message = consumer.poll(0.5)
    if message is None or message.error():
        return None
    value = message.value()
    return None if value is None else value.decode()


def _collect(
    consumer: Consumer, expected: int, worker: subprocess.Popen[bytes], log: Path
) -> list[str]:
    values: list[str] = []
    deadline = time.monotonic() + 120
    while len(values) < expected and time.monotonic() < deadline:
        assert worker.poll() is None, f"worker died:\n{log.read_text()[-3000:]}"
        if (value := _value(consumer)) is not None:
            values.append(value)
    end = time.monotonic() + 3  # anything beyond the expected count is a duplicate
    while time.monotonic() < end:
        if (value := _value(consumer)) is not None:
            values.append(value)
    return values


def _counts_by_key(values: list[str]) -> dict[str, list[int]]:
    by_key: dict[str, list[int]] = defaultdict(list)
    for value in values:
        name, count = value.split("=")
        by_key[name].append(int(count))
    return by_key


def test_table_is_restored_from_changelog_after_restart(
    local_stack: Settings, new_topic: TopicFactory, tmp_path: Path
) -> None:
    source = new_topic("faust-in", partitions=2)
    output = new_topic("faust-out", partitions=2)
    env = {
        "SMOKE_APP_ID": f"smoke-{uuid.uuid4().hex[:8]}",
        "SMOKE_BOOTSTRAP": local_stack.kafka.bootstrap_servers,
        "SMOKE_IN": source,
        "SMOKE_OUT": output,
    }
    consumer = Consumer(
        {
            **local_stack.kafka.confluent_config(),
            "group.id": f"smoke-{uuid.uuid4().hex}",
            "auto.offset.reset": "earliest",
            "isolation.level": "read_committed",
        }
    )
    consumer.subscribe([output])
    log = tmp_path / "worker.log"
    try:
        # First life: an in-memory table, so the second life can only know the
        # counts by replaying the changelog topic.
        worker = _start_worker({**env, "SMOKE_DATADIR": str(tmp_path / "life-1")}, log)
        _produce_round(local_stack, source, per_key=10)
        first = _collect(consumer, 30, worker, log)
        _stop_worker(worker)

        worker = _start_worker({**env, "SMOKE_DATADIR": str(tmp_path / "life-2")}, log)
        _produce_round(local_stack, source, per_key=5)
        second = _collect(consumer, 15, worker, log)
        _stop_worker(worker)
    finally:
        consumer.close()

    first_counts = _counts_by_key(first)
    second_counts = _counts_by_key(second)
    for key in (k.decode() for k in KEYS):
        assert first_counts[key] == list(range(1, 11)), first
        assert second_counts[key] == list(range(11, 16)), second
