"""Replaying the event log into a sink, for rebuilds: the parts every store's rebuild shares.

A rebuild fills a *new* target (PostgreSQL: a shadow table set; a search
index: a new index behind the alias) from the beginning of ``events`` while the
live projection keeps serving, and switches once the new target has caught up
with the live one (``sinks.postgres.rebuild`` for the PostgreSQL projections).

``Replayer`` is the engine: it reads ``events`` with its own consumer
(``read_committed``, partitions assigned by hand, nothing committed), decodes
and upcasts each record, hands it to the sink, flushes in batches with the
runner's retry policy, and stops each partition at a target offset. Records
that cannot be decoded or applied are skipped and counted: the live sink
already dead-lettered them, and a second copy would only confuse.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition

from core.errors import InvalidEventError, SerializationError, SinkError
from core.settings import Settings
from schemas.serde import AvroSerde
from schemas.topics import event_topic_names
from sinks.base import Partition, Sink
from sinks.policy import Backoff, BatchPolicy
from sinks.runner import TRANSIENT, event_record

log = logging.getLogger("cqrs.sinks.rebuild")


class RebuildProgress(Protocol):
    """Where a rebuild reports how far it is (the CLI shows a bar with an ETA)."""

    def phase(self, description: str, total: int) -> None:
        """A new phase with ``total`` records to go."""

    def advance(self, records: int) -> None: ...


class SilentProgress:
    def phase(self, description: str, total: int) -> None:
        log.info("%s (%d records)", description, total)

    def advance(self, records: int) -> None:
        pass


@dataclass
class RebuildReport:
    projection: str
    target: str  # what is live now (a table set, an index)
    replayed: int = 0
    skipped: int = 0  # records the projection can never apply
    seconds: float = 0.0
    positions: dict[Partition, int] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        return self.replayed / self.seconds if self.seconds else 0.0


class Replayer:
    """Feeds the domain's event topics to a sink from given positions up to given targets
    (both by ``(topic, partition)``)."""

    def __init__(
        self,
        settings: Settings,
        sink: Sink,
        serde: AvroSerde,
        progress: RebuildProgress | None = None,
    ) -> None:
        self.topics = event_topic_names(settings)
        self.sink = sink
        self.progress = progress or SilentProgress()
        self.positions: dict[Partition, int] = {}  # next offset per partition, as written
        self.replayed = 0
        self.skipped = 0
        self._serde = serde
        self._policy = BatchPolicy(
            settings.sinks.batch_max_records, settings.sinks.batch_max_wait_s
        )
        self._backoff = Backoff(settings.sinks.retry_initial_s, settings.sinks.retry_max_s)
        self._consumer = Consumer(
            {
                **settings.kafka.confluent_config(),
                "group.id": f"{settings.kafka.topic_prefix}cqrs-rebuild-{sink.projection}",
                "enable.auto.commit": False,
                "auto.offset.reset": "earliest",
                "isolation.level": "read_committed",
                "enable.partition.eof": True,
            }
        )

    def partitions(self) -> list[Partition]:
        found: list[Partition] = []
        for topic in self.topics:
            metadata = self._consumer.list_topics(topic, timeout=15).topics.get(topic)
            if metadata is None or metadata.error is not None:
                raise SinkError(f"topic {topic} does not exist; nothing to replay", retryable=False)
            found.extend((topic, number) for number in sorted(metadata.partitions))
        return found

    def ends(self) -> dict[Partition, int]:
        """The high watermark of each partition now."""
        return {
            (topic, number): self._consumer.get_watermark_offsets(
                TopicPartition(topic, number), timeout=15
            )[1]
            for topic, number in self.partitions()
        }

    def run_until(self, targets: Mapping[Partition, int]) -> int:
        """Apply every record below ``targets[p]`` not applied yet; returns how many were read.

        A partition also counts as done when its end is reached (its last
        offsets may be transaction markers, which are never delivered).
        """
        open_ = {p: t for p, t in targets.items() if self.positions.get(p, 0) < t}
        if not open_:
            return 0
        self._consumer.assign(
            [TopicPartition(t, n, self.positions.get((t, n), 0)) for t, n in sorted(open_)]
        )
        read = 0
        batch: dict[Partition, int] = {}
        count, started = 0, None
        try:
            while open_:
                for message in self._consumer.consume(self._policy.room(count), 0.5):
                    done, taken = self._take(message, open_, batch)
                    if done is not None:
                        open_.pop(done, None)
                    if taken:
                        read += 1
                        count += 1
                        started = started or time.monotonic()
                if self._policy.due(count, started, time.monotonic()) or not open_:
                    self._flush(batch)
                    self.progress.advance(count)
                    batch, count, started = {}, 0, None
        finally:
            self._consumer.unassign()
        return read

    def close(self) -> None:
        self._consumer.close()

    def _take(
        self, message: Message, open_: dict[Partition, int], batch: dict[Partition, int]
    ) -> tuple[Partition | None, bool]:
        """(partition now done or None, whether the record was taken into the batch)."""
        topic, number = message.topic() or "", message.partition() or 0
        partition = (topic, number)
        error = message.error()
        if error is not None:
            if error.code() == KafkaError._PARTITION_EOF:
                return partition, False
            if error.fatal():
                raise KafkaException(error)
            log.warning("rebuild of %s: consumer error: %s", self.sink.projection, error.str())
            return None, False
        offset = message.offset() or 0
        target = open_.get(partition)
        if target is None or offset >= target:
            return partition, False
        try:
            record = event_record(self._serde, message, self.sink.event_types)
            if record is not None:
                self.sink.add(record, topic, number, offset)
        except (SerializationError, InvalidEventError) as poison:
            self.skipped += 1
            log.info(
                "rebuild of %s skips %s-%d@%d: %s",
                self.sink.projection,
                topic,
                number,
                offset,
                poison,
            )
        batch[partition] = offset + 1
        self.replayed += 1
        return (partition if offset + 1 >= target else None), True

    def _flush(self, batch: dict[Partition, int]) -> None:
        if not batch:
            return
        positions = dict(batch)
        failures = 0
        while True:
            try:
                self.sink.flush(positions)
                break
            except SinkError as error:
                if not error.retryable:
                    raise
                problem: Exception = error
            except TRANSIENT as error:
                problem = error
            delay = self._backoff.delay(failures)
            failures += 1
            log.warning(
                "rebuild of %s: write failed (%s); retrying in %.1fs",
                self.sink.projection,
                problem,
                delay,
            )
            time.sleep(delay)
        self.positions.update(batch)
