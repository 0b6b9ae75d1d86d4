"""The library's read model: one PostgreSQL row per book (``books``), built on the public
read-model API (``cqrs.read_models``) only; ``domain.py`` declares it as ``books``."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from cqrs.read_models import (
    Applied,
    Cursor,
    Entry,
    EventRecord,
    Migration,
    PostgresEntry,
    PostgresProjection,
    position_tables,
    sql,
)


@dataclass(frozen=True)
class BookChange:
    """What one event makes of a book's row (None: the field stays)."""

    book: str
    version: int
    changed_at: datetime
    title: str | None = None
    member: str | None = None


def _tables(schema: str) -> list[sql.Composed]:
    return [
        *position_tables(schema),
        sql.SQL(
            """CREATE TABLE {} (
                book text PRIMARY KEY,
                title text NOT NULL DEFAULT '',
                lent_to text,
                changed_at timestamptz NOT NULL,
                version bigint NOT NULL
            )"""
        ).format(sql.Identifier(schema, "books")),
    ]


def convert(record: EventRecord) -> BookChange | None:
    """Pure: the change a library event makes to its book's row."""
    at = record.metadata["recorded_at"]
    if record.event_type == "BookAdded":
        return BookChange(record.aggregate_id, record.sequence, at, title=record.value["title"])
    if record.event_type == "BookLent":
        return BookChange(record.aggregate_id, record.sequence, at, member=record.value["member"])
    return None


def latest(changes: Sequence[BookChange]) -> list[BookChange]:
    """Pure: the changes of a batch folded to one per book, in version order."""
    folded: dict[str, BookChange] = {}
    for change in sorted(changes, key=lambda c: c.version):
        before = folded.get(change.book)
        folded[change.book] = (
            change
            if before is None
            else BookChange(
                change.book,
                change.version,
                change.changed_at,
                change.title if change.title is not None else before.title,
                change.member if change.member is not None else before.member,
            )
        )
    return list(folded.values())


class BooksProjection(PostgresProjection[BookChange]):
    name = "books"
    description = "books (one row per book: title, who has it, version)"
    exposed = ("books",)
    migrations = (Migration(1, "books", _tables),)
    version_table = "books"
    version_key = "book"
    event_types = frozenset({"BookAdded", "BookLent"})

    def convert(self, record: EventRecord) -> BookChange | None:
        return convert(record)

    def apply(
        self, cur: Cursor, schema: str, entries: Sequence[Entry[BookChange]], *, views: bool = True
    ) -> Applied:
        changes = latest([entry.item for entry in entries])
        columns: dict[str, list[Any]] = {
            "book": [c.book for c in changes],
            "title": [c.title for c in changes],
            "member": [c.member for c in changes],
            "changed_at": [c.changed_at for c in changes],
            "version": [c.version for c in changes],
        }
        # Only a newer version changes a row: a batch applied again changes nothing.
        cur.execute(
            sql.SQL(
                "INSERT INTO {books} AS t (book, title, lent_to, changed_at, version)"
                " SELECT book, COALESCE(title, ''), member, changed_at, version FROM unnest("
                " %(book)s::text[], %(title)s::text[], %(member)s::text[],"
                " %(changed_at)s::timestamptz[], %(version)s::bigint[])"
                " AS i(book, title, member, changed_at, version)"
                " ON CONFLICT (book) DO UPDATE SET"
                " title = COALESCE(NULLIF(excluded.title, ''), t.title),"
                " lent_to = COALESCE(excluded.lent_to, t.lent_to),"
                " changed_at = excluded.changed_at, version = excluded.version"
                " WHERE t.version < excluded.version"
            ).format(books=sql.Identifier(schema, "books")),
            columns,
        )
        return Applied()


BOOKS = PostgresEntry("books", "PostgreSQL books (one row per book)", lambda _: BooksProjection())
