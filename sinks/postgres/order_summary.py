"""The ``order-summary`` projection: ``order_summary`` and ``customer_orders``.

- ``order_summary``: one row per order, everything a screen shows about it
  (status, customer, lines as jsonb, totals, item count, lifecycle timestamps,
  version); read by ``order_id``.
- ``customer_orders``: a customer's order history, one row per (customer,
  order) with status, total, placed_at and version; read by ``customer_id``,
  newest first (index on ``customer_id, placed_at DESC``).

Both are written by one statement per kind of change: full rows (orders the
batch placed) are upserted, patches (orders placed earlier) update; each
statement writes ``order_summary`` and carries the changed rows on to
``customer_orders`` in a data-modifying CTE, guarded by version on both.
Changed summaries are published on the ``order-summary`` topic (OrderSummary).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from psycopg import sql

from sinks.base import Entry, EventRecord
from sinks.model import orders
from sinks.model.orders import OrderChange, OrderPatch, OrderRow
from sinks.postgres.projection import Applied, PostgresProjection, View
from sinks.postgres.schema import Cursor, Migration, position_tables

VIEW_COLUMNS = (
    "order_id",
    "customer_id",
    "status",
    "lines",
    "currency",
    "total_cents",
    "item_count",
    "status_reason",
    "placed_at",
    "confirmed_at",
    "rejected_at",
    "cancelled_at",
    "shipped_at",
    "updated_at",
    "version",
)
ROW_TYPES = (
    "text",
    "text",
    "text",
    "text",  # lines: JSON text, cast to jsonb on insert
    "text",
    "bigint",
    "integer",
    "text",
    "timestamptz",
    "timestamptz",
    "timestamptz",
    "timestamptz",
    "timestamptz",
    "timestamptz",
    "bigint",
)
PATCH_COLUMNS = (
    "order_id",
    "status",
    "status_reason",
    "confirmed_at",
    "rejected_at",
    "cancelled_at",
    "shipped_at",
    "updated_at",
    "version",
)
PATCH_TYPES = ("text", "text", "text", *("timestamptz",) * 5, "bigint")
HISTORY_COLUMNS = (
    "customer_id",
    "order_id",
    "status",
    "currency",
    "total_cents",
    "item_count",
    "placed_at",
    "updated_at",
    "version",
)


def _tables(schema: str) -> list[sql.Composed]:
    return [
        *position_tables(schema),
        sql.SQL(
            """CREATE TABLE {} (
                order_id text PRIMARY KEY,
                customer_id text NOT NULL,
                status text NOT NULL,
                lines jsonb NOT NULL,
                currency text NOT NULL,
                total_cents bigint NOT NULL,
                item_count integer NOT NULL,
                status_reason text NOT NULL DEFAULT '',
                placed_at timestamptz NOT NULL,
                confirmed_at timestamptz,
                rejected_at timestamptz,
                cancelled_at timestamptz,
                shipped_at timestamptz,
                updated_at timestamptz NOT NULL,
                version bigint NOT NULL
            )"""
        ).format(sql.Identifier(schema, "order_summary")),
        sql.SQL(
            """CREATE TABLE {} (
                customer_id text NOT NULL,
                order_id text NOT NULL,
                status text NOT NULL,
                currency text NOT NULL,
                total_cents bigint NOT NULL,
                item_count integer NOT NULL,
                placed_at timestamptz NOT NULL,
                updated_at timestamptz NOT NULL,
                version bigint NOT NULL,
                PRIMARY KEY (customer_id, order_id)
            )"""
        ).format(sql.Identifier(schema, "customer_orders")),
        sql.SQL(
            "CREATE INDEX customer_orders_newest_first ON {} (customer_id, placed_at DESC)"
        ).format(sql.Identifier(schema, "customer_orders")),
    ]


def _unnest(columns: Sequence[str], types: Sequence[str]) -> sql.Composed:
    """``unnest(%(c)s::type[], ...) AS i(c, ...)``: one parameter (an array) per column."""
    arrays = sql.SQL(", ").join(
        sql.SQL("{}::{}[]").format(sql.Placeholder(column), sql.SQL(kind))
        for column, kind in zip(columns, types, strict=True)
    )
    names = sql.SQL(", ").join(map(sql.Identifier, columns))
    return sql.SQL("unnest({}) AS i({})").format(arrays, names)


def _columns(names: Sequence[str], table: str | None = None) -> sql.Composed:
    return sql.SQL(", ").join(
        sql.Identifier(table, name) if table else sql.Identifier(name) for name in names
    )


def _history_upsert(schema: str) -> sql.Composed:
    """customer_orders rows from the CTE ``summary`` (the changed order_summary rows)."""
    updates = sql.SQL(", ").join(
        sql.SQL("{0} = EXCLUDED.{0}").format(sql.Identifier(c)) for c in HISTORY_COLUMNS[2:]
    )
    return sql.SQL(
        "INSERT INTO {history} AS h ({cols}) SELECT {cols} FROM summary "
        "ON CONFLICT (customer_id, order_id) DO UPDATE SET {updates} "
        "WHERE h.version < EXCLUDED.version"
    ).format(
        history=sql.Identifier(schema, "customer_orders"),
        cols=_columns(HISTORY_COLUMNS),
        updates=updates,
    )


def upsert_rows_statement(schema: str) -> sql.Composed:
    values = [
        sql.SQL("i.lines::jsonb") if c == "lines" else sql.Identifier("i", c) for c in VIEW_COLUMNS
    ]
    updates = sql.SQL(", ").join(
        sql.SQL("{0} = EXCLUDED.{0}").format(sql.Identifier(c)) for c in VIEW_COLUMNS[1:]
    )
    template = sql.SQL(
        "WITH summary AS ("
        " INSERT INTO {summary} AS t ({cols}) SELECT {values} FROM {unnest}"
        " ON CONFLICT (order_id) DO UPDATE SET {updates} WHERE t.version < EXCLUDED.version"
        " RETURNING t.*"
        "), history AS ({history}) "
        "SELECT {cols} FROM summary"
    )
    return template.format(
        summary=sql.Identifier(schema, "order_summary"),
        history=_history_upsert(schema),
        cols=_columns(VIEW_COLUMNS),
        values=sql.SQL(", ").join(values),
        unnest=_unnest(VIEW_COLUMNS, ROW_TYPES),
        updates=updates,
    )


def update_patches_statement(schema: str) -> sql.Composed:
    stamps = sql.SQL(", ").join(
        sql.SQL("{0} = COALESCE(i.{0}, t.{0})").format(sql.Identifier(c)) for c in orders.STAMPS
    )
    history_updates = sql.SQL(", ").join(
        sql.SQL("{0} = summary.{0}").format(sql.Identifier(c))
        for c in ("status", "updated_at", "version")
    )
    return sql.SQL(
        "WITH summary AS ("
        " UPDATE {summary} AS t SET status = i.status, status_reason = i.status_reason,"
        " {stamps}, updated_at = i.updated_at, version = i.version"
        " FROM {unnest} WHERE t.order_id = i.order_id AND t.version < i.version"
        " RETURNING t.*"
        "), history AS ("
        " UPDATE {history} AS h SET {history_updates} FROM summary"
        " WHERE h.customer_id = summary.customer_id AND h.order_id = summary.order_id"
        " AND h.version < summary.version"
        ") SELECT {cols} FROM summary"
    ).format(
        summary=sql.Identifier(schema, "order_summary"),
        history=sql.Identifier(schema, "customer_orders"),
        stamps=stamps,
        unnest=_unnest(PATCH_COLUMNS, PATCH_TYPES),
        history_updates=history_updates,
        cols=_columns(VIEW_COLUMNS, "summary"),
    )


def row_parameters(rows: Sequence[OrderRow]) -> dict[str, list[Any]]:
    params: dict[str, list[Any]] = {column: [] for column in VIEW_COLUMNS}
    for row in rows:
        for column in VIEW_COLUMNS:
            value = getattr(row, column)
            if column == "lines":
                value = json.dumps([line.as_dict() for line in value], separators=(",", ":"))
            params[column].append(value)
    return params


def patch_parameters(patches: Sequence[OrderPatch]) -> dict[str, list[Any]]:
    return {column: [getattr(p, column) for p in patches] for column in PATCH_COLUMNS}


def view_of(row: Sequence[Any]) -> View:
    value = dict(zip(VIEW_COLUMNS, row, strict=True))
    value["lines"] = list(value["lines"])
    return View(str(value["order_id"]), value)


class OrderSummaryProjection(PostgresProjection[OrderChange]):
    name = "order-summary"
    description = "order_summary (one row per order) and customer_orders (order history)"
    exposed = ("order_summary", "customer_orders")
    migrations = (Migration(1, "order_summary and customer_orders", _tables),)
    view_topic = "order-summary"
    view_record = "cqrs.views.OrderSummary"
    version_table = "order_summary"
    version_key = "order_id"

    def convert(self, record: EventRecord) -> OrderChange | None:
        return orders.convert(record)

    def apply(self, cur: Cursor, schema: str, entries: Sequence[Entry[OrderChange]]) -> Applied:
        partition_of = {e.item.order_id: e.partition for e in entries}
        rows, patches = orders.fold(e.item for e in entries)
        applied = Applied()
        if rows:
            cur.execute(upsert_rows_statement(schema), row_parameters(rows))
            for found in cur.fetchall():
                view = view_of(found)
                applied.add(partition_of[view.key], view)
        if patches:
            cur.execute(update_patches_statement(schema), patch_parameters(patches))
            for found in cur.fetchall():
                view = view_of(found)
                applied.add(partition_of[view.key], view)
        return applied

    def load_views(self, cur: Cursor, schema: str, keys: Sequence[str]) -> list[View]:
        cur.execute(
            sql.SQL("SELECT {} FROM {} WHERE order_id = ANY(%s)").format(
                _columns(VIEW_COLUMNS), sql.Identifier(schema, "order_summary")
            ),
            (list(keys),),
        )
        return [view_of(row) for row in cur.fetchall()]
