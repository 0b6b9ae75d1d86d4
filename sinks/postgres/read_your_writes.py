"""Waiting until a PostgreSQL projection has applied an aggregate's version.

The sink ``NOTIFY``s its channel in every write transaction (delivered at
commit), so a waiter ``LISTEN``s, checks the row's version, and checks again on
each notification, or every half second, until the version is there or the
time is up.
"""

from __future__ import annotations

import time

import psycopg

from core.errors import SinkError
from core.settings import Settings
from sinks.postgres.projection import PostgresProjection
from sinks.postgres.sink import notify_channel

RECHECK_S = 0.5


def applied_version(
    settings: Settings,
    projection: PostgresProjection[object],
    aggregate_id: str,
    version: int,
    timeout_s: float,
) -> int | None:
    """The row's version once it is at least ``version``; None if the time ran out first."""
    base = settings.sinks.postgres_schema
    query = projection.version_query(base)
    if query is None:
        raise SinkError(
            f"projection {projection.name} has no per-aggregate version", retryable=False
        )
    deadline = time.monotonic() + timeout_s
    try:
        with psycopg.connect(
            settings.postgres.conninfo(), autocommit=True, connect_timeout=5
        ) as conn:
            conn.execute(
                psycopg.sql.SQL("LISTEN {}").format(
                    psycopg.sql.Identifier(notify_channel(base, projection.name))
                )
            )
            while True:
                row = conn.execute(query, (aggregate_id,)).fetchone()
                seen = None if row is None else int(str(row[0]))
                if seen is not None and seen >= version:
                    return seen
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                for _ in conn.notifies(timeout=min(left, RECHECK_S), stop_after=1):
                    pass
    except psycopg.errors.UndefinedTable as error:
        raise SinkError(
            f"projection {projection.name} has no tables in schema {base}; run "
            f"`cqrs projections migrate` and `cqrs sink run {projection.name}`",
            retryable=False,
        ) from error
    except psycopg.OperationalError as error:
        raise SinkError(
            f"cannot read {projection.name} from PostgreSQL: {error}", retryable=True
        ) from error
