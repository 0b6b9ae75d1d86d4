"""Reads of the domain's PostgreSQL projections for the query service (asyncio, psycopg 3).

The service reads the views of the base schema (``sinks.postgres_schema``) that
every projection exposes, through a pool of connections of the reader role. It
learns each view's columns and primary key from the catalog of the live table
set (views do not carry NOT NULL or keys), again after a rebuild switched it.

Waits for a version (``min_version``) share one ``LISTEN`` connection: the sinks
``NOTIFY`` their projection's channel at each commit, and on each notification
one query reads the versions of every aggregate awaited in that projection, so
64 waiters cost one query per commit, not 64. Every half second the waiters are
checked anyway, in case a notification was lost with a connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from core.domain import load_domain
from core.errors import ProjectionNotReadyError, StoreUnavailableError
from core.settings import Settings
from cqrs.query.tables import (
    Column,
    ListQuery,
    ReadTable,
    by_id_statement,
    list_statement,
    page_of,
    versions_statement,
)
from sinks.postgres.projection import PostgresProjection
from sinks.postgres.schema import table_set_name
from sinks.postgres.sink import notify_channel
from sinks.registry import PostgresEntry, projection

log = logging.getLogger("cqrs.query")

RECHECK_S = 0.5
TABLES_TTL_S = 30.0
CONNECT_TIMEOUT_S = 5


@dataclass
class _Waits:
    """Waiters of one projection: aggregate id -> [(version, future of the version seen)]."""

    by_id: dict[str, list[tuple[int, asyncio.Future[int]]]] = field(default_factory=dict)


def postgres_projections(settings: Settings) -> dict[str, PostgresProjection[Any]]:
    """The domain's PostgreSQL projections by name (built, not run)."""
    found: dict[str, PostgresProjection[Any]] = {}
    for declared in load_domain(settings.domain).projections:
        entry = projection(declared.name, settings)
        if isinstance(entry, PostgresEntry):
            found[declared.name] = entry.factory(settings)
    return found


