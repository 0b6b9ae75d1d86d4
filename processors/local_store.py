"""A worker's state on local disk, consistent with a committed changelog position.

``CQRS_PROCESSOR__STORE=sqlite://`` keeps each state partition in a SQLite
database of the worker's instance slot (``<datadir>/<app id>/state-<slot>.sqlite``),
so a restarted worker reads its state from disk and only the changelog's
tail from Kafka, however it stopped (SIGKILL included).

What the store holds is only ever committed: a transaction's writes reach it
after Kafka committed the transaction, together with the changelog offsets
that transaction ends at, in one SQLite transaction (``apply``). The store is
therefore always the fold of its partition's changelog up to the stored
position, plus, at most, later committed writes whose position was not learnt
(a commit that failed but happened, ``processors.commit_outcome``). Replaying
the changelog from the stored position over it gives the partition's state
exactly: every write after the position is replayed in order, and no write in
the store is one the log does not hold. The store is bound to one changelog
topic by its Kafka topic id (``bind``): a changelog deleted and created again
under the same name, whatever its offsets, empties the store.

The one hazard is a tombstone compacted away: a compacted changelog drops a
deleted key's tombstone after ``delete.retention.ms``. A store whose position
is older than that (by wall clock) may hold a key deleted since, so it is not
used: the partition is restored from the beginning (``usable``). So is a store
whose position lies outside the changelog partition (a topic recreated).

SQLite runs in WAL mode with ``synchronous=NORMAL``: a process killed at any
point loses no committed SQLite transaction; a power loss may lose the last
ones, which the changelog's tail then restores.

Writes go to SQLite on a thread of their own, in the order they were asked
for, so neither a transaction's commit nor a restore waits for the disk (SQLite
runs without the interpreter lock). A write still queued when the process dies
is lost with its position: the store is then older, never wrong. Reads wait for
the queue to drain first; a write that failed is raised by the next call.
"""

from __future__ import annotations

import logging
import queue
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from core.errors import LocalStoreError

log = logging.getLogger("cqrs.state")

SCHEMA = (
    "CREATE TABLE IF NOT EXISTS entries ("
    " partition INTEGER NOT NULL, key BLOB NOT NULL, value BLOB NOT NULL,"
    " PRIMARY KEY (partition, key)) WITHOUT ROWID",
    "CREATE TABLE IF NOT EXISTS positions ("
    " partition INTEGER PRIMARY KEY, next_offset INTEGER NOT NULL,"
    " written_at REAL NOT NULL)",
    "CREATE TABLE IF NOT EXISTS changelog (topic_id TEXT NOT NULL)",
)
Writes = Mapping[bytes, bytes | None]  # None deletes the key
QUEUED_WRITES_MAX = 32  # writes (a commit's, or a restore batch of up to 20,000 records)


@dataclass(frozen=True)
class Position:
    next_offset: int  # the first changelog offset the store has not applied
    written_at: float  # wall clock (s) of the last write that set it


def usable(
    position: Position | None,
    first: int,
    end: int,
    delete_retention_s: float,
    now: float | None = None,
) -> bool:
    """Whether a stored partition may be completed from the changelog's tail: its position
    lies within the partition's offsets [first, end] and is younger than the tombstones'
    retention (else a deletion may have been compacted away unseen)."""
    if position is None:
        return False
    age = (time.time() if now is None else now) - position.written_at
    return first <= position.next_offset <= end and age < delete_retention_s


