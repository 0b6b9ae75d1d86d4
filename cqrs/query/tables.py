"""What a list or a read by id of a PostgreSQL projection may ask, and the SQL it becomes.

Pure: a ``ReadTable`` (the view readers query, its columns and key, as the
database describes them) and the query string of a request make a ``ListQuery``;
``list_statement`` composes its SQL with identifiers from the catalog only and
every value as a parameter cast to its column's type.

Lists use keyset pagination: rows come in a total order (the ``order`` column,
then the key columns), and the ``next`` cursor holds the last row's values of
that order, so a page never repeats or skips a row however the table changes
between pages (offsets would). Only NOT NULL columns can order a list, because
NULLs have no place in a row comparison.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from psycopg import sql

from core.errors import QueryParameterError

OPERATORS = {"eq": "=", "ne": "<>", "gt": ">", "gte": ">=", "lt": "<", "lte": "<="}
RESERVED = frozenset({"limit", "after", "order", "timeout", "min_version"})
MAX_LIST_VALUES = 100

_INTEGER = {"smallint", "integer", "bigint"}
_DECIMAL = {"numeric", "real", "double precision"}
_TEXT = {"text", "character varying", "character", "uuid", "citext"}
_TIME = {"timestamp with time zone", "timestamp without time zone", "date"}
_FILTERABLE = _INTEGER | _DECIMAL | _TEXT | _TIME | {"boolean"}


@dataclass(frozen=True)
class Column:
    name: str
    type: str  # as PostgreSQL's format_type() says, e.g. "bigint", "timestamp with time zone"
    not_null: bool

    @property
    def base_type(self) -> str:
        return self.type.split("(", 1)[0].strip()

    @property
    def filterable(self) -> bool:
        return self.base_type in _FILTERABLE

    @property
    def orderable(self) -> bool:
        return self.filterable and self.not_null


@dataclass(frozen=True)
class ReadTable:
    """One projection's readable view: ``<base>.<view>``, keyed by ``key`` (its primary key)."""

    projection: str
    base: str
    view: str
    columns: tuple[Column, ...]
    key: tuple[str, ...]
    version: str | None = None  # column holding the aggregate's version, for min_version

    def column(self, name: str) -> Column | None:
        return next((column for column in self.columns if column.name == name), None)

    @property
    def by_id(self) -> bool:
        """Whether one id names a row (a single-column key)."""
        return len(self.key) == 1


@dataclass(frozen=True)
class Filter:
    column: Column
    operator: str  # a key of OPERATORS, or "in"
    values: tuple[str, ...]


@dataclass(frozen=True)
class ListQuery:
    filters: tuple[Filter, ...]
    order: tuple[Column, ...]  # the total order: the chosen column (if any), then the key
    descending: bool
    after: tuple[str, ...] | None  # the cursor: the last row's order values, as text
    limit: int
    order_name: str = ""  # what ``order`` said, to carry into the next link
    extra: dict[str, str] = field(default_factory=dict)


def parse_value(column: Column, text: str, parameter: str) -> str:
    """``text`` checked against the column's type; returned as the text PostgreSQL casts."""
    kind = column.base_type
    try:
        if kind in _INTEGER:
            int(text)
        elif kind in _DECIMAL:
            Decimal(text)
        elif kind == "boolean":
            if text.lower() not in ("true", "false"):
                raise ValueError(text)
        elif kind == "date":
            date.fromisoformat(text)
        elif kind in _TIME:
            datetime.fromisoformat(text.replace("Z", "+00:00"))
    except (ValueError, InvalidOperation):
        raise QueryParameterError(parameter, f"{text!r} is not a {column.type}") from None
    return text


def parse_list(
    table: ReadTable,
    params: Sequence[tuple[str, str]],
    *,
    default_limit: int,
    max_limit: int,
) -> ListQuery:
    """The list a query string asks for: ``column=v`` (``v1,v2`` for any of them),
    ``column__gt|gte|lt|lte|ne=v``, ``order=column`` or ``order=-column``,
    ``limit=N`` and ``after=<cursor>``."""
    filters: list[Filter] = []
    order_name = ""
    after_text: str | None = None
    limit = default_limit
    for name, value in params:
        if name == "limit":
            limit = _limit(value, max_limit)
        elif name == "order":
            order_name = value
        elif name == "after":
            after_text = value
        elif name in RESERVED:
            continue
        else:
            filters.append(_filter(table, name, value))
    chosen = _order_column(table, order_name)
    key = tuple(_known(table, name, "key") for name in table.key)
    order = ((chosen,) if chosen and chosen.name not in table.key else ()) + key
    after = decode_cursor(after_text, len(order)) if after_text is not None else None
    if after is not None:
        for column, text in zip(order, after, strict=True):
            parse_value(column, text, "after")
    return ListQuery(
        tuple(filters), order, order_name.startswith("-"), after, limit, order_name=order_name
    )


def _limit(value: str, max_limit: int) -> int:
    if not value.isdigit() or not 1 <= int(value) <= max_limit:
        raise QueryParameterError("limit", f"expected a whole number from 1 to {max_limit}")
    return int(value)


