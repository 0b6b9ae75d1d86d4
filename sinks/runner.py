"""The one runner every sink uses: consume ``events``, batch, write, commit, and survive.

``SinkRunner(sink, settings, serde).run()`` blocks until SIGTERM/SIGINT (or
``stop()``) and guarantees:

- **Own consumer group** ``<topic_prefix>cqrs-sink-<projection>``, so each
  projection has its own lag; ``isolation.level=read_committed``, so only
  events of committed transactions are seen; cooperative-sticky assignment.
- **Batches** of at most ``sinks.batch_max_records`` records or
  ``sinks.batch_max_wait_s`` seconds; a batch is flushed (``sink.flush``) and
  only then are its offsets committed. Stores that keep their positions
  (PostgreSQL) are sought to them on assignment; their Kafka commit is only
  informational, for lag monitoring.
- **Retries** of a failed write (``SinkError(retryable=True)``, connection
  errors), and of a registry that cannot be reached while decoding, with
  exponential backoff and jitter, forever, while every assigned partition is
  paused; polling goes on, so the group keeps the member. Nothing is skipped.
  A non-retryable ``SinkError`` stops the runner (exit non-zero): it means a
  broken deployment (permissions, a missing schema), not a bad event.
- **Poison** (bytes that cannot be decoded, an unknown schema, an event the
  projection rejects with ``InvalidEventError``) is copied to ``events-dlq``
  with the error and the record's origin in headers (``sinks.dead_letter``);
  the sink goes on with the next record. Dead letters are durable before any
  offset passes them.
- **Rebalances**: partitions that are revoked are flushed and committed first
  when the store is up; if it is down their buffered records are dropped
  uncommitted and the next owner consumes them again.
- **Shutdown** on SIGTERM/SIGINT finishes the batch in flight, commits and
  leaves the group. A stop during an outage abandons the uncommitted batch,
  which is consumed again on restart.
- **Observability**: ``core.metrics`` sink metrics, heartbeat and readiness
  (partitions assigned and positioned, not retrying, lag at most
  ``sinks.ready_max_lag``) on a ``core.observability.Health``.
"""

from __future__ import annotations

import collections
import logging
import signal
import threading
import time
from collections.abc import Callable, Collection
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from types import FrameType
from typing import Any, TypeVar

from confluent_kafka import (
    OFFSET_BEGINNING,
    OFFSET_STORED,
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    TopicPartition,
)

from core import tracing
from core.errors import InvalidEventError, RegistryError, SerializationError, SinkError
from core.kafka_fetch import available
from core.metrics import (
    EVENTS_APPLIED,
    PROJECTION_POSITION,
    SINK_BATCH_SECONDS,
    SINK_BATCHES,
    SINK_ERRORS,
    count_dead_letter,
)
from core.observability import Health
from core.settings import Settings
from schemas.dead_letters import headers_of
from schemas.serde import AvroSerde
from schemas.topics import event_topic_names
from sinks.base import EventRecord, Partition, Sink
from sinks.dead_letter import DeadLetterPublisher
from sinks.policy import Backoff, BatchPolicy
from sinks.tracing import BatchTracing

log = logging.getLogger("cqrs.sinks.runner")
T = TypeVar("T")

DEAD_LETTER_TOPIC = "events-dlq"
READINESS_INTERVAL_S = 5.0
PROGRESS_INTERVAL_S = 30.0
# Errors worth waiting out: the store or the network is down or busy.
TRANSIENT = (ConnectionError, TimeoutError)


def sink_group(settings: Settings, projection: str) -> str:
    """The consumer group of a projection's sink: ``<prefix>cqrs-sink-<projection>``."""
    return f"{settings.kafka.topic_prefix}cqrs-sink-{projection}"


