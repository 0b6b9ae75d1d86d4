"""Exactly-once under failure: workers killed mid-stream and partitions moving between workers.

A steady stream of commands goes to many aggregates while workers crash or
join and leave; now and then a client retries an earlier command, often across
a crash or a move of its partition (``command_stream`` says what is checked).
Each runs with state in memory only and with state on local disk
(``sqlite://``), which a restarted worker completes from the changelog's tail.
"""

from __future__ import annotations

import contextlib
import re
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka.admin import AdminClient

from core.settings import Settings
from tests.integration.command_stream import CommandStream, check_exactly_once
from tests.integration.pipeline import Pipeline, read_topic


@pytest.fixture(params=["memory://", "sqlite://"])
def pipeline(local_stack: Settings, tmp_path: Path, request: pytest.FixtureRequest) -> Pipeline:
    created = Pipeline.create(local_stack, tmp_path, tmp_path / "state", partitions=4)
    created.env["CQRS_PROCESSOR__STORE"] = request.param
    return created


@pytest.fixture
def stream(pipeline: Pipeline) -> Iterator[CommandStream]:
    stream = CommandStream(pipeline)
    yield stream
    stream.stop()


def test_a_worker_killed_mid_stream_recovers_without_duplicates_or_gaps(
    pipeline: Pipeline, stream: CommandStream
) -> None:
    worker = pipeline.process("worker", name="worker")
    worker.start()
    stream.start()
    time.sleep(6)
    worker.kill()  # SIGKILL inside open transactions
    time.sleep(2)  # commands keep arriving while nobody processes them
    worker.start()
    time.sleep(6)
    worker.kill()
    worker.start()
    time.sleep(4)
    stream.stop()
    try:
        check_exactly_once(pipeline, stream)
    finally:
        worker.stop()


def test_two_workers_sharing_partitions_keep_every_guarantee_across_rebalances(
    pipeline: Pipeline, stream: CommandStream
) -> None:
    first = pipeline.process("worker", name="first")
    second = pipeline.process("worker", name="second")
    second.env = {**second.env, "CQRS_PROCESSOR__DATADIR": str(pipeline.logs / "second-state")}
    first.start()
    stream.start()
    time.sleep(5)
    second.start()  # partitions are split between the two
    time.sleep(6)
    first.stop()  # graceful leave: the second takes everything over
    time.sleep(5)
    first.start()  # and a join again
    time.sleep(5)
    second.kill()  # a crash while sharing
    time.sleep(5)
    stream.stop()
    try:
        check_exactly_once(pipeline, stream)
    finally:
        first.stop()
        second.stop()


def changelog_offsets(pipeline: Pipeline) -> int:
    """Offsets in the command processor's changelog (records and markers), all partitions."""
    admin = AdminClient(pipeline.settings.kafka.confluent_config())
    topic = f"{pipeline.settings.processor.app_id}-aggregates-changelog"
    metadata = admin.list_topics(topic, timeout=15).topics[topic]
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer({**pipeline.settings.kafka.confluent_config(), "group.id": "offsets"})
    try:
        return sum(
            consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
            for p in metadata.partitions
        )
    finally:
        consumer.close()


@pytest.mark.parametrize("pipeline", ["sqlite://"], indirect=True)
def test_a_worker_killed_restarts_from_its_local_state_reading_only_the_tail(
    pipeline: Pipeline, stream: CommandStream
) -> None:
    worker = pipeline.process("worker", name="worker")
    worker.start()
    stream.start()
    time.sleep(6)
    worker.kill()
    restarted_at = worker.log.stat().st_size
    total = changelog_offsets(pipeline)
    worker.start()
    time.sleep(3)
    stream.stop()
    try:
        check_exactly_once(pipeline, stream)
    finally:
        worker.stop()
    after = worker.output(restarted_at)
    loaded = re.findall(r"loaded \S+\[(\d+)\] from local state: (\d+) keys", after)
    assert sorted(int(partition) for partition, _ in loaded) == [0, 1, 2, 3], after[-3000:]
    assert sum(int(keys) for _, keys in loaded) > 0
    tail = sum(int(n) for n in re.findall(r"from the changelog \((\d+) offsets\)", after))
    # At most the transactions committed after the store's last write (one commit
    # interval) are read again, never the whole changelog.
    assert total > 500 and tail < total * 0.1, (tail, total)
    # Nothing of the transactions the kill aborted reached the store: after the clean
    # stop it holds exactly the fold of the committed changelog, which is the table
    # the event log and the results explain.
    assert stored_entries(pipeline) == changelog_fold(pipeline)
    replay = pipeline.cli("replay", "state")
    assert replay.returncode == 0, replay.stdout + replay.stderr


def stored_entries(pipeline: Pipeline) -> dict[bytes, bytes]:
    processor = pipeline.settings.processor
    (path,) = (processor.datadir / processor.app_id).glob("state-*.sqlite")
    with contextlib.closing(sqlite3.connect(path)) as db:
        return {bytes(k): bytes(v) for k, v in db.execute("SELECT key, value FROM entries")}


def changelog_fold(pipeline: Pipeline) -> dict[bytes, bytes]:
    fold: dict[bytes, bytes] = {}
    changelog = f"{pipeline.settings.processor.app_id}-aggregates-changelog"
    for key, value, _ in read_topic(pipeline.settings, changelog):
        if value:
            fold[key] = value
        else:  # a tombstone (no record of the processor's is empty)
            fold.pop(key, None)
    return fold


@pytest.mark.parametrize("pipeline", ["sqlite://"], indirect=True)
@pytest.mark.parametrize("damage", ["deleted", "truncated"])
def test_a_lost_or_damaged_store_falls_back_to_a_full_restore(
    pipeline: Pipeline, stream: CommandStream, damage: str
) -> None:
    worker = pipeline.process("worker", name="worker")
    worker.start()
    stream.start()
    time.sleep(5)
    worker.kill()
    (store,) = (pipeline.settings.processor.datadir / pipeline.settings.processor.app_id).glob(
        "state-*.sqlite"
    )
    if damage == "deleted":
        for path in store.parent.glob(f"{store.name}*"):  # the database, its WAL and index
            path.unlink()
    else:
        store.with_name(f"{store.name}-wal").unlink(missing_ok=True)
        with store.open("r+b") as file:
            file.truncate(4096)  # the header page only: every table's pages are gone
    restarted_at = worker.log.stat().st_size
    total = changelog_offsets(pipeline)
    worker.start()
    time.sleep(3)
    stream.stop()
    try:
        check_exactly_once(pipeline, stream)
    finally:
        worker.stop()
    after = worker.output(restarted_at)
    assert "from local state" not in after, after[-3000:]
    if damage == "truncated":
        assert "is damaged" in after and list(store.parent.glob("*.damaged-*")), after[-3000:]
    read = sum(int(n) for n in re.findall(r"from the changelog \((\d+) offsets\)", after))
    assert read >= total * 0.9, (read, total)  # the whole changelog, from its start
    replay = pipeline.cli("replay", "state")
    assert replay.returncode == 0, replay.stdout + replay.stderr