def _filter(table: ReadTable, name: str, value: str) -> Filter:
    column_name, _, suffix = name.partition("__")
    operator = suffix or "eq"
    column = table.column(column_name)
    if column is None:
        raise QueryParameterError(
            name, f"no column {column_name!r}; filter on one of {_names(table, 'filterable')}"
        )
    if not column.filterable:
        raise QueryParameterError(name, f"column {column_name} ({column.type}) cannot be filtered")
    if operator not in OPERATORS:
        raise QueryParameterError(
            name, f"unknown operator {operator!r}; use one of {', '.join(sorted(OPERATORS))}"
        )
    values = tuple(value.split(",")) if operator == "eq" and "," in value else (value,)
    if len(values) > MAX_LIST_VALUES:
        raise QueryParameterError(name, f"at most {MAX_LIST_VALUES} values")
    checked = tuple(parse_value(column, item, name) for item in values)
    return Filter(column, "in" if len(checked) > 1 else operator, checked)


def _order_column(table: ReadTable, order: str) -> Column | None:
    if not order:
        return None
    name = order.removeprefix("-")
    column = table.column(name)
    if column is None or not column.orderable:
        raise QueryParameterError(
            "order", f"cannot order by {name!r}; one of {_names(table, 'orderable')}"
        )
    return column


def _known(table: ReadTable, name: str, what: str) -> Column:
    column = table.column(name)
    if column is None:
        raise QueryParameterError(what, f"{table.view} has no column {name!r}")
    return column


def _names(table: ReadTable, quality: str) -> str:
    return ", ".join(column.name for column in table.columns if getattr(column, quality))


def encode_cursor(values: Sequence[object]) -> str:
    """An opaque cursor of a row's order values (base64url of a JSON list of texts)."""
    texts = [_text(value) for value in values]
    return base64.urlsafe_b64encode(json.dumps(texts).encode()).decode().rstrip("=")


def decode_cursor(cursor: str, count: int) -> tuple[str, ...]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        texts = json.loads(base64.urlsafe_b64decode(padded.encode()))
    except (binascii.Error, ValueError, UnicodeDecodeError):
        texts = None
    if (
        not isinstance(texts, list)
        or len(texts) != count
        or not all(isinstance(text, str) for text in texts)
    ):
        raise QueryParameterError(
            "after", "not a cursor of this list (take it from a page's next link, unchanged)"
        )
    return tuple(texts)


def _text(value: object) -> str:
    if isinstance(value, datetime | date):
        return value.isoformat()
    return str(value).lower() if isinstance(value, bool) else str(value)


def _cast(column: Column) -> sql.Composable:
    # The type name comes from the catalog's format_type(), never from a caller.
    return sql.SQL("CAST({} AS {})").format(sql.Placeholder(), sql.SQL(column.type))


def list_statement(table: ReadTable, query: ListQuery) -> tuple[sql.Composed, list[str]]:
    """SELECT of one page (one row more than the limit, to know whether another follows)."""
    conditions: list[sql.Composable] = []
    params: list[str] = []
    for found in query.filters:
        column = sql.Identifier(found.column.name)
        if found.operator == "in":
            casts = sql.SQL(", ").join(_cast(found.column) for _ in found.values)
            conditions.append(sql.SQL("{} IN ({})").format(column, casts))
        else:
            conditions.append(
                sql.SQL("{} {} {}").format(
                    column, sql.SQL(OPERATORS[found.operator]), _cast(found.column)
                )
            )
        params.extend(found.values)
    ordered = sql.SQL(", ").join(sql.Identifier(column.name) for column in query.order)
    if query.after is not None:
        casts = sql.SQL(", ").join(_cast(column) for column in query.order)
        comparison = sql.SQL("<" if query.descending else ">")
        conditions.append(sql.SQL("({}) {} ({})").format(ordered, comparison, casts))
        params.extend(query.after)
    where = (
        sql.SQL(" WHERE {}").format(sql.SQL(" AND ").join(conditions))
        if conditions
        else sql.SQL("")
    )
    direction = sql.SQL(" DESC" if query.descending else "")
    order_by = sql.SQL(", ").join(
        sql.SQL("{}{}").format(sql.Identifier(column.name), direction) for column in query.order
    )
    statement = sql.SQL("SELECT * FROM {}{} ORDER BY {} LIMIT {}").format(
        sql.Identifier(table.base, table.view), where, order_by, sql.Literal(query.limit + 1)
    )
    return statement, params


def by_id_statement(table: ReadTable) -> sql.Composed:
    (key,) = table.key
    return sql.SQL("SELECT * FROM {} WHERE {} = {}").format(
        sql.Identifier(table.base, table.view),
        sql.Identifier(key),
        _cast(_known(table, key, "id")),
    )


def versions_statement(table: ReadTable) -> sql.Composed:
    """(key, version) of the rows among a text array of ids: one query for many waiters."""
    (key,) = table.key
    if table.version is None:
        raise ValueError(f"{table.projection} has no version column")
    return sql.SQL("SELECT {}::text, {} FROM {} WHERE {} = ANY(CAST(%s AS {}[]))").format(
        sql.Identifier(key),
        sql.Identifier(table.version),
        sql.Identifier(table.base, table.view),
        sql.Identifier(key),
        sql.SQL(_known(table, key, "id").type),
    )


def page_of(
    rows: Sequence[Mapping[str, Any]], query: ListQuery
) -> tuple[list[Mapping[str, Any]], str | None]:
    """The page's rows and the cursor of the next page (None on the last page)."""
    page = list(rows[: query.limit])
    if len(rows) <= query.limit or not page:
        return page, None
    last = page[-1]
    return page, encode_cursor([last[column.name] for column in query.order])
