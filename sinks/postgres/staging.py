"""Bulk loading a batch into a session-local staging table with COPY.

A batch's rows reach PostgreSQL by ``COPY`` into a temporary table (created once
per connection, emptied at every commit), from which one ``INSERT … SELECT``
or ``UPDATE … FROM`` applies them. COPY moves rows several times faster than
array parameters, whose per-element encoding dominates large batches.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from psycopg import sql

from sinks.postgres.schema import Cursor


@dataclass(frozen=True)
class Staging:
    name: str
    columns: tuple[tuple[str, str], ...]  # (column, SQL type)

    @property
    def table(self) -> sql.Identifier:
        return sql.Identifier(self.name)

    @property
    def names(self) -> list[str]:
        return [name for name, _ in self.columns]

    def load(self, cur: Cursor, rows: Iterable[Sequence[Any]]) -> sql.Identifier:
        """COPY ``rows`` (in column order) into the empty staging table; returns its name."""
        definition = sql.SQL(", ").join(
            sql.SQL("{} {}").format(sql.Identifier(name), sql.SQL(kind))
            for name, kind in self.columns
        )
        cur.execute(
            sql.SQL("CREATE TEMP TABLE IF NOT EXISTS {} ({}) ON COMMIT DELETE ROWS").format(
                self.table, definition
            )
        )
        columns = sql.SQL(", ").join(map(sql.Identifier, self.names))
        with cur.copy(sql.SQL("COPY {} ({}) FROM STDIN").format(self.table, columns)) as copy:
            for row in rows:
                copy.write_row(row)
        return self.table
