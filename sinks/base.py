"""The interface every sink implements, and a batching base class for most of them.

The runner (``sinks.runner.SinkRunner``) drives a sink like this::

    sink.setup()                                   # once; retried while the store is down
    positions = sink.stored_positions(assigned)    # on each assignment: where to resume
    for each record consumed:
        sink.add(record, topic, partition, offset)  # buffer; InvalidEventError = poison
    sink.flush(next_offsets)                       # durable write, retried with backoff
    consumer.commit(next_offsets)                  # only after flush returned
    sink.revoke(partitions)                        # partitions taken away: drop their buffer
    sink.close()

Two kinds of stores:

- stores that keep their own positions (PostgreSQL) write the positions in the
  same transaction as the rows and return them from ``stored_positions``; the
  runner seeks there on assignment and the Kafka commit is only informational
  (it feeds lag monitoring);
- stores that cannot (a search index) return ``None`` from ``stored_positions``;
  the runner then resumes from the group's committed offsets, and the sink must
  be idempotent (external versioning), because a crash between a write and the
  commit redelivers the batch.

``flush(positions)`` may be called with positions but no records (everything
consumed was irrelevant to the projection, or dead-lettered): a sink that keeps
positions must still advance them. A failing ``flush`` raises ``SinkError``
(``retryable=True`` for a store that is down or busy) and must leave the buffer
as it was, so the runner can call it again with the same content.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Generic, NamedTuple, TypeVar

Partition = tuple[str, int]  # (topic, partition)
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class EventRecord:
    """One event as a sink sees it: decoded, upcast to the current shape."""

    full_name: str  # e.g. "cqrs.events.OrderPlaced"
    value: Mapping[str, Any]  # the record, envelope ("metadata") included
    key: bytes | None = None
    timestamp_ms: int = 0  # the Kafka record's timestamp
    headers: tuple[tuple[str, bytes], ...] = ()
    # Derived once: projections read them for every event.
    event_type: str = field(init=False, compare=False, repr=False)  # e.g. "OrderPlaced"
    metadata: Mapping[str, Any] = field(init=False, compare=False, repr=False)  # the envelope

    def __post_init__(self) -> None:
        found = self.value.get("metadata")
        if not isinstance(found, dict) and not isinstance(found, Mapping):  # dict: fast path
            found = {}
        object.__setattr__(self, "event_type", self.full_name.rpartition(".")[2])
        object.__setattr__(self, "metadata", found)

    @property
    def aggregate_id(self) -> str:
        return str(self.metadata.get("aggregate_id") or "")

    @property
    def sequence(self) -> int:
        """The aggregate's version after this event."""
        return int(self.metadata.get("sequence") or 0)

    @property
    def occurred_at(self) -> datetime | None:
        found = self.metadata.get("occurred_at")
        return found if isinstance(found, datetime) else None


class Entry(NamedTuple, Generic[T]):
    """What a sink made of one record, with where the record came from.

    A tuple: one is built per event, and a frozen dataclass costs several times more.
    """

    topic: str
    partition: int
    offset: int
    item: T


@dataclass(frozen=True)
class SinkBatch(Generic[T]):
    """Entries to write, in consumption order, and the positions the write completes.

    ``positions`` maps each partition to the next offset to consume; it covers
    every record consumed, including those that produced no entry.
    """

    entries: Sequence[Entry[T]]
    positions: Mapping[Partition, int] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.entries)


class Sink(ABC):
    """A writer of one projection into one store; see the module docstring for the protocol."""

    projection: str  # e.g. "order-summary": names the consumer group and the metrics
    # True when ``flush`` may run in a writer thread while the runner goes on
    # calling ``add`` for the next batch (one flush in flight at a time). Such a
    # sink takes what it flushes when ``flush`` starts and, if the write fails,
    # puts it back in front of what was added meanwhile.
    concurrent_flush: bool = False
    # Short names of the events the projection applies (e.g. "OrderPlaced"); the runner
    # skips the others without decoding them. None: every event matters (a projection
    # whose clock moves with each event, for instance).
    event_types: frozenset[str] | None = None

    def setup(self) -> None:  # noqa: B027 - optional hook
        """Prepare the store (create or migrate what the sink writes); idempotent."""

    def stored_positions(self, partitions: Collection[Partition]) -> dict[Partition, int] | None:
        """Next offset to consume per partition, when the store keeps positions.

        ``None`` means the store keeps none and the group's committed offsets
        apply. A partition missing from the answer starts from the beginning of
        the log.
        """
        return None

    @abstractmethod
    def add(self, record: EventRecord, topic: str, partition: int, offset: int) -> None:
        """Buffer one record; raise ``InvalidEventError`` for an event never to be applied."""

    @abstractmethod
    def flush(self, positions: Mapping[Partition, int]) -> None:
        """Write everything buffered durably and advance to ``positions``; retryable."""

    def revoke(self, partitions: Collection[Partition]) -> None:  # noqa: B027 - optional hook
        """Forget what was buffered for partitions this process no longer owns."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections and clients."""


class BatchingSink(Sink, Generic[T]):
    """A sink that converts each record on ``add`` and writes whole batches on ``flush``.

    Subclasses implement ``convert`` (pure: record to item, ``None`` to ignore,
    ``InvalidEventError`` for poison) and ``write`` (IO: one durable write of a
    batch, positions included where the store keeps them).
    """

    def __init__(self) -> None:
        self._entries: list[Entry[T]] = []
        self._entries_lock = threading.Lock()  # add() and a concurrent flush() meet here

    @abstractmethod
    def convert(self, record: EventRecord) -> T | None:
        """What this projection makes of one record; ``None`` when it is irrelevant."""

    @abstractmethod
    def write(self, batch: SinkBatch[T]) -> None:
        """Write one batch durably; raise ``SinkError`` and write nothing on failure."""

    @property
    def buffered(self) -> int:
        return len(self._entries)

    def add(self, record: EventRecord, topic: str, partition: int, offset: int) -> None:
        item = self.convert(record)
        if item is not None:
            entry = Entry(topic, partition, offset, item)
            with self._entries_lock:
                self._entries.append(entry)

    def flush(self, positions: Mapping[Partition, int]) -> None:
        with self._entries_lock:
            taken, self._entries = self._entries, []
        if not taken and not positions:
            return
        try:
            self.write(SinkBatch(tuple(taken), dict(positions)))
        except BaseException:
            with self._entries_lock:  # kept for the retry, ahead of what came since
                self._entries = taken + self._entries
            raise

    def revoke(self, partitions: Collection[Partition]) -> None:
        gone = set(partitions)
        with self._entries_lock:
            self._entries = [e for e in self._entries if (e.topic, e.partition) not in gone]
