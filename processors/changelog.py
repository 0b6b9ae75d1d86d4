"""Restoring a task's state partitions from their changelog, without stopping the others.

A partition that arrives with a rebalance is paused on the input side while its
changelog partition is read here, in steps driven by the worker's loop between
batches, so the partitions it already owned keep going.

Where a restore ends is decided from the log, never from a timeout: the high
watermark (uncommitted) of the changelog partition is read when the restore
starts, and the partition is restored once a ``read_committed`` read has
passed it. A transaction still open on the changelog then (a crashed owner's,
or one whose commit markers are still being written) holds the read back until
it ends, so a committed transaction is never half-restored and an aborted one
is never applied. A partition whose last offset is a commit marker ends too:
the consumer's position moves past control records at the end of a fetch.

With a local store (``processors.local_store``), a partition starts from what
the store holds and reads only the changelog from the store's position on;
what it reads is written to the store in the same batches, and the position
once the partition is restored. A store that cannot be completed from the log
(too old, or outside the partition's offsets) is dropped, and the partition is
restored from the beginning, which the log says.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from dataclasses import dataclass, field

from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    IsolationLevel,
    KafkaError,
    KafkaException,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient
from confluent_kafka.admin._listoffsets import OffsetSpec

from core.kafka_logs import served
from core.settings import KafkaConfig
from processors.local_store import LocalStore, usable
from processors.state import PartitionedState
from schemas.partition_offsets import partition_offsets

log = logging.getLogger("cqrs.changelog")
RESTORE_BATCH = 20_000
PROGRESS_EVERY_S = 2.0


@dataclass
class _Progress:
    target: int  # the high watermark when the restore started
    started: float
    begin: int = 0  # the first offset read (the store's position, or the log's start)
    records: int = 0
    eof: bool = False


@dataclass
class ChangelogRestore:
    """Restores changelog partitions into a ``PartitionedState``, a step at a time."""

    topic: str
    kafka: KafkaConfig
    state: PartitionedState
    store: LocalStore | None = None
    delete_retention_s: float = 86_400.0  # the changelog's tombstone retention
    _queued: set[int] = field(default_factory=set)  # assigned, end offsets not yet known
    _pending: dict[int, _Progress] = field(default_factory=dict)
    _consumer: Consumer | None = None
    _admin: AdminClient | None = None
    _last_notice: float = 0.0
    _last_warning: float = 0.0

    @property
    def restoring(self) -> set[int]:
        return self._queued | set(self._pending)

    def remaining(self) -> int:
        """Records still to read, about (compacted and control offsets count too)."""
        return sum(max(0, p.target - p.begin - p.records) for p in self._pending.values())

    def start(self, partitions: list[int]) -> None:
        """Restore these partitions (their state starts empty) in the coming steps."""
        for partition in partitions:
            self.state.drop(partition)
            self.state.add(partition)
            self._queued.add(partition)

    def cancel(self, partitions: list[int]) -> None:
        """Stop restoring partitions that moved away again before they were restored."""
        reading = [p for p in partitions if p in self._pending]
        for partition in partitions:
            if partition in self._queued or partition in self._pending:
                self._queued.discard(partition)
                self._pending.pop(partition, None)
                self.state.drop(partition)
        if reading and self._consumer is not None:
            self._consumer.incremental_unassign([TopicPartition(self.topic, p) for p in reading])

    def _begin_queued(self) -> list[int]:
        """Find where each queued partition's restore ends and start reading it; returns the
        partitions already restored (an empty changelog). While the cluster cannot say
        (a leader moving, a broker away) they stay queued for the next step."""
        partitions = sorted(self._queued)
        try:
            targets = self._watermarks(partitions, OffsetSpec.latest())  # type: ignore[no-untyped-call]
            firsts = self._watermarks(partitions, OffsetSpec.earliest())  # type: ignore[no-untyped-call]
        except KafkaException as error:
            # The admin client keeps the leaders it knew (FENCED_LEADER_EPOCH after a broker
            # restart); a new one starts from fresh metadata.
            self._admin = None
            self._warn(f"cannot read the end offsets of {self.topic} yet ({error}); retrying")
            return []
        now = time.monotonic()
        self._queued.clear()
        begins = {p: self._begin_from(p, firsts[p], targets[p]) for p in partitions}
        reading = [p for p in partitions if targets[p] > begins[p]]
        for partition in reading:
            self._pending[partition] = _Progress(targets[partition], now, begins[partition])
        if reading:
            self._restore_consumer().incremental_assign(
                [
                    TopicPartition(
                        self.topic, p, begins[p] if begins[p] > firsts[p] else OFFSET_BEGINNING
                    )
                    for p in reading
                ]
            )
            log.info(
                "restoring %s partitions %s from the changelog (%d offsets)",
                self.topic,
                reading,
                sum(targets[p] - begins[p] for p in reading),
            )
        return [p for p in partitions if p not in self._pending]

    def _begin_from(self, partition: int, first: int, end: int) -> int:
        """Where the partition's changelog is read from: the local store's position, with
        the store's entries loaded, when the store can be completed from the log; else
        the log's start (the store's copy dropped)."""
        store = self.store
        if store is None:
            return first
        position = store.position(partition)
        if not usable(position, first, end, self.delete_retention_s):
            if position is not None:
                log.warning(
                    "local state of %s[%d] at offset %d cannot be completed from the changelog "
                    "(offsets %d to %d, tombstones kept %.0fs); restoring it from the beginning",
                    self.topic,
                    partition,
                    position.next_offset,
                    first,
                    end,
                    self.delete_retention_s,
                )
            store.forget(partition)
            return first
        assert position is not None
        started = time.monotonic()
        self.state.add(partition, store.entries(partition))
        log.info(
            "loaded %s[%d] from local state: %d keys up to offset %d in %.2fs",
            self.topic,
            partition,
            self.state.size(partition),
            position.next_offset,
            time.monotonic() - started,
        )
        if position.next_offset >= end:
            store.apply({}, {partition: position.next_offset})  # still current: a fresh stamp
        return position.next_offset

    def _warn(self, message: str) -> None:
        now = time.monotonic()
        if now - self._last_warning >= PROGRESS_EVERY_S:
            self._last_warning = now
            log.warning(message)

    def step(self, timeout_s: float) -> list[int]:
        """Read what is there (up to ``timeout_s``); the partitions restored by this step."""
        done = self._begin_queued() if self._queued else []
        if not self._pending:
            return done
        consumer = self._restore_consumer()
        entries: dict[int, list[tuple[bytes, bytes | None]]] = defaultdict(list)
        for message in consumer.consume(RESTORE_BATCH, timeout_s):
            error = message.error()
            partition = message.partition()
            progress = self._pending.get(partition) if partition is not None else None
            if progress is None or partition is None:
                continue
            if error is not None:
                if error.code() == KafkaError._PARTITION_EOF:
                    progress.eof = True
                elif error.fatal():
                    raise KafkaException(error)
                else:  # a broker away, a leader moving: librdkafka retries the fetch
                    self._warn(f"restoring {self.topic}: {error}")
                continue
            key = message.key()
            if key is not None:
                entries[partition].append((key, message.value()))
            progress.records += 1
            progress.eof = False
        for partition, batch in entries.items():
            self.state.add(partition, batch)
            if self.store is not None:
                self.store.append_restored(partition, batch)
        done += self._finished(consumer)
        self._notice()
        return done

    def _finished(self, consumer: Consumer) -> list[int]:
        candidates = [p for p, progress in self._pending.items() if progress.eof]
        if not candidates:
            return []
        positions = consumer.position([TopicPartition(self.topic, p) for p in candidates])
        reached = {
            tp.partition: tp.offset
            for tp in positions
            if tp.offset >= self._pending[tp.partition].target
        }
        done = list(reached)
        if self.store is not None and reached:
            self.store.apply({}, reached)  # the store now holds the log up to here
        for partition in done:
            progress = self._pending.pop(partition)
            log.info(
                "restored %s[%d]: %d records, %d keys in %.2fs",
                self.topic,
                partition,
                progress.records,
                self.state.size(partition),
                time.monotonic() - progress.started,
            )
        if done:
            consumer.incremental_unassign([TopicPartition(self.topic, p) for p in done])
        return done

    def progress(self) -> str:
        """Records read and left, the rate and the ETA of the restores in progress."""
        now = time.monotonic()
        read = sum(p.records for p in self._pending.values())
        started = min((p.started for p in self._pending.values()), default=now)
        rate = read / max(1e-3, now - started)
        left = self.remaining()
        eta = f"ETA {left / rate:.0f}s" if rate > 0 else "ETA unknown"
        return f"{read} records read, about {left} left ({rate:.0f} records/s, {eta})"

    def _notice(self) -> None:
        now = time.monotonic()
        if not self._pending or now - self._last_notice < PROGRESS_EVERY_S:
            return
        self._last_notice = now
        log.info("restoring %s: %s", self.topic, self.progress())

    def prepare(self) -> None:
        """Connect the restore's clients while the group join is under way, so the first
        restore does not begin with a bootstrap, a metadata request and broker connections
        (about half a second on an idle machine)."""
        try:
            self._restore_consumer().list_topics(self.topic, timeout=5)
            if self._admin is None:
                self._admin = served(AdminClient(self.kafka))
            self._admin.list_topics(self.topic, timeout=5)
        except KafkaException as error:  # only a head start: the restore retries on its own
            log.debug("could not prepare the restore of %s: %s", self.topic, error)

    def _watermarks(self, partitions: list[int], spec: OffsetSpec) -> dict[int, int]:
        """Uncommitted offsets (earliest or latest) of changelog partitions."""
        if self._admin is None:
            self._admin = served(AdminClient(self.kafka))
        try:
            offsets = partition_offsets(
                self._admin,
                [(self.topic, p) for p in partitions],
                spec,
                IsolationLevel.READ_UNCOMMITTED,
                timeout_s=5,
            )
        except TimeoutError as error:
            raise KafkaException(KafkaError(KafkaError._TIMED_OUT, str(error))) from error
        return {partition: offset for (_, partition), offset in offsets.items()}

    def _restore_consumer(self) -> Consumer:
        if self._consumer is None:
            self._consumer = Consumer(
                {
                    **self.kafka,
                    "group.id": f"{self.topic}-restore",  # never joined, never committed
                    "enable.auto.commit": False,
                    "enable.partition.eof": True,
                    "isolation.level": "read_committed",
                    # At the end there is nothing to wait for: a fetch that finds only a
                    # commit marker must return at once, not after the default 500 ms.
                    "fetch.wait.max.ms": 10,
                    "fetch.max.bytes": 64 * 1024 * 1024,
                    "max.partition.fetch.bytes": 16 * 1024 * 1024,
                }
            )
        return self._consumer

    def close(self) -> None:
        if self._consumer is not None:
            self._consumer.close()
            self._consumer = None
