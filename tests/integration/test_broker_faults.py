"""Exactly-once while Kafka itself fails: brokers, partition leaders and coordinators killed.

Each test runs its own Kafka cluster (``kafka_cluster``) so that killing it
harms no other test; the stack's schema registry still serves the schemas. A
steady stream of commands with retries runs throughout (``command_stream``),
and afterwards every command must have been decided exactly once: no
duplicate event, gap-free sequences, one result per command record, retries
answered with the original bytes, and the worker never exited.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import pytest

from cqrs.settings import Settings
from tests.integration.command_stream import CommandStream, check_exactly_once
from tests.integration.kafka_cluster import PrivateKafka, private_kafka
from tests.integration.pipeline import Pipeline, WorkerProcess

KILLS = 3  # per test; benchmarks/broker_faults.py repeats them as often as asked
TRANSACTION_LOG_PARTITIONS = 10  # the local stack's transaction.state.log.num.partitions


def java_partition(text: str, partitions: int) -> int:
    """Which partition of a coordinator's log owns ``text`` (Kafka: abs(hashCode) % n)."""
    hashed = 0
    for unit in text.encode("utf-16-be").hex(" ", 2).split():
        hashed = (31 * hashed + int(unit, 16)) & 0xFFFFFFFF
    signed = hashed - (1 << 32) if hashed >= 1 << 31 else hashed
    return 0 if signed == -(1 << 31) else abs(signed) % partitions


@pytest.fixture
def single_node(local_stack: Settings, tmp_path: Path) -> Iterator[PrivateKafka]:
    with private_kafka(tmp_path, brokers=1, base=local_stack) as cluster:
        yield cluster


@pytest.fixture
def three_nodes(local_stack: Settings, tmp_path: Path) -> Iterator[PrivateKafka]:
    with private_kafka(tmp_path, brokers=3, base=local_stack) as cluster:
        yield cluster


def _run_through(
    pipeline: Pipeline, faults: Iterator[None], pause_s: float = 4.0
) -> tuple[CommandStream, WorkerProcess]:
    """Worker and stream running while each fault happens; the stream then stops."""
    worker = pipeline.process("worker", name="worker")
    worker.start()
    stream = CommandStream(pipeline)
    stream.start(per_second=150)
    try:
        for _ in faults:
            assert worker.process is not None and worker.process.poll() is None, (
                f"the worker exited:\n{worker.tail()}"
            )
            time.sleep(pause_s)
        time.sleep(pause_s)
        stream.stop()
    except BaseException:
        worker.stop()
        raise
    return stream, worker


def _check(pipeline: Pipeline, stream: CommandStream, worker: WorkerProcess) -> None:
    try:
        check_exactly_once(pipeline, stream)
        assert worker.process is not None and worker.process.poll() is None, (
            f"the worker exited:\n{worker.tail()}"
        )
    finally:
        worker.stop()


def test_the_only_broker_killed_mid_stream_decides_every_command_once(
    local_stack: Settings, single_node: PrivateKafka, tmp_path: Path
) -> None:
    pipeline = Pipeline.create(
        local_stack, tmp_path, tmp_path / "state", partitions=4, bootstrap=single_node.bootstrap
    )
    (node,) = single_node.node_ids

    def kills() -> Iterator[None]:
        for _ in range(KILLS):
            time.sleep(4)
            single_node.kill(node)  # SIGKILL: no clean shutdown, open transactions everywhere
            time.sleep(1)
            single_node.start(node)
            yield

    stream, worker = _run_through(pipeline, kills())
    _check(pipeline, stream, worker)


def test_partition_leaders_and_the_transaction_coordinator_killed_mid_stream(
    local_stack: Settings, three_nodes: PrivateKafka, tmp_path: Path
) -> None:
    cluster = three_nodes
    pipeline = Pipeline.create(
        local_stack,
        tmp_path,
        tmp_path / "state",
        partitions=4,
        bootstrap=cluster.bootstrap,
        replication_factor=3,
    )
    prefix = pipeline.settings.kafka.topic_prefix

    def victims(worker_log: Path) -> Iterator[tuple[str, int]]:
        found = re.search(r"transactional id (\S+)", worker_log.read_text(errors="replace"))
        assert found, "the worker did not log its transactional id"
        coordinator = java_partition(found.group(1), TRANSACTION_LOG_PARTITIONS)
        yield prefix + "commands", 0
        yield "__transaction_state", coordinator
        yield prefix + "events", 1

    def kills() -> Iterator[None]:
        for topic, partition in victims(tmp_path / "worker.log"):
            time.sleep(4)
            leader = cluster.leader_of(topic, partition)
            cluster.kill(leader)
            cluster.wait_until(
                partial(_led_by_another, cluster, topic, partition, leader),
                f"a new leader for {topic}[{partition}]",
            )
            cluster.start(leader)
            cluster.wait_until(
                partial(_fully_replicated, cluster, topic, partition),
                f"{topic}[{partition}] back to three in-sync replicas",
            )
            yield

    stream, worker = _run_through(pipeline, kills())
    _check(pipeline, stream, worker)


def _led_by_another(cluster: PrivateKafka, topic: str, partition: int, dead: int) -> bool:
    return cluster.leader_of(topic, partition) not in {-1, dead}


def _fully_replicated(cluster: PrivateKafka, topic: str, partition: int) -> bool:
    return len(cluster.isr_of(topic, partition)) == 3


def test_java_partition_matches_kafka_string_hash() -> None:
    # "a".hashCode() == 97; "ab" == 3105; "polygenelubricants".hashCode() == Integer.MIN_VALUE.
    assert java_partition("a", 1000) == 97
    assert java_partition("ab", 10000) == 3105
    assert java_partition("polygenelubricants", 7) == 0
