"""Consumer lag of the product's consumer groups, in records and in seconds.

For each group and each partition of the topics it reads:

- ``committed``: the group's committed offset (``require_stable``, so offsets
  still pending in an open transaction of an exactly-once worker do not count),
  i.e. the next offset the group will read; ``None`` when it has committed
  nothing for the partition (it then starts at the earliest offset).
- ``end``: the partition's last stable offset (``list_offsets`` with
  ``read_committed``): the end a read_committed consumer can reach. It equals
  the high watermark unless a transaction is open, whose records are not
  readable yet and so are not lag yet.
- ``records``: unprocessed records. Transactional topics (``events``,
  ``command-results``, the projection topics) hold a commit marker after every
  transaction, and a caught-up consumer's committed offset points at or before
  such a marker, so ``end - committed`` over-counts by one offset per marker
  (and by any aborted records). To be exact, the records between ``committed``
  and ``end`` are read (``read_committed``, markers and aborted records are
  skipped) and counted when there are at most ``exact_limit`` offsets; beyond
  that, ``records`` is the offset distance and ``exact`` is False. A
  partition with only markers left reports 0.
- ``seconds`` (time lag): the age of the oldest unprocessed record, i.e. now
  minus the timestamp of the first readable record at or after ``committed``;
  0 when caught up.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from confluent_kafka import (
    TIMESTAMP_NOT_AVAILABLE,
    Consumer,
    ConsumerGroupState,
    ConsumerGroupTopicPartitions,
    IsolationLevel,
    KafkaError,
    KafkaException,
    TopicPartition,
)
from confluent_kafka.admin import (  # type: ignore[attr-defined]  # re-exported at runtime
    AdminClient,
    OffsetSpec,
)

from core.domain import load_domain
from core.errors import LagError
from core.kafka_logs import served
from core.settings import Settings
from processors.process_manager_task import inbox_topic
from schemas.partition_offsets import partition_offsets
from sinks.registry import names as projection_names

DEFAULT_EXACT_LIMIT = 1000


@dataclass(frozen=True)
class ConsumerGroup:
    """A consumer group and the topics it is expected to read."""

    group: str
    topics: tuple[str, ...]


def product_groups(settings: Settings) -> list[ConsumerGroup]:
    """Every consumer group of the product, with the topics each reads."""
    prefix = settings.kafka.topic_prefix
    processor = settings.processor
    domain = load_domain(settings.domain)
    events = tuple(prefix + topic for topic in domain.event_topics)
    groups = [
        ConsumerGroup(writer.app_id(processor.app_id), (prefix + writer.commands,))
        for writer in domain.writers
    ]
    groups += [
        ConsumerGroup(
            processor.process_manager_group(manager.name),
            (
                *(prefix + topic for topic in domain.observed_topics(manager)),
                prefix + inbox_topic(manager.name),
            ),
        )
        for manager in domain.process_managers
    ]
    groups += [
        ConsumerGroup(f"{prefix}cqrs-sink-{projection}", events)
        for projection in projection_names(settings)
    ]
    return groups


@dataclass(frozen=True)
class Probe:
    """What reading a partition from the committed offset found."""

    first_timestamp_ms: int | None = None  # of the first readable record
    counted: int = 0  # readable records seen before ``end``
    reached_end: bool = False  # read up to ``end``: ``counted`` is exact


@dataclass(frozen=True)
class PartitionLag:
    group: str
    topic: str
    partition: int
    committed: int | None
    start: int
    end: int
    records: int
    exact: bool
    seconds: float | None  # None: no record could be read in time to date it

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def read_from(committed: int | None, start: int) -> int:
    """Where the group reads next: its committed offset, or the log start without one."""
    return start if committed is None or committed < start else committed


def lag_of(
    committed: int | None, start: int, end: int, probe: Probe | None, now_ms: int
) -> tuple[int, bool, float | None]:
    """(records, exact, seconds) for one partition from its offsets and what was read."""
    distance = max(0, end - read_from(committed, start))
    if distance == 0:
        return 0, True, 0.0
    if probe is None:
        return distance, False, None
    seconds = (
        max(0.0, (now_ms - probe.first_timestamp_ms) / 1000)
        if probe.first_timestamp_ms is not None
        else None
    )
    if probe.reached_end:
        return probe.counted, True, (seconds if probe.counted else 0.0)
    return distance, False, seconds


@dataclass
class _Reading:
    """A partition being probed: from where, up to where, and what was seen."""

    begin: int
    end: int
    count_all: bool
    first_timestamp_ms: int | None = None
    counted: int = 0
    done: bool = False
    reached_end: bool = False

    def probe(self) -> Probe:
        return Probe(self.first_timestamp_ms, self.counted, self.reached_end)


@dataclass
class _GroupOffsets:
    exists: bool
    committed: dict[tuple[str, int], int | None] = field(default_factory=dict)


class LagMonitor:
    """Measures consumer lag with an admin client and one probing consumer (reused)."""

    def __init__(
        self,
        settings: Settings,
        exact_limit: int = DEFAULT_EXACT_LIMIT,
        timeout_s: float = 10.0,
    ) -> None:
        config: dict[str, Any] = {**settings.kafka.confluent_config()}
        self._bootstrap = settings.kafka.bootstrap_servers
        self._admin = served(AdminClient(config))
        self._probe = Consumer(
            {
                **config,
                "group.id": f"{settings.kafka.topic_prefix}cqrs-lag-probe",  # never joined
                "enable.auto.commit": False,
                "enable.auto.offset.store": False,
                "isolation.level": "read_committed",
                "enable.partition.eof": True,
                "fetch.wait.max.ms": 50,
            }
        )
        self._exact_limit = exact_limit
        self._timeout_s = timeout_s

    def close(self) -> None:
        self._probe.poll(0)  # hands over its queued log lines (it holds no assignment now)
        self._probe.close()

    def reachable(self) -> None:
        """``LagError`` naming the brokers when Kafka does not answer at all."""
        try:
            self._admin.list_topics(timeout=min(self._timeout_s, 5.0))
        except KafkaException as error:
            raise LagError(
                f"cannot reach Kafka at {self._bootstrap} ({error.args[0].str()}); is it "
                "running and are the CQRS_KAFKA__* settings right? (the local stack: "
                "cqrs stack status)"
            ) from error

    def measure(self, groups: Sequence[ConsumerGroup]) -> list[PartitionLag]:
        """Lag of every partition of every group that exists (others are left out)."""
        offsets = {group.group: self._group_offsets(group.group) for group in groups}
        partitions = self._partitions({t for g in groups for t in g.topics})
        found = [group for group in groups if offsets[group.group].exists]
        wanted = {
            group.group: sorted(
                {(t, p) for t in group.topics for p in partitions.get(t, [])}
                | set(offsets[group.group].committed)
            )
            for group in found
        }
        every = {tp for tps in wanted.values() for tp in tps}
        starts = self._list_offsets(every, OffsetSpec.earliest())  # type: ignore[no-untyped-call]
        ends = self._list_offsets(every, OffsetSpec.latest())  # type: ignore[no-untyped-call]
        lags: list[PartitionLag] = []
        for group in found:
            committed = offsets[group.group].committed
            readings = {
                tp: _Reading(
                    read_from(committed.get(tp), starts[tp]),
                    ends[tp],
                    ends[tp] - read_from(committed.get(tp), starts[tp]) <= self._exact_limit,
                )
                for tp in wanted[group.group]
                if ends[tp] > read_from(committed.get(tp), starts[tp])
            }
            self._read(readings)
            now_ms = int(time.time() * 1000)
            for topic, partition in wanted[group.group]:
                tp = (topic, partition)
                reading = readings.get(tp)
                records, exact, seconds = lag_of(
                    committed.get(tp),
                    starts[tp],
                    ends[tp],
                    reading.probe() if reading else None,
                    now_ms,
                )
                lags.append(
                    PartitionLag(
                        group.group,
                        topic,
                        partition,
                        committed.get(tp),
                        starts[tp],
                        ends[tp],
                        records,
                        exact,
                        seconds,
                    )
                )
        return lags

    # -- admin queries -------------------------------------------------------------

    def _group_offsets(self, group: str) -> _GroupOffsets:
        request = [ConsumerGroupTopicPartitions(group)]
        futures = self._admin.list_consumer_group_offsets(
            request, require_stable=True, request_timeout=self._timeout_s
        )
        listed = self._result(futures[group], f"committed offsets of consumer group {group}")
        committed: dict[tuple[str, int], int | None] = {
            (tp.topic, tp.partition): tp.offset if tp.offset >= 0 else None
            for tp in listed.topic_partitions or []
        }
        if any(offset is not None for offset in committed.values()):
            return _GroupOffsets(True, committed)
        described = self._result(
            self._admin.describe_consumer_groups([group], request_timeout=self._timeout_s)[group],
            f"consumer group {group}",
        )
        active = bool(described.members) and described.state not in {
            ConsumerGroupState.DEAD,
            ConsumerGroupState.UNKNOWN,
        }
        return _GroupOffsets(active, {tp: None for tp in committed})

    def _partitions(self, topics: Iterable[str]) -> dict[str, list[int]]:
        try:
            metadata = self._admin.list_topics(timeout=self._timeout_s)
        except KafkaException as error:
            raise LagError(f"cannot list topics: {error}; is Kafka reachable?") from error
        return {
            topic: sorted(metadata.topics[topic].partitions)
            for topic in topics
            if topic in metadata.topics and metadata.topics[topic].error is None
        }

    def _list_offsets(
        self, partitions: Iterable[tuple[str, int]], spec: OffsetSpec
    ) -> dict[tuple[str, int], int]:
        try:
            return partition_offsets(
                self._admin, partitions, spec, IsolationLevel.READ_COMMITTED, self._timeout_s
            )
        except KafkaException as error:
            raise LagError(f"cannot read partition offsets: {error.args[0].str()}") from error
        except TimeoutError as error:
            raise LagError(
                f"cannot read partition offsets: no answer in {self._timeout_s + 5:.0f} s"
            ) from error

    def _result(self, future: Any, what: str) -> Any:
        try:
            return future.result(timeout=self._timeout_s + 5)
        except KafkaException as error:
            raise LagError(f"cannot read {what}: {error.args[0].str()}") from error
        except TimeoutError as error:
            raise LagError(f"cannot read {what}: Kafka did not answer in time") from error

    # -- reading records -----------------------------------------------------------

    def _read(self, readings: dict[tuple[str, int], _Reading]) -> None:
        """Read each partition from its committed offset: the first record, or all up to end."""
        if not readings:
            return
        assigned = [TopicPartition(t, p, r.begin) for (t, p), r in readings.items()]
        self._probe.assign(assigned)
        deadline = time.monotonic() + self._timeout_s
        try:
            pending = len(readings)
            while pending and time.monotonic() < deadline:
                for message in self._probe.consume(500, timeout=0.2):
                    tp = (str(message.topic()), int(message.partition() or 0))
                    reading = readings.get(tp)
                    if reading is None or reading.done:
                        continue
                    if _take(reading, message):
                        pending -= 1
                        self._probe.pause([TopicPartition(*tp)])  # no need to fetch it further
        finally:
            # librdkafka keeps a partition paused across assignments: resume first.
            self._probe.resume(assigned)
            self._probe.unassign()


def _take(reading: _Reading, message: Any) -> bool:
    """Account for one consumed message; True once the partition needs no more reading."""
    error = message.error()
    if error is not None:
        if error.code() == KafkaError._PARTITION_EOF:
            reading.done = reading.reached_end = True
        return reading.done
    offset = message.offset()
    if offset >= reading.end:  # arrived after the end was measured: not counted
        reading.done = reading.reached_end = True
        return True
    kind, timestamp = message.timestamp()
    if reading.first_timestamp_ms is None and kind != TIMESTAMP_NOT_AVAILABLE:
        reading.first_timestamp_ms = timestamp
    reading.counted += 1
    if offset >= reading.end - 1:
        reading.done = reading.reached_end = True
    elif not reading.count_all:
        reading.done = True
    return reading.done
