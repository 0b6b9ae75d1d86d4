"""Reading dead letters and replay records from Kafka, every wait bounded.

One consumer, assigned partitions and never joined to its group (a throwaway
id; nothing is committed), reads ``read_committed`` from each partition's start
to its last stable offset as measured before reading, so a dead letter written
while reading is left for the next look and a stalled broker ends in an error,
never a wait. Offsets come from the admin client, as for ``cqrs lag``.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Iterable, Iterator, Mapping
from types import TracebackType
from typing import Any, Self

from confluent_kafka import (
    TIMESTAMP_NOT_AVAILABLE,
    Consumer,
    IsolationLevel,
    KafkaError,
    KafkaException,
    Message,
)
from confluent_kafka import TopicPartition as Partition
from confluent_kafka.admin import (  # type: ignore[attr-defined]  # re-exported at runtime
    AdminClient,
    OffsetSpec,
)

from core.errors import DeadLetterError, DeadLetterNotFoundError
from core.kafka_logs import served
from core.settings import Settings
from cqrs.dead_letter_records import (
    DeadLetter,
    DeadLetterRef,
    ReplayMark,
    dead_letter,
    text_headers,
)
from schemas.dead_letters import headers_of
from schemas.partition_offsets import partition_offsets
from schemas.topics import DEAD_LETTER_REPLAYS, settings_topic_specs

Place = tuple[str, int]
log = logging.getLogger("cqrs.dead_letters")


def dead_letter_topics(settings: Settings) -> dict[str, str]:
    """Logical → real name of the domain's dead-letter topics (the prefix applied)."""
    prefix = settings.kafka.topic_prefix
    return {
        spec.name: prefix + spec.name for spec in settings_topic_specs(settings) if spec.dead_letter
    }


def replays_topic(settings: Settings) -> str:
    return settings.kafka.topic_prefix + DEAD_LETTER_REPLAYS


