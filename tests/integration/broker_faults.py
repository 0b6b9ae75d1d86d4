"""Kafka failing under a running worker: the scenarios the fault tests and benchmark share.

Each scenario runs a worker and a steady stream of commands with retries
(``command_stream``) on a private cluster (``kafka_cluster``) while brokers are
SIGKILLed, and returns what the stream led to, counted, and whether the worker
exited. The stack's schema registry serves the schemas throughout.
"""

from __future__ import annotations

import dataclasses
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from confluent_kafka import Consumer, KafkaException, TopicPartition

from core.settings import Settings
from tests.integration.command_stream import CommandStream, ExactlyOnceReport, exactly_once_report
from tests.integration.kafka_cluster import PrivateKafka
from tests.integration.pipeline import Pipeline

TRANSACTION_LOG_PARTITIONS = 10  # the local stack's transaction.state.log.num.partitions
PAUSE_S = 4.0  # of steady traffic before each fault and after the last
COMMITS_TIMEOUT_S = 120.0  # for the worker to commit again after a fault


@dataclass(frozen=True)
class FaultOutcome:
    report: ExactlyOnceReport
    faults: list[str]  # what was killed, in order
    worker_exited: bool
    worker_log: Path
    # Transactions whose abort markers a restarted broker dropped (its log says so): the
    # stray batches the loop's first transaction of every new producer has to close.
    markers_skipped: int = 0


SKIPPED_MARKERS = "Couldn't find leader endpoint for partitions"


def java_partition(text: str, partitions: int) -> int:
    """Which partition of a coordinator's log owns ``text`` (Kafka: abs(hashCode) % n)."""
    hashed = 0
    for unit in text.encode("utf-16-be").hex(" ", 2).split():
        hashed = (31 * hashed + int(unit, 16)) & 0xFFFFFFFF
    signed = hashed - (1 << 32) if hashed >= 1 << 31 else hashed
    return 0 if signed == -(1 << 31) else abs(signed) % partitions


def only_broker_killed(
    stack: Settings, cluster: PrivateKafka, home: Path, kills: int
) -> FaultOutcome:
    """The single node SIGKILLed ``kills`` times mid-stream, restarted each time."""
    pipeline = Pipeline.create(
        stack, home, home / "state", partitions=4, bootstrap=cluster.bootstrap
    )
    (node,) = cluster.node_ids

    def faults(_log: Path) -> Iterator[str]:
        for _ in range(kills):
            cluster.kill(node)  # no clean shutdown: open transactions everywhere
            time.sleep(1)
            cluster.start(node)
            yield f"broker {node}"

    return _counting_skipped_markers(home, _run_through(pipeline, faults))


def leaders_killed(stack: Settings, cluster: PrivateKafka, home: Path, kills: int) -> FaultOutcome:
    """On three nodes, in turn: the leader of a commands partition, the worker's transaction
    coordinator, the leader of an events partition; each restarted and back in sync."""
    pipeline = Pipeline.create(
        stack,
        home,
        home / "state",
        partitions=4,
        bootstrap=cluster.bootstrap,
        replication_factor=3,
    )
    prefix = pipeline.settings.kafka.topic_prefix

    def victims(worker_log: Path) -> Iterator[tuple[str, int]]:
        found = re.search(r"transactional id (\S+)", worker_log.read_text(errors="replace"))
        assert found, "the worker did not log its transactional id"
        coordinator = java_partition(found.group(1), TRANSACTION_LOG_PARTITIONS)
        rotation = [
            (prefix + "commands", 0),
            ("__transaction_state", coordinator),
            (prefix + "events", 1),
        ]
        for index in range(kills):
            yield rotation[index % len(rotation)]

    def faults(worker_log: Path) -> Iterator[str]:
        for topic, partition in victims(worker_log):
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
            yield f"node {leader}, leader of {topic}[{partition}]"

    return _counting_skipped_markers(home, _run_through(pipeline, faults))


def _run_through(pipeline: Pipeline, faults: Callable[[Path], Iterator[str]]) -> FaultOutcome:
    worker = pipeline.process("worker", name="worker")
    worker.start()
    stream = CommandStream(pipeline)
    stream.start(per_second=150)
    done: list[str] = []
    exited = False
    try:
        time.sleep(PAUSE_S)
        for fault in faults(worker.log):
            done.append(fault)
            exited = exited or _exited(worker.process)
            # The next fault must meet a worker in mid-transaction again, not one still
            # rejoining its group: wait until it commits new progress.
            _wait_for_commits(pipeline)
            time.sleep(PAUSE_S)
        stream.stop()
        report = exactly_once_report(pipeline, stream)
        exited = exited or _exited(worker.process)
    finally:
        stream.stop()
        worker.stop()
    return FaultOutcome(report, done, exited, worker.log)


def _counting_skipped_markers(home: Path, outcome: FaultOutcome) -> FaultOutcome:
    logs = (home / "kafka-stack").rglob("server.log*")
    skipped = sum(log.read_text(errors="replace").count(SKIPPED_MARKERS) for log in logs)
    return dataclasses.replace(outcome, markers_skipped=skipped)


def _wait_for_commits(pipeline: Pipeline, commands: int = 100) -> None:
    """Until the worker's group has committed ``commands`` more commands (or 120 s)."""
    settings = pipeline.settings
    topic = settings.kafka.topic_prefix + "commands"
    consumer = Consumer(
        {
            **settings.kafka.confluent_config(),
            "group.id": settings.processor.app_id,  # the worker's group; read only, never joined
            "enable.auto.commit": False,
        }
    )

    def committed() -> int | None:
        try:
            places = [TopicPartition(topic, p) for p in range(settings.processor.partitions)]
            return sum(max(tp.offset, 0) for tp in consumer.committed(places, timeout=5))
        except KafkaException:
            return None  # the coordinator is still loading

    try:
        start, deadline = None, time.monotonic() + COMMITS_TIMEOUT_S
        while time.monotonic() < deadline:
            now = committed()
            if start is None:
                start = now
            elif now is not None and now >= start + commands:
                return
            time.sleep(0.5)
    finally:
        consumer.close()


def _exited(process: object) -> bool:
    poll = getattr(process, "poll", None)
    return process is None or poll is None or poll() is not None


def _led_by_another(cluster: PrivateKafka, topic: str, partition: int, dead: int) -> bool:
    return cluster.leader_of(topic, partition) not in {-1, dead}


def _fully_replicated(cluster: PrivateKafka, topic: str, partition: int) -> bool:
    return len(cluster.isr_of(topic, partition)) == 3
