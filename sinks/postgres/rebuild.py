"""Rebuilding a PostgreSQL projection side by side, then switching in one transaction.

1. **Shadow**: a new table set of the next generation, built by the
   projection's migrations (``schema.create_shadow``).
2. **Replay** ``events`` from the beginning into the shadow (no publication),
   never past the live projection's stored positions, which keep moving while
   the live sink runs: the shadow chases them.
3. **Switch**, once the shadow is within one batch of the live positions: lock
   the projection's ``projection_sets`` row ``FOR UPDATE`` (the live sink's next
   write waits on its ``FOR SHARE``), read the live positions (now frozen),
   replay exactly up to them, then in the same transaction point the pointer
   and the views at the shadow, carry over unpublished outbox entries and drop
   the old set. Readers see the old set until the commit and the new one
   after; the live sink's next write goes to the new set, whose positions
   equal those it had.

The rebuilt projection reflects exactly the events the live one had applied
when it was switched; the live sink then goes on from there.
"""

from __future__ import annotations

import logging
import time

from psycopg import sql

from core.settings import Settings
from schemas.serde import AvroSerde
from sinks.base import Partition
from sinks.postgres import schema
from sinks.postgres.database import Database
from sinks.postgres.projection import PostgresProjection
from sinks.postgres.schema import Cursor
from sinks.postgres.sink import PostgresSink, read_positions
from sinks.rebuild import RebuildProgress, RebuildReport, Replayer

log = logging.getLogger("cqrs.sinks.rebuild")


def rebuild(
    settings: Settings,
    projection: PostgresProjection[object],
    serde: AvroSerde,
    progress: RebuildProgress,
) -> RebuildReport:
    base = settings.sinks.postgres_schema
    started = time.monotonic()
    control = Database(settings.postgres, f"cqrs-rebuild-{projection.name}")
    writer = Database(settings.postgres, f"cqrs-rebuild-{projection.name}-writer")
    try:
        with control.transaction() as cur:
            schema.migrate(cur, base, [projection.plan])  # the live side exists and is current
            shadow = schema.create_shadow(cur, base, projection.plan)
        log.info("rebuilding %s into %s", projection.name, shadow)
        sink = PostgresSink(projection, settings, writer, None, table_set=shadow)
        replayer = Replayer(settings, sink, serde, progress)
        try:
            _chase(settings, projection, control, replayer, progress)
            old = _switch(settings, projection, control, replayer, shadow)
        except BaseException:
            _drop(control, base, shadow)
            raise
        finally:
            replayer.close()
        log.info("%s now serves from %s (was %s)", projection.name, shadow, old)
        return RebuildReport(
            projection.name,
            shadow,
            replayer.replayed,
            replayer.skipped,
            time.monotonic() - started,
            dict(replayer.positions),
        )
    finally:
        writer.close()
        control.close()


def _live_positions(
    cur: Cursor, settings: Settings, projection: str, partitions: list[Partition]
) -> dict[Partition, int] | None:
    active = schema.active_table_set(cur, settings.sinks.postgres_schema, projection)
    if active is None:
        return None
    found = read_positions(cur, active, projection, partitions)
    return {p: found.get(p, 0) for p in partitions}


def _targets(
    settings: Settings, projection: str, control: Database, replayer: Replayer
) -> dict[Partition, int]:
    """Where the shadow may go now: the live positions (never past them)."""
    partitions = replayer.partitions()
    with control.transaction() as cur:
        live = _live_positions(cur, settings, projection, partitions)
    return live if live is not None else replayer.ends()


def _chase(
    settings: Settings,
    projection: PostgresProjection[object],
    control: Database,
    replayer: Replayer,
    progress: RebuildProgress,
) -> None:
    """Replay until the shadow is within one batch of the (moving) live positions."""
    close_enough = settings.sinks.batch_max_records
    targets = _targets(settings, projection.name, control, replayer)
    progress.phase(f"replaying events into {projection.name}", _gap(targets, replayer))
    while True:
        replayer.run_until(targets)
        targets = _targets(settings, projection.name, control, replayer)
        gap = _gap(targets, replayer)
        if gap <= close_enough:
            return
        progress.phase(f"catching up with the live {projection.name}", gap)


def _switch(
    settings: Settings,
    projection: PostgresProjection[object],
    control: Database,
    replayer: Replayer,
    shadow: str,
) -> str | None:
    base = settings.sinks.postgres_schema
    partitions = replayer.partitions()
    with control.transaction() as cur:
        schema.generation_of(cur, base, projection.name, for_update=True)  # live writes wait
        old = schema.active_table_set(cur, base, projection.name)
        live = _live_positions(cur, settings, projection.name, partitions)
        replayer.run_until(live if live is not None else replayer.ends())
        schema.switch(cur, base, projection.plan, shadow, old)
    return old


def _gap(targets: dict[Partition, int], replayer: Replayer) -> int:
    return sum(max(0, t - replayer.positions.get(p, 0)) for p, t in targets.items())


def _drop(control: Database, base: str, shadow: str) -> None:
    try:
        with control.transaction() as cur:
            cur.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(shadow)))
            schema.forget_scope(cur, base, shadow)
    except Exception as error:  # the next rebuild drops it too
        log.warning("could not drop the unfinished shadow %s: %s", shadow, error)
