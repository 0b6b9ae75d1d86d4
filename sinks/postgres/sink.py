"""The sink of every PostgreSQL projection: rows and positions in one transaction.

One ``write`` is one transaction:

1. read the live table set from ``projection_sets`` ``FOR SHARE`` (a rebuild's
   switch waits for it, and the next write follows the switch);
2. lock this projection's ``projection_offsets`` rows ``FOR UPDATE`` and drop
   entries below the stored positions: a redelivered record, or one a second
   owner during a rebalance already applied, is never applied twice;
3. let the projection apply the rest (version-guarded upserts);
4. advance the positions; note the changed view keys in ``publication_outbox``;
   ``NOTIFY`` waiters of read-your-writes;
5. commit; then publish the changed views on the projection topic and clear
   the outbox entry. A crash between commit and publication leaves the entry,
   and the next owner of the partition publishes those views (in their current
   version) before it writes anything else.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Collection, Mapping, Sequence
from typing import Generic, TypeVar

from prometheus_client import Counter
from psycopg import sql

from core.settings import Settings
from sinks.base import BatchingSink, EventRecord, Partition, SinkBatch
from sinks.postgres import schema
from sinks.postgres.database import Database
from sinks.postgres.projection import Applied, PostgresProjection, View
from sinks.postgres.schema import Cursor
from sinks.publication import ViewPublisher

log = logging.getLogger("cqrs.sinks.postgres")
C = TypeVar("C")

LATE_EVENTS = Counter(
    "cqrs_late_events_total",
    "Events later than a windowed projection's grace period, left out of its windows.",
    ["projection"],
)


def notify_channel(base: str, projection: str) -> str:
    """The LISTEN/NOTIFY channel a projection signals on after each commit."""
    return f"cqrs_{base}_{projection.replace('-', '_')}"[:63]


class PostgresSink(BatchingSink[C], Generic[C]):
    """Writes one projection; ``table_set`` fixes the target (a rebuild's shadow).

    Writes may run in the runner's writer thread while the next batch is
    consumed (``concurrent_flush``): conversion is pure, and the partitions
    owned are shared under a lock.
    """

    concurrent_flush = True

    def __init__(
        self,
        projection: PostgresProjection[C],
        settings: Settings,
        database: Database,
        publisher: ViewPublisher | None = None,
        *,
        table_set: str | None = None,
    ) -> None:
        super().__init__()
        self.projection = projection.name
        self.model = projection
        self.event_types = projection.event_types
        self.base = settings.sinks.postgres_schema
        self.database = database
        self._publisher = publisher if projection.view_topic else None
        self._fixed = table_set
        self._owned: set[int] = set()
        self._owned_lock = threading.Lock()
        self._republish_due = False
        self._channel = notify_channel(self.base, projection.name)

    # -- the Sink protocol -------------------------------------------------------------

    def setup(self) -> None:
        if self._fixed is not None:
            return  # a shadow set is built by the rebuild
        with self.database.transaction() as cur:
            for line in schema.migrate(cur, self.base, [self.model.plan]):
                log.info("migrated %s", line)

    def stored_positions(self, partitions: Collection[Partition]) -> dict[Partition, int]:
        with self.database.transaction() as cur:
            target = self._target(cur, lock=False)
            found = read_positions(cur, target, self.projection, partitions)
        with self._owned_lock:
            self._owned.update(number for _, number in partitions)
        self._republish_due = self._publisher is not None
        return found

    def convert(self, record: EventRecord) -> C | None:
        return self.model.convert(record)

    def write(self, batch: SinkBatch[C]) -> None:
        if self._republish_due:
            self._republish()
        with self.database.transaction() as cur:
            target = self._target(cur, lock=True)
            stored = lock_positions(cur, target, self.projection, batch.positions)
            fresh = [e for e in batch.entries if e.offset >= stored.get((e.topic, e.partition), 0)]
            if len(fresh) < len(batch.entries):
                log.info(
                    "%s: %d record(s) were applied before; skipped",
                    self.projection,
                    len(batch.entries) - len(fresh),
                )
            wanted = self._publisher is not None
            applied = self.model.apply(cur, target, fresh, views=wanted) if fresh else Applied()
            advance_positions(cur, target, self.projection, batch.positions, stored)
            outbox = self._note_outbox(cur, target, applied)
            cur.execute("SELECT pg_notify(%s, '')", (self._channel,))
        if applied.late_events:
            LATE_EVENTS.labels(self.projection).inc(applied.late_events)
        if outbox:
            self._publish([v for views in applied.views.values() for v in views], target, outbox)

    def revoke(self, partitions: Collection[Partition]) -> None:
        super().revoke(partitions)
        with self._owned_lock:
            self._owned.difference_update(number for _, number in partitions)

    def close(self) -> None:
        if self._publisher is not None:
            self._publisher.close()
        self.database.close()

    # -- table set and publication -----------------------------------------------------

    def _target(self, cur: Cursor, *, lock: bool) -> str:
        if self._fixed is not None:
            return self._fixed
        found = schema.active_table_set(cur, self.base, self.projection, share=lock)
        if found is None:
            raise LookupError(
                f"projection {self.projection} has no table set in schema {self.base}; "
                "run `cqrs projections migrate`"
            )
        return found

    def _note_outbox(self, cur: Cursor, target: str, applied: Applied) -> list[int]:
        if self._publisher is None or not applied.views:
            return []
        insert = sql.SQL(
            "INSERT INTO {} (partition, view_keys) VALUES (%s, %s) RETURNING id"
        ).format(sql.Identifier(target, "publication_outbox"))
        ids = []
        for partition, views in sorted(applied.views.items()):
            cur.execute(insert, (partition, [view.key for view in views]))
            row = cur.fetchone()
            assert row is not None
            ids.append(int(str(row[0])))
        return ids

    def _publish(self, views: Sequence[View], target: str, outbox: list[int]) -> None:
        assert self._publisher is not None and self.model.view_topic and self.model.view_record
        try:
            self._publisher.publish(self.model.view_topic, self.model.view_record, views)
        except Exception:
            self._republish_due = True  # the outbox keeps them; published before the next write
            raise
        self._clear_outbox(target, outbox)

    def _clear_outbox(self, target: str, ids: list[int]) -> None:
        try:
            with self.database.transaction() as cur:
                cur.execute(
                    sql.SQL("DELETE FROM {} WHERE id = ANY(%s)").format(
                        sql.Identifier(target, "publication_outbox")
                    ),
                    (ids,),
                )
        except Exception as error:  # published already: a leftover entry only republishes
            log.warning("%s: outbox entries %s not cleared: %s", self.projection, ids, error)

    def _owned_partitions(self) -> list[int]:
        with self._owned_lock:
            return sorted(self._owned)

    def _republish(self) -> None:
        """Publish views committed by an earlier owner (or attempt) but never published."""
        with self.database.transaction() as cur:
            target = self._target(cur, lock=False)
            cur.execute(
                sql.SQL(
                    "SELECT id, view_keys FROM {} WHERE partition = ANY(%s) ORDER BY id"
                ).format(sql.Identifier(target, "publication_outbox")),
                (self._owned_partitions(),),
            )
            pending = [(int(str(row[0])), _texts(row[1])) for row in cur.fetchall()]
            keys = sorted({key for _, found in pending for key in found})
            views = self.model.load_views(cur, target, keys) if keys else []
        if pending:
            log.info("%s: publishing %d view(s) left over from before", self.projection, len(views))
            self._publish(views, target, [i for i, _ in pending])
        self._republish_due = False


def read_positions(
    cur: Cursor, table_set: str, projection: str, partitions: Collection[Partition]
) -> dict[Partition, int]:
    cur.execute(
        sql.SQL("SELECT topic, partition, next_offset FROM {} WHERE projection = %s").format(
            sql.Identifier(table_set, "projection_offsets")
        ),
        (projection,),
    )
    wanted = set(partitions)
    found: dict[Partition, int] = {}
    for topic, number, next_offset in cur.fetchall():
        key = (str(topic), int(str(number)))
        if key in wanted:
            found[key] = int(str(next_offset))
    return found


def lock_positions(
    cur: Cursor, table_set: str, projection: str, positions: Mapping[Partition, int]
) -> dict[Partition, int]:
    """The stored positions of the batch's partitions, locked until commit (rows created)."""
    table = sql.Identifier(table_set, "projection_offsets")
    for topic, numbers in _by_topic(positions).items():
        cur.execute(
            sql.SQL(
                "INSERT INTO {} (projection, topic, partition, next_offset) "
                "SELECT %s, %s, p, 0 FROM unnest(%s::int[]) AS p ON CONFLICT DO NOTHING"
            ).format(table),
            (projection, topic, numbers),
        )
    cur.execute(
        sql.SQL(
            "SELECT topic, partition, next_offset FROM {} WHERE projection = %s "
            "ORDER BY topic, partition FOR UPDATE"
        ).format(table),
        (projection,),
    )
    return {(str(t), int(str(p))): int(str(o)) for t, p, o in cur.fetchall()}


def advance_positions(
    cur: Cursor,
    table_set: str,
    projection: str,
    positions: Mapping[Partition, int],
    stored: Mapping[Partition, int],
) -> None:
    moved = {key: value for key, value in positions.items() if value > stored.get(key, 0)}
    table = sql.Identifier(table_set, "projection_offsets")
    for topic, numbers in _by_topic(moved).items():
        cur.execute(
            sql.SQL(
                "UPDATE {} AS o SET next_offset = v.next_offset, updated_at = now() "
                "FROM unnest(%s::int[], %s::bigint[]) AS v(partition, next_offset) "
                "WHERE o.projection = %s AND o.topic = %s AND o.partition = v.partition"
            ).format(table),
            (numbers, [moved[(topic, n)] for n in numbers], projection, topic),
        )


def _by_topic(positions: Mapping[Partition, int]) -> dict[str, list[int]]:
    grouped: dict[str, list[int]] = {}
    for topic, number in sorted(positions):
        grouped.setdefault(topic, []).append(number)
    return grouped


def _texts(value: object) -> list[str]:
    return [str(item) for item in value] if isinstance(value, list) else []