class LocalStore:
    """The state partitions of one worker instance, in one SQLite database."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        try:
            self._db = self._open(path)
        except sqlite3.DatabaseError as error:
            # Damaged (a disk fault, a truncated copy): kept aside for a look, and every
            # partition restored from the changelog into a new store.
            aside = path.with_name(f"{path.name}.damaged-{int(time.time())}")
            path.rename(aside)
            for suffix in ("-wal", "-shm"):
                path.with_name(path.name + suffix).unlink(missing_ok=True)
            log.warning(
                "local state %s is damaged (%s); moved to %s, restoring from the changelog",
                path,
                error,
                aside,
            )
            self._db = self._open(path)
        self._jobs: queue.Queue[Callable[[], None] | None] = queue.Queue(QUEUED_WRITES_MAX)
        self._failure: BaseException | None = None
        self._writer = threading.Thread(
            target=self._run_writer, name="local-state-writer", daemon=True
        )
        self._writer.start()

    @staticmethod
    def _open(path: Path) -> sqlite3.Connection:
        # One writer: the worker's loop thread.
        db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute("PRAGMA cache_size=-65536")  # 64 MiB: a restore's batches stay cached
            for statement in SCHEMA:
                db.execute(statement)
            db.execute("SELECT count(*) FROM positions").fetchone()
        except sqlite3.DatabaseError:
            db.close()
            raise
        return db

    # -- the writer thread --------------------------------------------------------

    def _run_writer(self) -> None:
        while (job := self._jobs.get()) is not None:
            try:
                if self._failure is None:
                    job()
            except BaseException as error:  # raised to the caller by its next call
                self._failure = error
            finally:
                self._jobs.task_done()
        self._jobs.task_done()

    def _submit(self, job: Callable[[], None]) -> None:
        self._check()
        self._jobs.put(job)

    def flush(self) -> None:
        """Wait until every write asked for is in the store."""
        self._jobs.join()
        self._check()

    def _check(self) -> None:
        if self._failure is not None:
            raise LocalStoreError(
                f"writing local state {self.path} failed: {self._failure}; the worker stops "
                "(free or fix the disk; the store is restored from the changelog's tail)"
            ) from self._failure

    def close(self) -> None:
        """Write what is queued, then close."""
        if self._writer.is_alive():
            self._jobs.put(None)
            self._writer.join()
        self._db.close()
        self._check()

    def bind(self, topic_id: str) -> None:
        """Tie the store to the changelog topic with this id; a store written from another
        topic of the same name (deleted and created again) is emptied first."""
        self.flush()
        db = self._db
        row = db.execute("SELECT topic_id FROM changelog").fetchone()
        if row is not None and row[0] == topic_id:
            return
        db.execute("BEGIN")
        if row is not None:
            log.warning(
                "local state %s was written from another changelog topic (id %s, now %s); "
                "restoring every partition from the changelog",
                self.path,
                row[0],
                topic_id,
            )
            db.execute("DELETE FROM entries")
            db.execute("DELETE FROM positions")
            db.execute("DELETE FROM changelog")
        db.execute("INSERT INTO changelog (topic_id) VALUES (?)", (topic_id,))
        db.execute("COMMIT")

    def position(self, partition: int) -> Position | None:
        self.flush()
        row = self._db.execute(
            "SELECT next_offset, written_at FROM positions WHERE partition = ?", (partition,)
        ).fetchone()
        return None if row is None else Position(int(row[0]), float(row[1]))

    def entries(self, partition: int) -> Iterator[tuple[bytes, bytes]]:
        """The partition's stored entries (the fold up to its position)."""
        self.flush()
        cursor = self._db.execute(
            "SELECT key, value FROM entries WHERE partition = ?", (partition,)
        )
        while rows := cursor.fetchmany(10_000):
            yield from rows

    def count(self, partition: int) -> int:
        self.flush()
        row = self._db.execute(
            "SELECT count(*) FROM entries WHERE partition = ?", (partition,)
        ).fetchone()
        return int(row[0])

    def apply(
        self, writes: Mapping[int, Writes], positions: Mapping[int, int], now: float | None = None
    ) -> None:
        """Committed writes of partitions and, where known, the changelog offsets they end
        at, in one transaction (queued: the caller hands the mappings over)."""
        stamp = time.time() if now is None else now
        self._submit(lambda: self._apply(writes, positions, stamp))

    def _apply(
        self, writes: Mapping[int, Writes], positions: Mapping[int, int], stamp: float
    ) -> None:
        db = self._db
        db.execute("BEGIN")
        try:
            for partition, entries in writes.items():
                self._write_entries(partition, entries.items())
            db.executemany(
                "INSERT INTO positions (partition, next_offset, written_at) VALUES (?, ?, ?) "
                "ON CONFLICT (partition) DO UPDATE SET next_offset = excluded.next_offset, "
                "written_at = excluded.written_at",
                [(partition, offset, stamp) for partition, offset in positions.items()],
            )
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    def _write_entries(self, partition: int, entries: Iterable[tuple[bytes, bytes | None]]) -> None:
        upserts, deletes = [], []
        for key, value in entries:
            if value is None:
                deletes.append((partition, key))
            else:
                upserts.append((partition, key, value))
        upserts.sort()  # in key order SQLite's B-tree takes them about twice as fast
        db = self._db
        if deletes:
            db.executemany("DELETE FROM entries WHERE partition = ? AND key = ?", deletes)
        if upserts:
            db.executemany(
                "INSERT INTO entries (partition, key, value) VALUES (?, ?, ?) "
                "ON CONFLICT (partition, key) DO UPDATE SET value = excluded.value",
                upserts,
            )

    def append_restored(
        self, partition: int, entries: Iterable[tuple[bytes, bytes | None]]
    ) -> None:
        """Changelog records read by a restore, in order (a later record of a key wins);
        the position is set once the restore ends (``apply`` with no writes)."""
        last: dict[bytes, bytes | None] = {}
        for key, value in entries:
            last[key] = value
        self.apply({partition: last}, {})

    def forget(self, partition: int) -> None:
        """Drop a partition's entries and position (it is restored from the beginning)."""
        self._submit(lambda: self._forget(partition))

    def _forget(self, partition: int) -> None:
        db = self._db
        db.execute("BEGIN")
        db.execute("DELETE FROM entries WHERE partition = ?", (partition,))
        db.execute("DELETE FROM positions WHERE partition = ?", (partition,))
        db.execute("COMMIT")