def event_record(
    serde: AvroSerde, message: Message, wanted: Collection[str] | None = None
) -> EventRecord | None:
    """The decoded event in a Kafka message; ``SerializationError`` when it is poison.

    ``None`` when ``wanted`` (short event names) is given and the event is not among them:
    its body is then never decoded, which is most of what an irrelevant event would cost.
    """
    data = message.value() or b""
    if wanted is not None and serde.record_name(data).rpartition(".")[2] not in wanted:
        return None
    decoded = serde.decode(data)
    raw_headers = message.headers()  # None for the command processor's events: the fast path
    return EventRecord(
        decoded.full_name,
        decoded.value,
        message.key(),
        message.timestamp()[1],
        tuple(_headers(message)) if raw_headers else (),
    )


@dataclass(frozen=True)
class _InFlight:
    """A batch being written by the writer thread."""

    future: Future[None]
    positions: dict[Partition, int]
    records: int
    started: float


# Outside core.errors: private control flow, caught in this module.
class _AbandonedError(Exception):
    """The runner was stopped while waiting out an outage."""


class SinkRunner:
    """Drives one sink; ``run()`` blocks, ``stop()`` may be called from any thread."""

    def __init__(
        self,
        sink: Sink,
        settings: Settings,
        serde: AvroSerde,
        *,
        health: Health | None = None,
        dead_letters: DeadLetterPublisher | None = None,
        policy: BatchPolicy | None = None,
        backoff: Backoff | None = None,
    ) -> None:
        config = settings.sinks
        prefix = settings.kafka.topic_prefix
        self.sink = sink
        self.projection = sink.projection
        self.group = sink_group(settings, sink.projection)
        self.topics = event_topic_names(settings)
        self._settings = settings
        self._serde = serde
        self.health = health or Health.for_settings(settings)
        self._dead_letters = dead_letters or DeadLetterPublisher(
            settings, prefix + DEAD_LETTER_TOPIC, f"sink-{sink.projection}"
        )
        self._policy = policy or BatchPolicy(config.batch_max_records, config.batch_max_wait_s)
        self._backoff = backoff or Backoff(config.retry_initial_s, config.retry_max_s)
        self._ready_max_lag = config.ready_max_lag
        self._stopping = threading.Event()
        self._consumer: Consumer | None = None
        # Partitions and where they are.
        self._assigned: set[Partition] = set()
        self._unpositioned: set[Partition] = set()
        self._next: dict[Partition, int] = {}  # next offset to consume, once known
        self._has_assignment = False
        # The batch under way: positions it completes, records added, when it began.
        self._batch_positions: dict[Partition, int] = {}
        self._batch_records = 0
        self._batch_started: float | None = None
        self._held: collections.deque[Message] = collections.deque()
        # Concurrent sinks write in this thread while the next batch is consumed.
        self._writer = (
            ThreadPoolExecutor(1, thread_name_prefix=f"sink-{sink.projection}-writer")
            if sink.concurrent_flush
            else None
        )
        self._inflight: _InFlight | None = None
        self._waiting_out = ""  # what a retry loop is waiting for, when one runs
        self._closing = False
        self._next_readiness = 0.0
        self._progress = _Progress()
        tracer = tracing.tracer()
        self._tracing = (
            None
            if tracer is None
            else BatchTracing(tracer, self.projection, ", ".join(self.topics), self.group)
        )

    # -- public ---------------------------------------------------------------------

    def run(self, *, install_signal_handlers: bool = True) -> None:
        """Consume and write until stopped; raises on fatal errors."""
        restore = self._install_signal_handlers() if install_signal_handlers else None
        self.health.set_ready(False, "setting up the store")
        consumer = Consumer(self._consumer_config())
        self._consumer = consumer
        try:
            self._retrying("set up the store", self.sink.setup)
            consumer.subscribe(
                self.topics,
                on_assign=self._on_assign,
                on_revoke=self._on_revoke,
                on_lost=self._on_lost,
            )
            log.info(
                "sink %s consuming %s as group %s",
                self.projection,
                ", ".join(self.topics),
                self.group,
            )
            self._loop()
            self._flush()  # the batch under way
            self._settle(block=True)
        except _AbandonedError:
            log.warning(
                "sink %s stopped while %s; the batch in flight was not committed and will be "
                "consumed again",
                self.projection,
                self._waiting_out or "waiting",
            )
        finally:
            self._closing = True
            self.health.set_ready(False, "stopping")
            if self._writer is not None:
                self._writer.shutdown(wait=True)
            consumer.close()
            self._dead_letters.close()
            self.sink.close()
            if restore:
                restore()
            log.info("sink %s stopped", self.projection)

    def stop(self) -> None:
        self._stopping.set()

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    # -- the loop ----------------------------------------------------------------------

    def _loop(self) -> None:
        consumer = self._require_consumer()
        while not self._stopping.is_set():
            self.health.beat()
            if self._unpositioned:
                self._position_pending()
            now = time.monotonic()
            if self._held:
                messages = [self._held.popleft() for _ in range(len(self._held))]
            else:
                messages = available(
                    consumer,
                    self._policy.room(self._batch_records),
                    self._policy.poll_timeout(self._batch_started, now),
                )
            for message in messages:
                self._handle(message)
            self._settle(block=False)
            if self._policy.due(self._batch_records, self._batch_started, time.monotonic()):
                self._flush()
            self._update_readiness()
            self._progress.maybe_log(self.projection, self._next)

    def _handle(self, message: Message) -> None:
        error = message.error()
        if error is not None:
            if error.fatal():
                raise KafkaException(error)
            if error.code() != KafkaError._PARTITION_EOF:
                log.warning("sink %s: consumer error: %s", self.projection, error.str())
            return
        partition: Partition = (message.topic() or "", message.partition() or 0)
        if partition not in self._assigned or partition in self._unpositioned:
            return  # fetched before a revocation or before positioning: not ours to apply
        offset = message.offset() or 0
        try:
            try:
                record = event_record(self._serde, message, self.sink.event_types)
            except RegistryError:  # the registry is unreachable: wait, the event is not poison
                record = self._retrying("decode with the schema registry", self._decoder(message))
            if record is not None:
                self.sink.add(record, partition[0], partition[1], offset)
                if self._tracing is not None:
                    self._tracing.note(message.headers())
            self._batch_records += 1
        except (SerializationError, InvalidEventError) as poison:
            self._dead_letter(message, partition, offset, poison)
        self._batch_positions[partition] = offset + 1
        self._next[partition] = offset + 1
        if self._batch_started is None:
            self._batch_started = time.monotonic()

    def _decoder(self, message: Message) -> Callable[[], EventRecord | None]:
        def decode() -> EventRecord | None:
            try:
                return event_record(self._serde, message, self.sink.event_types)
            except RegistryError as error:
                # The registry is unreachable or failing: wait, the event is not poison.
                raise SinkError(str(error), retryable=True) from error

        return decode

    def _dead_letter(
        self, message: Message, partition: Partition, offset: int, error: Exception
    ) -> None:
        log.warning(
            "sink %s: dead-lettering %s[%s]@%s: %s",
            self.projection,
            partition[0],
            partition[1],
            offset,
            error,
        )
        self._dead_letters.publish(
            error,
            topic=partition[0],
            partition=partition[1],
            offset=offset,
            timestamp_ms=message.timestamp()[1],
            key=message.key(),
            value=message.value(),
            original_headers=headers_of(message),
        )
        count_dead_letter(f"sink-{self.projection}")

    # -- writing and committing ----------------------------------------------------------

    def _flush(self) -> None:
        """Write the batch under way: at once, or in the writer thread for concurrent sinks."""
        if self._writer is None:
            if self._batch_positions:
                started = time.monotonic()
                self._retrying("write the batch", self._write_batch)
                self._complete_batch(started)
            return
        self._settle(block=True)  # one write in flight at a time
        if not self._batch_positions:
            return
        positions, records = dict(self._batch_positions), self._batch_records
        self._reset_batch()
        if self._tracing is not None:
            self._tracing.cut()
        future = self._writer.submit(self._write_snapshot, positions)
        self._inflight = _InFlight(future, positions, records, time.monotonic())

    def _settle(self, *, block: bool, retry: bool = True) -> None:
        """Account for the write in flight once it is done (waiting for it if ``block``).

        A failed write is retried here, in this thread, with whatever was added
        since (the sink put the failed batch back in front of it).
        """
        inflight = self._inflight
        if inflight is None or not (block or inflight.future.done()):
            return
        self._inflight = None
        try:
            inflight.future.result()
        except (SinkError, *TRANSIENT) as error:
            if isinstance(error, SinkError) and not error.retryable:
                SINK_ERRORS.labels(self.projection, "fatal").inc()
                raise
            for partition, offset in inflight.positions.items():
                if partition in self._assigned:
                    mine = self._batch_positions.get(partition, 0)
                    self._batch_positions[partition] = max(mine, offset)
            self._batch_records += inflight.records
            self._batch_started = self._batch_started or inflight.started
            if not retry:
                raise
            SINK_ERRORS.labels(self.projection, "retryable").inc()
            log.warning("sink %s cannot write the batch: %s; retrying", self.projection, error)
            self._retrying("write the batch", self._write_batch)
            self._complete_batch(inflight.started)
            return
        self._account(inflight.positions, inflight.records, inflight.started)

    def _complete_batch(self, started: float) -> None:
        """The batch under way is durable: account for it and commit its offsets."""
        positions, records = dict(self._batch_positions), self._batch_records
        self._reset_batch()
        self._account(positions, records, started)

    def _account(self, positions: dict[Partition, int], applied: int, started: float) -> None:
        SINK_BATCH_SECONDS.labels(self.projection).observe(time.monotonic() - started)
        SINK_BATCHES.labels(self.projection).inc()
        EVENTS_APPLIED.labels(self.projection).inc(applied)
        for (_, number), next_offset in positions.items():
            PROJECTION_POSITION.labels(self.projection, str(number)).set(next_offset - 1)
        self._progress.add(applied)
        self._commit(positions)

    def _write_batch(self) -> None:
        self._dead_letters.flush()
        if self._tracing is None:
            self.sink.flush(self._batch_positions)
            return
        self._tracing.cut()
        with self._tracing.writing():
            self.sink.flush(self._batch_positions)

    def _write_snapshot(self, positions: dict[Partition, int]) -> None:
        """The writer thread's job: dead letters, then the sink's batch."""
        self._dead_letters.flush()
        if self._tracing is None:
            self.sink.flush(positions)
            return
        with self._tracing.writing():
            self.sink.flush(positions)

    def _reset_batch(self) -> None:
        self._batch_positions.clear()
        self._batch_records = 0
        self._batch_started = None

    def _commit(self, positions: dict[Partition, int]) -> None:
        offsets = [
            TopicPartition(topic, number, offset)
            for (topic, number), offset in positions.items()
            if (topic, number) in self._assigned
        ]
        if not offsets:
            return
        try:
            self._require_consumer().commit(offsets=offsets, asynchronous=False)
        except KafkaException as error:
            # The write is durable; a lost commit means a redelivery the sink absorbs.
            log.warning("sink %s: offset commit failed: %s", self.projection, error)

    # -- retries --------------------------------------------------------------------------

    def _retrying(self, what: str, attempt: Callable[[], T]) -> T:
        """``attempt()`` until it succeeds, waiting out transient failures with backoff."""
        failures = 0
        paused: list[TopicPartition] = []
        try:
            while True:
                try:
                    return attempt()
                except SinkError as error:
                    if not error.retryable:
                        SINK_ERRORS.labels(self.projection, "fatal").inc()
                        log.error("sink %s cannot %s: %s", self.projection, what, error)
                        raise
                    problem: Exception = error
                except TRANSIENT as error:
                    problem = error
                SINK_ERRORS.labels(self.projection, "retryable").inc()
                if not paused:
                    paused = self._pause_all()
                delay = self._backoff.delay(failures)
                failures += 1
                self._waiting_out = f"waiting to {what}"
                self.health.set_ready(False, f"cannot {what} (attempt {failures}): {problem}")
                log.warning(
                    "sink %s cannot %s (attempt %d, next in %.1fs): %s",
                    self.projection,
                    what,
                    failures,
                    delay,
                    problem,
                )
                self._wait(delay)
        finally:
            if paused:
                self._resume(paused)
                self._waiting_out = ""
                self._next_readiness = 0.0

    def _wait(self, seconds: float) -> None:
        """Sleep while polling: the group keeps the member, callbacks still run."""
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            if self._stopping.is_set():
                raise _AbandonedError
            self.health.beat()
            if self._consumer is None:
                time.sleep(min(left, 0.2))
                continue
            message = self._consumer.poll(min(left, 0.2))
            if message is not None and message.error() is None:
                self._held.append(message)  # fetched before the pause: applied afterwards

    def _pause_all(self) -> list[TopicPartition]:
        if self._consumer is None:
            return []
        partitions = self._consumer.assignment()
        if partitions:
            self._consumer.pause(partitions)
        return partitions or []

    def _resume(self, partitions: list[TopicPartition]) -> None:
        if self._consumer is None:
            return
        # Partitions revoked meanwhile are not ours; unpositioned ones stay paused.
        mine = [
            tp
            for tp in partitions
            if (tp.topic, tp.partition) in self._assigned
            and (tp.topic, tp.partition) not in self._unpositioned
        ]
        if mine:
            self._consumer.resume(mine)

    # -- rebalances ---------------------------------------------------------------------

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self._has_assignment = True
        added = [(tp.topic, tp.partition) for tp in partitions]
        self._assigned.update(added)
        try:
            stored = self.sink.stored_positions(added) if added else None
        except (SinkError, *TRANSIENT) as error:
            log.warning(
                "sink %s: positions of %s unavailable (%s); positioning later",
                self.projection,
                added,
                error,
            )
            consumer.incremental_assign(partitions)
            consumer.pause(partitions)
            self._unpositioned.update(added)
            return
        if stored is not None:
            for tp in partitions:
                tp.offset = stored.get((tp.topic, tp.partition), OFFSET_BEGINNING)
                if tp.offset >= 0:
                    self._next[(tp.topic, tp.partition)] = tp.offset
        consumer.incremental_assign(partitions)
        log.info(
            "sink %s assigned %s",
            self.projection,
            ", ".join(f"{tp.partition}@{_offset_label(tp.offset)}" for tp in partitions) or "-",
        )
        self._next_readiness = 0.0

    def _position_pending(self) -> None:
        """Look up the store's positions of partitions assigned while it was down."""
        pending = sorted(self._unpositioned)
        stored = self._retrying(
            "read the stored positions", lambda: self.sink.stored_positions(pending)
        )
        consumer = self._require_consumer()
        pending = [p for p in pending if p in self._unpositioned]  # a rebalance may have run
        if not pending:
            return
        # Assigning again with explicit offsets positions the partitions and resumes them.
        consumer.incremental_unassign([TopicPartition(t, p) for t, p in pending])
        offsets = [
            TopicPartition(t, p, OFFSET_STORED if stored is None else stored.get((t, p), 0))
            for t, p in pending
        ]
        consumer.incremental_assign(offsets)
        for tp in offsets:
            if tp.offset >= 0:
                self._next[(tp.topic, tp.partition)] = tp.offset
        self._unpositioned.difference_update(pending)
        self._next_readiness = 0.0
        log.info("sink %s positioned %s", self.projection, [p for _, p in pending])

    def _on_revoke(self, _consumer: Consumer, partitions: list[TopicPartition]) -> None:
        gone = [(tp.topic, tp.partition) for tp in partitions]
        if not self._waiting_out and not self._closing:
            started = time.monotonic()
            try:
                self._settle(block=True, retry=False)
                if self._batch_positions:
                    self._write_batch()
                    self._complete_batch(started)
            except (SinkError, *TRANSIENT) as error:
                log.warning(
                    "sink %s: could not write before giving up %s (%s); the next owner "
                    "consumes their uncommitted records again",
                    self.projection,
                    gone,
                    error,
                )
        self._forget(gone)
        log.info("sink %s revoked %s", self.projection, [p for _, p in gone])

    def _on_lost(self, _consumer: Consumer, partitions: list[TopicPartition]) -> None:
        gone = [(tp.topic, tp.partition) for tp in partitions]
        log.warning("sink %s lost %s without a chance to commit", self.projection, gone)
        self._forget(gone)

    def _forget(self, gone: list[Partition]) -> None:
        self.sink.revoke(gone)
        for partition in gone:
            self._assigned.discard(partition)
            self._unpositioned.discard(partition)
            self._batch_positions.pop(partition, None)
            self._next.pop(partition, None)
        kept = [m for m in self._held if (m.topic(), m.partition()) not in set(gone)]
        self._held = collections.deque(kept)
        if not self._batch_positions:
            self._reset_batch()
        self._next_readiness = 0.0

    # -- readiness ---------------------------------------------------------------------

    def _update_readiness(self) -> None:
        now = time.monotonic()
        if now < self._next_readiness:
            return
        self._next_readiness = now + READINESS_INTERVAL_S
        ready, reason = self._readiness()
        self.health.set_ready(ready, reason)

    def _readiness(self) -> tuple[bool, str]:
        if not self._has_assignment:
            return False, f"waiting for partitions from consumer group {self.group}"
        if self._unpositioned:
            return False, f"{len(self._unpositioned)} partition(s) wait for stored positions"
        lag = self.lag()
        if lag is None:
            return False, "cannot measure lag: Kafka did not answer"
        if lag > self._ready_max_lag:
            return False, f"{lag} records behind (ready at {self._ready_max_lag} or fewer)"
        return True, ""

    def lag(self) -> int | None:
        """Records between what this runner has consumed and the end of its partitions.

        The end comes from the latest fetch response (no broker round trip); a
        partition not fetched from yet is asked for once.
        """
        consumer = self._require_consumer()
        total = 0
        for topic, number in sorted(self._assigned):
            partition = TopicPartition(topic, number)
            try:
                low, high = consumer.get_watermark_offsets(partition, cached=True)
                if high < 0:
                    low, high = consumer.get_watermark_offsets(partition, timeout=5)
            except KafkaException:
                return None
            total += max(0, high - self._next.get((topic, number), max(low, 0)))
        return total

    # -- plumbing ----------------------------------------------------------------------

    def _consumer_config(self) -> dict[str, Any]:
        kafka = self._settings.kafka
        return {
            **kafka.confluent_config(),
            "client.id": f"{kafka.client_id}-sink-{self.projection}",
            "group.id": self.group,
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "auto.offset.reset": "earliest",
            "isolation.level": "read_committed",
            "partition.assignment.strategy": "cooperative-sticky",
        }

    def _require_consumer(self) -> Consumer:
        if self._consumer is None:
            raise RuntimeError("the runner's consumer exists only while run() runs")
        return self._consumer

    def _install_signal_handlers(self) -> Callable[[], None] | None:
        if threading.current_thread() is not threading.main_thread():
            return None

        def handle(signum: int, _frame: FrameType | None) -> None:
            log.info(
                "sink %s: %s received, finishing the batch in flight",
                self.projection,
                signal.Signals(signum).name,
            )
            self.stop()

        previous = {sig: signal.signal(sig, handle) for sig in (signal.SIGTERM, signal.SIGINT)}

        def restore() -> None:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

        return restore


class _Progress:
    """A log line every so often: events applied, rate, positions."""

    def __init__(self) -> None:
        self._since = time.monotonic()
        self._applied = 0

    def add(self, applied: int) -> None:
        self._applied += applied

    def maybe_log(self, projection: str, positions: dict[Partition, int]) -> None:
        now = time.monotonic()
        if now - self._since < PROGRESS_INTERVAL_S:
            return
        if self._applied:
            where = ", ".join(f"{p}@{o}" for (_, p), o in sorted(positions.items()))
            log.info(
                "sink %s applied %d events in %.0fs (%.0f/s); next offsets %s",
                projection,
                self._applied,
                now - self._since,
                self._applied / (now - self._since),
                where,
            )
        self._since, self._applied = now, 0


def _headers(message: Message) -> list[tuple[str, bytes]]:
    return [
        (name, value.encode() if isinstance(value, str) else value or b"")
        for name, value in headers_of(message)
    ]


def _offset_label(offset: int) -> str:
    return (
        "beginning" if offset == OFFSET_BEGINNING else ("committed" if offset < 0 else str(offset))
    )