class PostgresReads:
    def __init__(self, settings: Settings, projections: Mapping[str, PostgresProjection[Any]]):
        self._settings = settings
        self._base = settings.sinks.postgres_schema
        self._projections = dict(projections)
        self._pool = AsyncConnectionPool(
            settings.postgres.conninfo(),
            min_size=1,
            max_size=settings.query.pool_size,
            open=False,
            timeout=CONNECT_TIMEOUT_S * 2,
            kwargs={
                "autocommit": True,
                "connect_timeout": CONNECT_TIMEOUT_S,
                "application_name": "cqrs-query",
            },
        )
        self._tables: dict[str, tuple[float, ReadTable]] = {}
        # The read by id, rendered once per table description: it is the hot path.
        self._by_id: dict[str, tuple[ReadTable, bytes]] = {}
        self._waits: dict[str, _Waits] = {name: _Waits() for name in self._projections}
        self._listener: asyncio.Task[None] | None = None
        self._listening = False

    @property
    def names(self) -> list[str]:
        return list(self._projections)

    @property
    def listening(self) -> bool:
        return self._listening

    def has_versions(self, name: str) -> bool:
        return self._projections[name].version_table is not None

    async def open(self) -> None:
        # The service starts even while the database is down; reads answer 503 until it is up.
        await self._pool.open(wait=False)
        self._listener = asyncio.create_task(self._listen(), name="postgres-listen")

    async def close(self) -> None:
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._listener
        await self._pool.close()

    async def ping(self) -> None:
        await self._fetch(sql.SQL("SELECT 1"), [])

    async def table(self, name: str) -> ReadTable:
        """The projection's readable view, described by the catalog (cached for 30 s)."""
        cached = self._tables.get(name)
        if cached is not None and time.monotonic() - cached[0] < TABLES_TTL_S:
            return cached[1]
        described = await self._describe(name)
        self._tables[name] = (time.monotonic(), described)
        return described

    async def get(self, name: str, aggregate_id: str) -> dict[str, Any] | None:
        table = await self.table(name)
        rendered = self._by_id.get(name)
        if rendered is None or rendered[0] is not table:
            rendered = (table, by_id_statement(table).as_bytes(None))
            self._by_id[name] = rendered
        rows = await self._fetch(rendered[1], [aggregate_id], table=name)
        return rows[0] if rows else None

    async def page(self, name: str, query: ListQuery) -> tuple[list[Mapping[str, Any]], str | None]:
        table = await self.table(name)
        statement, params = list_statement(table, query)
        return page_of(await self._fetch(statement, params, table=name), query)

    async def versions(self, name: str, ids: Sequence[str]) -> dict[str, int]:
        table = await self.table(name)
        rows = await self._fetch(versions_statement(table), [list(ids)], table=name, plain=True)
        return {str(row[0]): int(row[1]) for row in rows}  # type: ignore[index]

    async def shadows(self, name: str) -> list[tuple[str, int, int]]:
        """Rebuilds under way: (shadow table set, offsets it replayed, offsets of the live set)."""
        prefix = table_set_name(self._base, name, 0).removesuffix("0")
        sets = await self._fetch(
            sql.SQL(
                "SELECT nspname FROM pg_namespace WHERE nspname ~ %s AND nspname <> "
                "(SELECT active_schema FROM {} WHERE projection = %s)"
            ).format(sql.Identifier(self._base, "projection_sets")),
            [f"^{re.escape(prefix)}[0-9]+$", name],
            table=name,
        )
        if not sets:
            return []
        found = []
        live = await self._replayed(await self._active(name), name)
        for row in sets:
            shadow = str(row["nspname"])
            found.append((shadow, await self._replayed(shadow, name), live))
        return found

    async def _active(self, name: str) -> str:
        rows = await self._fetch(
            sql.SQL("SELECT active_schema FROM {} WHERE projection = %s").format(
                sql.Identifier(self._base, "projection_sets")
            ),
            [name],
            table=name,
        )
        if not rows:
            raise ProjectionNotReadyError(
                f"projection {name} has no tables yet; run `cqrs projections migrate {name}`"
            )
        return str(rows[0]["active_schema"])

    async def _replayed(self, table_set: str, name: str) -> int:
        rows = await self._fetch(
            sql.SQL(
                "SELECT COALESCE(sum(next_offset), 0) AS total FROM {} WHERE projection = %s"
            ).format(sql.Identifier(table_set, "projection_offsets")),
            [name],
            table=name,
        )
        return int(rows[0]["total"])

    async def wait_for_version(
        self, name: str, aggregate_id: str, version: int, timeout_s: float
    ) -> int | None:
        """The version the projection shows once it is at least ``version``; None on timeout."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[int] = loop.create_future()
        waiters = self._waits[name].by_id.setdefault(aggregate_id, [])
        waiters.append((version, future))  # registered before the first look: no lost wake-up
        try:
            seen = (await self.versions(name, [aggregate_id])).get(aggregate_id)
            if seen is not None and seen >= version:
                return seen
            return await asyncio.wait_for(asyncio.shield(future), timeout_s)
        except TimeoutError:
            return None
        finally:
            waiters.remove((version, future))
            if not waiters:
                self._waits[name].by_id.pop(aggregate_id, None)

    async def _check(self, name: str) -> None:
        waits = self._waits[name].by_id
        if not waits:
            return
        seen = await self.versions(name, list(waits))
        for aggregate_id, version in seen.items():
            for wanted, future in waits.get(aggregate_id, []):
                if version >= wanted and not future.done():
                    future.set_result(version)

    async def _listen(self) -> None:
        channels = {notify_channel(self._base, name): name for name in self._projections}
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(
                    self._settings.postgres.conninfo(),
                    autocommit=True,
                    connect_timeout=CONNECT_TIMEOUT_S,
                    application_name="cqrs-query-listen",
                ) as conn:
                    for channel in channels:
                        await conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(channel)))
                    self._listening = True
                    await self._dispatch(conn, channels)
            except (psycopg.Error, OSError, StoreUnavailableError) as error:
                log.warning("query: waiting for versions by polling; LISTEN failed: %s", error)
            finally:
                self._listening = False
            await self._check_all()
            await asyncio.sleep(RECHECK_S)

    async def _dispatch(self, conn: psycopg.AsyncConnection[Any], channels: dict[str, str]) -> None:
        while True:
            notified: set[str] = set()
            async for notice in conn.notifies(timeout=RECHECK_S):
                if notice.channel in channels:
                    notified.add(channels[notice.channel])
            # Each notified projection now, the others on the half-second recheck.
            await self._check_all(notified or None)

    async def _check_all(self, names: set[str] | None = None) -> None:
        for name in names or self._projections:
            try:
                await self._check(name)
            except (StoreUnavailableError, ProjectionNotReadyError) as error:
                log.debug("query: cannot check versions of %s: %s", name, error)

    async def _describe(self, name: str) -> ReadTable:
        declared = self._projections[name]
        view = declared.version_table or declared.exposed[0]
        active = await self._active(name)
        relation = sql.SQL("CAST({} AS regclass)").format(sql.Literal(f'"{active}"."{view}"'))
        columns = await self._fetch(
            sql.SQL(
                "SELECT attname AS name, format_type(atttypid, atttypmod) AS type, "
                "attnotnull AS not_null FROM pg_attribute WHERE attrelid = {} AND attnum > 0 "
                "AND NOT attisdropped ORDER BY attnum"
            ).format(relation),
            [],
            table=name,
        )
        key = await self._fetch(
            sql.SQL(
                "SELECT a.attname AS name FROM pg_index i JOIN pg_attribute a "
                "ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey) "
                "WHERE i.indrelid = {} AND i.indisprimary "
                "ORDER BY array_position(i.indkey::int2[], a.attnum)"
            ).format(relation),
            [],
            table=name,
        )
        key_columns = tuple(str(row["name"]) for row in key) or (declared.version_key,)
        if declared.version_key and declared.version_table == view:
            key_columns = (declared.version_key,)
        return ReadTable(
            projection=name,
            base=self._base,
            view=view,
            columns=tuple(
                Column(str(row["name"]), str(row["type"]), bool(row["not_null"])) for row in columns
            ),
            key=key_columns,
            version="version" if declared.version_table == view else None,
        )

    async def _fetch(
        self,
        statement: sql.SQL | sql.Composed | bytes,
        params: Sequence[object],
        *,
        table: str = "",
        plain: bool = False,
    ) -> list[dict[str, Any]]:
        try:
            async with self._pool.connection() as conn:
                cursor = conn.cursor() if plain else conn.cursor(row_factory=dict_row)
                async with cursor as cur:
                    await cur.execute(statement, params)
                    return list(await cur.fetchall())  # type: ignore[arg-type]
        except psycopg.errors.UndefinedTable:
            self._tables.pop(table, None)
            raise ProjectionNotReadyError(
                f"projection {table} has no tables yet; run `cqrs projections migrate {table}`"
            ) from None
        except (psycopg.errors.UndefinedColumn, psycopg.errors.InvalidTextRepresentation):
            self._tables.pop(table, None)  # the table set changed under the cached description
            raise
        except (psycopg.OperationalError, PoolTimeout) as error:
            raise StoreUnavailableError(f"PostgreSQL did not answer: {error}") from None
