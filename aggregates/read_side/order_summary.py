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

from aggregates.read_side.model import orders
from aggregates.read_side.model.orders import OrderChange, OrderPatch, OrderRow
from cqrs.read_models import sql
from sinks.base import Entry, EventRecord
from sinks.postgres.projection import Applied, PostgresProjection, View
from sinks.postgres.schema import Cursor, Migration, position_tables
from sinks.postgres.staging import Staging

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
    "jsonb",
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


ROWS_STAGE = Staging("cqrs_stage_order_rows", tuple(zip(VIEW_COLUMNS, ROW_TYPES, strict=True)))
PATCHES_STAGE = Staging(
    "cqrs_stage_order_patches", tuple(zip(PATCH_COLUMNS, PATCH_TYPES, strict=True))
)


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
    updates = sql.SQL(", ").join(
        sql.SQL("{0} = EXCLUDED.{0}").format(sql.Identifier(c)) for c in VIEW_COLUMNS[1:]
    )
    template = sql.SQL(
        "WITH summary AS ("
        " INSERT INTO {summary} AS t ({cols}) SELECT {cols} FROM {stage}"
        " ON CONFLICT (order_id) DO UPDATE SET {updates} WHERE t.version < EXCLUDED.version"
        " RETURNING t.*"
        "), history AS ({history}) "
        "SELECT order_id FROM summary"
    )
    return template.format(
        summary=sql.Identifier(schema, "order_summary"),
        history=_history_upsert(schema),
        cols=_columns(VIEW_COLUMNS),
        stage=ROWS_STAGE.table,
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
        " FROM {stage} AS i WHERE t.order_id = i.order_id AND t.version < i.version"
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
        stage=PATCHES_STAGE.table,
        history_updates=history_updates,
        cols=_columns(VIEW_COLUMNS, "summary"),
    )


_JSON = json.JSONEncoder(separators=(",", ":"))  # one encoder: json.dumps builds one per call


def row_values(row: OrderRow) -> tuple[Any, ...]:
    lines = _JSON.encode([line.as_dict() for line in row.lines])
    return (
        row.order_id,
        row.customer_id,
        row.status,
        lines,
        row.currency,
        row.total_cents,
        row.item_count,
        row.status_reason,
        row.placed_at,
        row.confirmed_at,
        row.rejected_at,
        row.cancelled_at,
        row.shipped_at,
        row.updated_at,
        row.version,
    )


def patch_values(patch: OrderPatch) -> tuple[Any, ...]:
    return tuple(getattr(patch, column) for column in PATCH_COLUMNS)


def view_of(row: Sequence[Any]) -> View:
    value = dict(zip(VIEW_COLUMNS, row, strict=True))
    value["lines"] = list(value["lines"])
    return View(str(value["order_id"]), value)


def row_view(row: OrderRow) -> View:
    """The view of a row written whole: what the table now holds, without reading it back."""
    value = {column: getattr(row, column) for column in VIEW_COLUMNS}
    value["lines"] = [line.as_dict() for line in row.lines]
    return View(row.order_id, value)


class OrderSummaryProjection(PostgresProjection[OrderChange]):
    name = "order-summary"
    description = "order_summary (one row per order) and customer_orders (order history)"
    exposed = ("order_summary", "customer_orders")
    migrations = (Migration(1, "order_summary and customer_orders", _tables),)
    view_topic = "order-summary"
    view_record = "cqrs.views.OrderSummary"
    version_table = "order_summary"
    version_key = "order_id"
    event_types = orders.ORDER_EVENTS

    def convert(self, record: EventRecord) -> OrderChange | None:
        return orders.convert(record)

    def apply(
        self, cur: Cursor, schema: str, entries: Sequence[Entry[OrderChange]], *, views: bool = True
    ) -> Applied:
        partition_of = {e.item.order_id: e.partition for e in entries}
        rows, patches = orders.fold(e.item for e in entries)
        applied = Applied()
        if rows:
            ROWS_STAGE.load(cur, map(row_values, rows))
            cur.execute(upsert_rows_statement(schema))
            by_id = {row.order_id: row for row in rows} if views else {}
            for (order_id,) in cur.fetchall() if views else ():
                view = row_view(by_id[str(order_id)])
                applied.add(partition_of[view.key], view)
        if patches:
            PATCHES_STAGE.load(cur, map(patch_values, patches))
            cur.execute(update_patches_statement(schema))
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
