"""Rebuild the order index from the event log, side by side, then switch the alias.

1. Create the next generation ``<prefix>-orders-<n+1>`` (no refreshes, no
   replicas while loading).
2. Replay ``events`` from the beginning up to the end measured at the start,
   into that index (not through the alias), with the live sink's code, so the
   documents are the ones the live sink would write.
3. Give it its live settings, refresh, and move the alias to it in one atomic
   ``_aliases`` request; the previous generation stops receiving writes.
4. Catch up: replay from where step 2 stopped up to the end measured after the
   switch. Events the live sink wrote into the old index meanwhile are applied
   here; later ones are written by the live sink through the alias, now the
   new index. Versions make the overlap harmless.
5. Delete the previous generation(s).

The live sink keeps running throughout. A failure before the switch deletes
the new index and leaves the live one untouched. Events the live sink
dead-lettered are skipped (counted) rather than dead-lettered again.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    IsolationLevel,
    KafkaError,
    KafkaException,
    TopicPartition,
)
from confluent_kafka.admin import (  # type: ignore[attr-defined]  # re-exported at runtime
    AdminClient,
    OffsetSpec,
)

from cqrs.errors import SinkError
from cqrs.settings import Settings
from schemas.catalog import SchemaCatalog
from schemas.errors import SerializationError
from schemas.registry_client import RegistryClient
from schemas.serde import AvroSerde
from sinks.base import Partition, Sink
from sinks.errors import InvalidEventError
from sinks.policy import Backoff
from sinks.runner import EVENTS_TOPIC, event_record
from sinks.search.backend import SearchBackend, open_backend
from sinks.search.index import OrderIndex
from sinks.search.sink import SearchOrdersSink, SkippedEvents

log = logging.getLogger("cqrs.sinks.search")
WRITE_ATTEMPTS = 8


class Progress(Protocol):
    """How a long replay reports itself (a progress bar with ETA in the CLI)."""

    def phase(self, description: str, total: int) -> None:
        """A new phase of ``total`` offsets begins."""

    def advance(self, offsets: int) -> None: ...


class QuietProgress:
    def phase(self, description: str, total: int) -> None:
        log.info("%s: %d offsets", description, total)

    def advance(self, offsets: int) -> None:
        return None


@dataclass(frozen=True)
class ReplayResult:
    positions: dict[Partition, int]  # next offset per partition
    events: int
    skipped: int


@dataclass(frozen=True)
class RebuildReport:
    index: str
    previous: list[str]
    events: int
    skipped: int
    documents: int
    seconds: float


class EventReplay:
    """Reads ``events`` from given offsets up to the end, feeding a sink in batches."""

    def __init__(self, settings: Settings, serde: AvroSerde, batch_records: int) -> None:
        self._settings = settings
        self._serde = serde
        self._batch_records = batch_records
        self._topic = settings.kafka.topic_prefix + EVENTS_TOPIC
        config = settings.kafka.confluent_config()
        self._admin = AdminClient(config)
        self._consumer = Consumer(
            {
                **config,
                "group.id": f"{settings.kafka.topic_prefix}cqrs-rebuild",  # never joined
                "enable.auto.commit": False,
                "isolation.level": "read_committed",
                "enable.partition.eof": True,
            }
        )

    def close(self) -> None:
        self._consumer.close()

    def end_offsets(self) -> dict[Partition, int]:
        """The last stable offset of every partition of ``events``, now."""
        metadata = self._admin.list_topics(self._topic, timeout=15)
        topic = metadata.topics.get(self._topic)
        if topic is None or topic.error is not None:
            raise SinkError(
                f"topic {self._topic} not found; nothing to rebuild from", retryable=False
            )
        request = {
            TopicPartition(self._topic, number): OffsetSpec.latest()  # type: ignore[no-untyped-call]
            for number in topic.partitions
        }
        futures = self._admin.list_offsets(
            request, isolation_level=IsolationLevel.READ_COMMITTED, request_timeout=15
        )
        return {(tp.topic, tp.partition): f.result(30).offset for tp, f in futures.items()}

    def replay(
        self,
        sink: Sink,
        starts: dict[Partition, int] | None,
        ends: dict[Partition, int],
        progress: Progress,
        description: str,
    ) -> ReplayResult:
        """Apply every committed event from ``starts`` (or the beginning) up to ``ends``."""
        positions = dict(starts or {})
        total = sum(max(0, end - positions.get(p, 0)) for p, end in ends.items())
        progress.phase(description, total)
        pending = {p for p, end in ends.items() if positions.get(p, 0) < end}
        if not pending:
            return ReplayResult(positions, 0, 0)
        self._consumer.assign(
            [TopicPartition(t, n, positions.get((t, n), OFFSET_BEGINNING)) for t, n in pending]
        )
        events = skipped = buffered = 0
        reported = {p: positions.get(p, 0) for p in pending}

        def finish(partition: Partition) -> None:
            pending.discard(partition)
            progress.advance(max(0, ends[partition] - reported[partition]))
            reported[partition] = ends[partition]

        try:
            while pending:
                for message in self._consumer.consume(1000, timeout=1.0):
                    partition = (str(message.topic()), int(message.partition() or 0))
                    if partition not in pending:
                        continue
                    error = message.error()
                    if error is not None:
                        if error.code() != KafkaError._PARTITION_EOF:
                            raise KafkaException(error)
                        finish(partition)  # nothing readable left before the end
                        continue
                    offset = int(message.offset() or 0)
                    if offset >= ends[partition]:
                        finish(partition)
                        continue
                    positions[partition] = offset + 1
                    progress.advance(offset + 1 - reported[partition])
                    reported[partition] = offset + 1
                    try:
                        sink.add(event_record(self._serde, message), *partition, offset)
                        events, buffered = events + 1, buffered + 1
                    except (SerializationError, InvalidEventError) as poison:
                        skipped += 1
                        log.info("skipping %s[%d]@%d: %s", *partition, offset, poison)
                    if offset + 1 >= ends[partition]:
                        finish(partition)
                if buffered >= self._batch_records or not pending:
                    _flush_with_retries(sink, positions)
                    buffered = 0
        finally:
            self._consumer.unassign()
        return ReplayResult(positions, events, skipped)


def rebuild_search_index(
    settings: Settings,
    progress: Progress | None = None,
    *,
    backend: SearchBackend | None = None,
    serde: AvroSerde | None = None,
) -> RebuildReport:
    """Build a new generation of the order index from the event log and switch the alias."""
    started = time.monotonic()
    progress = progress or QuietProgress()
    backend = backend or open_backend(settings.search)
    serde = serde or AvroSerde(RegistryClient(settings.registry), SchemaCatalog())
    index = OrderIndex(backend, settings.search)
    skipped_events = SkippedEvents()
    new = index.create_next_generation()
    sink = SearchOrdersSink(settings, backend, skipped_events, target_index=new)
    replay = EventReplay(settings, serde, settings.sinks.batch_max_records)
    switched = False
    try:
        sink.setup()
        first = replay.replay(sink, None, replay.end_offsets(), progress, f"indexing into {new}")
        index.make_live_ready(new)
        previous = index.switch_to(new)
        switched = True
        rest = replay.replay(
            sink, first.positions, replay.end_offsets(), progress, "catching up after the switch"
        )
    except BaseException:
        if not switched:
            log.warning("rebuild failed before the switch; deleting %s", new)
            backend.delete_index(new)
        raise
    finally:
        replay.close()
    for old in previous:
        backend.delete_index(old)
    backend.refresh(new)
    return RebuildReport(
        new,
        previous,
        first.events + rest.events,
        first.skipped + rest.skipped + skipped_events.count,
        backend.count(new),
        time.monotonic() - started,
    )


def _flush_with_retries(
    sink: Sink, positions: dict[Partition, int], sleep: Callable[[float], None] = time.sleep
) -> None:
    backoff = Backoff(initial_s=0.5, max_s=10.0)
    for attempt in range(WRITE_ATTEMPTS):
        try:
            sink.flush(positions)
            return
        except SinkError as error:
            if not error.retryable or attempt == WRITE_ATTEMPTS - 1:
                raise
            delay = backoff.delay(attempt)
            log.warning("rebuild write failed (%s); retrying in %.1fs", error, delay)
            sleep(delay)