class DeadLetterReader:
    """Reads whole partitions or single records; not thread-safe (one per call)."""

    def __init__(self, settings: Settings, timeout_s: float = 30.0) -> None:
        config: dict[str, Any] = {**settings.kafka.confluent_config()}
        self._bootstrap = settings.kafka.bootstrap_servers
        self._timeout_s = timeout_s
        self._admin = served(AdminClient(config))
        self._consumer = Consumer(
            {
                **config,
                "group.id": f"{settings.kafka.topic_prefix}cqrs-dlq-{uuid.uuid4().hex[:12]}",
                "enable.auto.commit": False,
                "enable.auto.offset.store": False,
                "isolation.level": "read_committed",
                "enable.partition.eof": True,
                "auto.offset.reset": "earliest",
                "fetch.wait.max.ms": 100,
            }
        )

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._consumer.close()

    def partitions(self, topics: Iterable[str]) -> list[Place]:
        """Every partition of those ``topics`` that exist (a topic never created holds nothing)."""
        try:
            metadata = self._admin.list_topics(timeout=min(self._timeout_s, 5.0)).topics
        except KafkaException as error:
            raise DeadLetterError(
                f"cannot reach Kafka at {self._bootstrap} ({error.args[0].str()}); is it "
                "running and are the CQRS_KAFKA__* settings right? (the local stack: "
                "cqrs stack status)"
            ) from error
        return [
            (topic, partition)
            for topic in topics
            if topic in metadata and metadata[topic].error is None
            for partition in sorted(metadata[topic].partitions)
        ]

    def bounds(self, places: Iterable[Place]) -> dict[Place, tuple[int, int]]:
        """(start, last stable offset) of each partition, as of now."""
        places = list(places)
        starts = self._offsets(places, OffsetSpec.earliest())  # type: ignore[no-untyped-call]
        ends = self._offsets(places, OffsetSpec.latest())  # type: ignore[no-untyped-call]
        return {place: (starts[place], ends[place]) for place in places}

    def scan(self, topics: Iterable[str]) -> Iterator[Message]:
        """Every committed record of ``topics`` up to the end offsets measured first,
        partitions interleaved; ``DeadLetterError`` when reading makes no progress."""
        ranges = {p: r for p, r in self.bounds(self.partitions(topics)).items() if r[1] > r[0]}
        if not ranges:
            return
        self._consumer.assign([Partition(t, p, start) for (t, p), (start, _) in ranges.items()])
        try:
            yield from self._until_ends({place: end for place, (_, end) in ranges.items()})
        finally:
            self._consumer.unassign()

    def _until_ends(self, ends: dict[Place, int]) -> Iterator[Message]:
        pending = dict(ends)
        quiet_since = time.monotonic()
        while pending:
            if time.monotonic() - quiet_since > self._timeout_s:
                late = ", ".join(f"{t}[{p}]" for t, p in sorted(pending))
                raise DeadLetterError(
                    f"reading {late} made no progress for {self._timeout_s:.0f}s; is Kafka up?"
                )
            for message in self._consumer.consume(500, timeout=0.5):
                quiet_since = time.monotonic()
                place = (str(message.topic()), int(message.partition() or 0))
                if place not in pending:
                    continue
                error = message.error()
                if error is not None and error.code() == KafkaError._PARTITION_EOF:
                    del pending[place]  # the end, or only markers and aborted records left
                    continue
                if error is not None:
                    raise DeadLetterError(f"reading {place[0]}[{place[1]}]: {error.str()}")
                offset = int(message.offset() or 0)
                if offset >= pending[place]:  # written after the end was measured
                    del pending[place]
                    continue
                yield message
                if offset >= pending[place] - 1:
                    del pending[place]

    def at(self, ref: DeadLetterRef) -> Message:
        """The record at ``ref``; ``DeadLetterError`` saying why when there is none."""
        place = (ref.topic, ref.partition)
        partitions = self.partitions([ref.topic])
        if not partitions:
            raise DeadLetterNotFoundError(f"{ref}: {ref.topic} does not exist (yet)")
        if place not in partitions:
            raise DeadLetterNotFoundError(f"{ref}: {ref.topic} has no partition {ref.partition}")
        start, end = self.bounds([place])[place]
        if ref.offset < start:
            raise DeadLetterNotFoundError(
                f"{ref}: removed by retention (the partition starts at {start})"
            )
        if ref.offset >= end:
            raise DeadLetterNotFoundError(f"{ref}: beyond the end of the partition (offset {end})")
        self._consumer.assign([Partition(ref.topic, ref.partition, ref.offset)])
        try:
            for message in self._until_ends({place: end}):
                if message.offset() == ref.offset:
                    return message
                break
        finally:
            self._consumer.unassign()
        raise DeadLetterNotFoundError(
            f"{ref}: no record at that offset (a transaction marker or an aborted record)"
        )

    def latest_per_key(self, topic: str) -> dict[bytes, bytes | None]:
        """The last value of each key of a compacted ``topic`` (None: a tombstone)."""
        latest: dict[bytes, bytes | None] = {}
        for message in self.scan([topic]):
            latest[message.key() or b""] = message.value()
        return latest

    def _offsets(self, places: list[Place], spec: OffsetSpec) -> dict[Place, int]:
        try:
            return partition_offsets(
                self._admin, places, spec, IsolationLevel.READ_COMMITTED, self._timeout_s
            )
        except KafkaException as error:
            raise DeadLetterError(
                f"cannot read partition offsets: {error.args[0].str()}"
            ) from error
        except TimeoutError as error:
            raise DeadLetterError(
                f"cannot read partition offsets: no answer in {self._timeout_s + 5:.0f}s"
            ) from error


def replay_marks(reader: DeadLetterReader, topic: str) -> dict[str, ReplayMark]:
    """Replay records by dead-letter name; a tombstone forgets a replay."""
    return {
        key.decode(errors="replace"): ReplayMark.from_json(value)
        for key, value in reader.latest_per_key(topic).items()
        if value is not None
    }


def letter_of(message: Message, marks: Mapping[str, ReplayMark], now_ms: int) -> DeadLetter:
    """A consumed dead-letter record as a ``DeadLetter``."""
    ref = DeadLetterRef(
        str(message.topic()), int(message.partition() or 0), int(message.offset() or 0)
    )
    kind, timestamp = message.timestamp()
    return dead_letter(
        ref,
        message.key(),
        text_headers(headers_of(message)),
        timestamp_ms=None if kind == TIMESTAMP_NOT_AVAILABLE else timestamp,
        now_ms=now_ms,
        replay=marks.get(str(ref)),
    )


def now_ms() -> int:
    return int(time.time() * 1000)
