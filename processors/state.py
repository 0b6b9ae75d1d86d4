"""A task's keyed state, one table per owned partition, with writes held until commit.

Writes made while a Kafka transaction is open are staged per partition and
reach the tables only when that transaction commits (``commit``); an aborted
transaction's writes are dropped (``abort``). Reads see staged writes first,
so a batch reads its own writes. The tables therefore always equal the
changelog's committed content for the partitions this worker owns: a
transaction that fails half-way leaves nothing behind, in memory or on disk,
which is what lets a worker abort and carry on in-process.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

StateWrite = tuple[bytes, bytes | None]  # None deletes the key

_DELETED = None


class PartitionedState:
    def __init__(self) -> None:
        self._tables: dict[int, dict[bytes, bytes]] = {}
        self._staged: dict[int, dict[bytes, bytes | None]] = {}

    # -- ownership --------------------------------------------------------------

    def add(self, partition: int, entries: Iterable[tuple[bytes, bytes | None]] = ()) -> None:
        """Own ``partition`` with these committed entries (a changelog read in order)."""
        table = self._tables.setdefault(partition, {})
        for key, value in entries:
            if value is None:
                table.pop(key, None)
            else:
                table[key] = value

    def drop(self, partition: int) -> None:
        """Forget a partition that moved to another worker."""
        self._tables.pop(partition, None)
        self._staged.pop(partition, None)

    def owns(self, partition: int) -> bool:
        return partition in self._tables

    # -- reads and writes ---------------------------------------------------------

    def reader(self, partition: int) -> StateReader:
        return StateReader(self._tables[partition], self._staged.setdefault(partition, {}))

    def stage(self, partition: int, writes: Iterable[StateWrite]) -> None:
        staged = self._staged.setdefault(partition, {})
        for key, value in writes:
            staged[key] = value

    def staged(self) -> Iterator[tuple[int, dict[bytes, bytes | None]]]:
        """The open transaction's writes, by owned partition, one value per key."""
        for partition, staged in self._staged.items():
            if staged and partition in self._tables:
                yield partition, staged

    def commit(self) -> None:
        """The open transaction committed: its writes become the tables' content."""
        for partition, staged in self._staged.items():
            table = self._tables.get(partition)
            if table is None:
                continue
            for key, value in staged.items():
                if value is _DELETED:
                    table.pop(key, None)
                else:
                    table[key] = value
        self._staged = {}

    def abort(self) -> None:
        """The open transaction was aborted: nothing it wrote happened."""
        self._staged = {}

    def items(self, partition: int) -> Iterator[tuple[bytes, bytes]]:
        """The committed entries of one partition."""
        return iter(self._tables.get(partition, {}).items())

    def size(self, partition: int) -> int:
        return len(self._tables.get(partition, {}))


class StateReader:
    """One partition's state as the open transaction sees it."""

    __slots__ = ("_staged", "_table")

    def __init__(self, table: dict[bytes, bytes], staged: dict[bytes, bytes | None]) -> None:
        self._table = table
        self._staged = staged

    def get(self, key: bytes) -> bytes | None:
        staged = self._staged
        if key in staged:
            return staged[key]
        return self._table.get(key)

    __call__ = get
