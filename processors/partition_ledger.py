"""Which events a worker may process, and which offsets it may commit: a pure ledger.

Faust's consumer hands events to agents through buffers that a rebalance, a
seek or a pause of the flow can drop or replay, and its own offset tracking can
then commit past an event that no agent ever saw (faust-streaming 0.15.3: a
record fetched while flow control is being resumed after recovery is skipped
by the stream and its offset committed with the next one). Under exactly-once
this ledger replaces that tracking. Per partition it knows:

- whether this worker owns it (no previous owner's open transaction holds its
  offsets any more, and the consumer has sought to the committed offset);
- the offset of the next event to process (everything below was processed in
  this ownership, or committed before it);
- the offsets the consumer has fetched since its last seek, in order.

An event is processed only if it is the next record fetched for its partition.
A record fetched but never delivered means the delivery dropped it: the worker
seeks back and reads it again. An event that was not fetched since the last
seek is a stale copy from before it and is skipped; the seek guarantees it
comes again. Offsets with no record at all (transaction markers, compaction)
are never fetched, so they never hold anything up.
"""

from __future__ import annotations

import enum
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from faust.types import TP


class Admission(enum.Enum):
    PROCESS = "process"
    NOT_OWNED = "partition not owned (revoked, or not yet sought to its committed offset)"
    ALREADY_PROCESSED = "already processed in this ownership"
    STALE = "fetched before the last seek; it will be fetched again"
    DROPPED_BEFORE = "an earlier fetched record never arrived; reading again from it"


@dataclass
class _Partition:
    next_offset: int | None = None  # None: no committed offset, start at the first record
    fetched: deque[int] = field(default_factory=deque)
    uncommitted: bool = False
    progressed_at: float = 0.0  # when an event was last processed (or fetching restarted)


class PartitionLedger:
    """Per-partition processing and commit bookkeeping of one worker (no IO)."""

    def __init__(self) -> None:
        self._starting: set[TP] = set()
        self._owned: dict[TP, _Partition] = {}

    # -- ownership ------------------------------------------------------------------------
    def assigned(self, partitions: Iterable[TP]) -> None:
        """Offsets stable (no previous owner's transaction holds them); owned once the
        consumer has sought."""
        self._starting = set(partitions)
        for source in list(self._owned):
            if source not in self._starting:
                del self._owned[source]

    def sought(self, committed: Mapping[TP, int | None], now: float) -> None:
        """The consumer sought every partition to its committed offset; fetches restart."""
        for source in self._starting:
            offset = committed.get(source)
            state = self._owned.setdefault(source, _Partition())
            state.fetched.clear()
            state.progressed_at = now
            if offset is not None and offset >= 0:
                # Never below what was processed in this ownership (its output is in the
                # open transaction): those events come again and are skipped.
                state.next_offset = max(state.next_offset or 0, offset)

    def revoked(self, partitions: Iterable[TP]) -> None:
        for source in partitions:
            self._owned.pop(source, None)
            self._starting.discard(source)

    # -- fetching -------------------------------------------------------------------------
    def fetched(self, source: TP, offsets: Iterable[int]) -> None:
        state = self._owned.get(source)
        if state is None:
            return
        state.fetched.extend(offsets)
        if state.next_offset is None and state.fetched:
            state.next_offset = state.fetched[0]

    def sought_one(self, source: TP, offset: int, now: float) -> None:
        """The consumer was sent back to ``offset`` on this partition."""
        state = self._owned.get(source)
        if state is not None:
            state.fetched.clear()
            # Never back over what this ownership processed: its output is in the open
            # transaction, so those records must be skipped when they come again.
            if state.next_offset is None or offset > state.next_offset:
                state.next_offset = offset
            state.progressed_at = now

    def stalled(self, now: float, after_s: float) -> dict[TP, int]:
        """Partitions holding fetched records none of which arrived for ``after_s``.

        A dropped record is noticed when a later one arrives; when none does (the
        last record before a quiet spell was dropped), this finds it: where to re-read.
        """
        return {
            source: self.reread_from(source)
            for source, state in self._owned.items()
            if state.fetched and now - state.progressed_at > after_s
        }

    # -- processing -----------------------------------------------------------------------
    def admit(self, source: TP, offset: int) -> Admission:
        state = self._owned.get(source)
        if state is None:
            return Admission.NOT_OWNED
        expected = state.next_offset
        if expected is not None and offset < expected:
            return Admission.ALREADY_PROCESSED
        fetched = state.fetched
        while fetched and expected is not None and fetched[0] < expected:
            fetched.popleft()  # records re-fetched below the next offset: duplicates
        if not fetched or fetched[0] > offset:
            return Admission.STALE
        if fetched[0] < offset:
            return Admission.DROPPED_BEFORE
        return Admission.PROCESS

    def reread_from(self, source: TP) -> int:
        """Where to seek after ``DROPPED_BEFORE``: the first record not processed."""
        state = self._owned[source]
        return state.fetched[0] if state.next_offset is None else state.next_offset

    def processed(self, source: TP, offset: int, now: float) -> None:
        state = self._owned[source]
        state.fetched.popleft()
        state.next_offset = offset + 1
        state.uncommitted = True
        state.progressed_at = now

    # -- committing -----------------------------------------------------------------------
    def to_commit(self) -> dict[TP, int]:
        """Next offset of each owned partition with events processed since its last commit."""
        return {
            source: state.next_offset
            for source, state in self._owned.items()
            if state.uncommitted and state.next_offset is not None
        }

    def committed(self, offsets: Mapping[TP, int]) -> None:
        for source, offset in offsets.items():
            state = self._owned.get(source)
            if state is not None and state.next_offset == offset:
                state.uncommitted = False
