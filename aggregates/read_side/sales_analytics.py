"""The ``sales-analytics`` projection: sales per SKU and overall, per minute and hour.

Tables (the rules are in ``aggregates.read_side.model.sales``):

- ``sales_windows(granularity, window_start, sku, currency, window_end,
  revenue_cents, units, order_count)``: ``sku = '*'`` holds all SKUs;
  readers query it (view) by granularity and time range;
- ``sales_late_events``: confirmed sales that came later than the grace
  period, with the watermark that made them late (view; for reconciliation);
- ``sales_pending_orders``: lines of placed orders awaiting confirmation;
- ``sales_watermarks``: the latest event time per partition.

Window totals are incremented, so exactly-once matters: the increments, the
pending orders, the watermarks and the consumed offsets commit in one
transaction, and records below the stored offsets are never applied again.
Changed windows are published on ``sales-analytics`` (SalesWindow), keyed
``<granularity>/<window start ISO>/<sku>/<currency>``. Several sink instances
may publish the same window (its sales come from every partition), so records
of one key can arrive out of order; every change adds an order, so a consumer
keeps the record with the highest ``order_count``. Rebuilt windows have the
same totals.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from aggregates.read_side.model import sales
from aggregates.read_side.model.orders import Line
from aggregates.read_side.model.sales import PendingOrder, SalesEvent, SalesOutcome, WindowKey
from cqrs.read_models import sql
from sinks.base import Entry, EventRecord
from sinks.postgres.projection import Applied, PostgresProjection, View
from sinks.postgres.schema import Cursor, Migration, position_tables

log = logging.getLogger("cqrs.sinks.sales")
WINDOW_COLUMNS = (
    "granularity",
    "window_start",
    "window_end",
    "sku",
    "currency",
    "revenue_cents",
    "units",
    "order_count",
)


def _tables(schema: str) -> list[sql.Composed]:
    def table(name: str, body: str) -> sql.Composed:
        return sql.SQL("CREATE TABLE {} (" + body + ")").format(sql.Identifier(schema, name))

    return [
        *position_tables(schema),
        table(
            "sales_windows",
            """granularity text NOT NULL,
            window_start timestamptz NOT NULL,
            sku text NOT NULL,
            currency text NOT NULL,
            window_end timestamptz NOT NULL,
            revenue_cents bigint NOT NULL,
            units bigint NOT NULL,
            order_count bigint NOT NULL,
            PRIMARY KEY (granularity, window_start, sku, currency)""",
        ),
        table(
            "sales_late_events",
            """event_id text PRIMARY KEY,
            order_id text NOT NULL,
            occurred_at timestamptz NOT NULL,
            watermark timestamptz NOT NULL,
            partition integer NOT NULL,
            "offset" bigint NOT NULL,
            revenue_cents bigint NOT NULL,
            units bigint NOT NULL""",
        ),
        table(
            "sales_pending_orders",
            """order_id text PRIMARY KEY,
            currency text NOT NULL,
            lines jsonb NOT NULL""",
        ),
        table(
            "sales_watermarks",
            """topic text NOT NULL,
            partition integer NOT NULL,
            watermark timestamptz NOT NULL,
            PRIMARY KEY (topic, partition)""",
        ),
    ]


class SalesAnalyticsProjection(PostgresProjection[SalesEvent]):
    name = "sales-analytics"
    description = "sales_windows (per minute and hour, per SKU and overall) and sales_late_events"
    exposed = ("sales_windows", "sales_late_events")
    migrations = (Migration(1, "sales windows, late events, pending orders, watermarks", _tables),)
    view_topic = "sales-analytics"
    view_record = "cqrs.views.SalesWindow"

    def __init__(self, grace: timedelta) -> None:
        self.grace = grace

    def convert(self, record: EventRecord) -> SalesEvent | None:
        return sales.convert(record)

    def apply(
        self, cur: Cursor, schema: str, entries: Sequence[Entry[SalesEvent]], *, views: bool = True
    ) -> Applied:
        topic = entries[0].topic
        events = [(e.partition, e.offset, e.item) for e in entries]
        pending = _pending(cur, schema, sales.orders_to_look_up(e.item for e in entries))
        marks = _watermarks(cur, schema, topic)
        outcome = sales.fold(events, pending, marks, self.grace)
        if outcome.unmatched:
            log.warning(
                "sales-analytics: %d confirmation(s) of orders never seen placed, not counted "
                "(e.g. %s)",
                len(outcome.unmatched),
                outcome.unmatched[0],
            )
        applied = Applied(late_events=len(outcome.late))
        owner = min(e.partition for e in entries)
        for view in _write_windows(cur, schema, outcome):
            applied.add(owner, view)
        _write_pending(cur, schema, outcome)
        _write_watermarks(cur, schema, topic, outcome.watermarks)
        _write_late(cur, schema, outcome)
        return applied

    def load_views(self, cur: Cursor, schema: str, keys: Sequence[str]) -> list[View]:
        parsed = [WindowKey.parse(key) for key in keys]
        cur.execute(
            sql.SQL(
                "SELECT {cols} FROM {windows} AS w JOIN unnest(%s::text[], %s::timestamptz[],"
                " %s::text[], %s::text[]) AS k(granularity, window_start, sku, currency)"
                " USING (granularity, window_start, sku, currency)"
            ).format(
                cols=sql.SQL(", ").join(sql.Identifier("w", c) for c in WINDOW_COLUMNS),
                windows=sql.Identifier(schema, "sales_windows"),
            ),
            (
                [k.granularity for k in parsed],
                [k.start for k in parsed],
                [k.sku for k in parsed],
                [k.currency for k in parsed],
            ),
        )
        return [view_of(row) for row in cur.fetchall()]


def view_of(row: Sequence[Any]) -> View:
    value = dict(zip(WINDOW_COLUMNS, row, strict=True))
    key = WindowKey(value["granularity"], value["window_start"], value["sku"], value["currency"])
    return View(key.text(), value)


def _pending(cur: Cursor, schema: str, order_ids: set[str]) -> dict[str, PendingOrder]:
    if not order_ids:
        return {}
    cur.execute(
        sql.SQL("SELECT order_id, currency, lines FROM {} WHERE order_id = ANY(%s)").format(
            sql.Identifier(schema, "sales_pending_orders")
        ),
        (sorted(order_ids),),
    )
    found = {}
    for order_id, currency, lines in cur.fetchall():
        items = lines if isinstance(lines, list) else []
        found[str(order_id)] = PendingOrder(
            str(currency),
            tuple(Line(i["sku"], int(i["quantity"]), int(i["unit_price_cents"])) for i in items),
        )
    return found


def _watermarks(cur: Cursor, schema: str, topic: str) -> dict[int, datetime]:
    cur.execute(
        sql.SQL("SELECT partition, watermark FROM {} WHERE topic = %s").format(
            sql.Identifier(schema, "sales_watermarks")
        ),
        (topic,),
    )
    return {int(str(p)): w for p, w in cur.fetchall() if isinstance(w, datetime)}


def _write_windows(cur: Cursor, schema: str, outcome: SalesOutcome) -> list[View]:
    if not outcome.windows:
        return []
    keys = sorted(outcome.windows)
    totals = [outcome.windows[k] for k in keys]
    cur.execute(
        sql.SQL(
            "INSERT INTO {windows} AS t (granularity, window_start, sku, currency, window_end,"
            " revenue_cents, units, order_count)"
            " SELECT g, s, k, c, e, r, u, n FROM unnest(%s::text[], %s::timestamptz[],"
            " %s::text[], %s::text[], %s::timestamptz[], %s::bigint[], %s::bigint[],"
            " %s::bigint[]) AS i(g, s, k, c, e, r, u, n)"
            " ON CONFLICT (granularity, window_start, sku, currency) DO UPDATE SET"
            " revenue_cents = t.revenue_cents + EXCLUDED.revenue_cents,"
            " units = t.units + EXCLUDED.units,"
            " order_count = t.order_count + EXCLUDED.order_count"
            " RETURNING {cols}"
        ).format(
            windows=sql.Identifier(schema, "sales_windows"),
            cols=sql.SQL(", ").join(sql.Identifier("t", c) for c in WINDOW_COLUMNS),
        ),
        (
            [k.granularity for k in keys],
            [k.start for k in keys],
            [k.sku for k in keys],
            [k.currency for k in keys],
            [k.end for k in keys],
            [t.revenue_cents for t in totals],
            [t.units for t in totals],
            [t.order_count for t in totals],
        ),
    )
    return [view_of(row) for row in cur.fetchall()]


def _write_pending(cur: Cursor, schema: str, outcome: SalesOutcome) -> None:
    table = sql.Identifier(schema, "sales_pending_orders")
    if outcome.forgotten:
        cur.execute(
            sql.SQL("DELETE FROM {} WHERE order_id = ANY(%s)").format(table),
            (sorted(outcome.forgotten),),
        )
    if outcome.remembered:
        ids = sorted(outcome.remembered)
        cur.execute(
            sql.SQL(
                "INSERT INTO {} (order_id, currency, lines)"
                " SELECT o, c, l::jsonb"
                " FROM unnest(%s::text[], %s::text[], %s::text[]) AS i(o, c, l)"
                " ON CONFLICT (order_id) DO UPDATE SET currency = EXCLUDED.currency,"
                " lines = EXCLUDED.lines"
            ).format(table),
            (
                ids,
                [outcome.remembered[i].currency for i in ids],
                [_lines_json(outcome.remembered[i]) for i in ids],
            ),
        )


def _lines_json(order: PendingOrder) -> str:
    return json.dumps([line.as_dict() for line in order.lines], separators=(",", ":"))


def _write_watermarks(cur: Cursor, schema: str, topic: str, marks: dict[int, datetime]) -> None:
    if not marks:
        return
    partitions = sorted(marks)
    cur.execute(
        sql.SQL(
            "INSERT INTO {} AS t (topic, partition, watermark)"
            " SELECT %s, p, w FROM unnest(%s::int[], %s::timestamptz[]) AS i(p, w)"
            " ON CONFLICT (topic, partition) DO UPDATE"
            " SET watermark = GREATEST(t.watermark, EXCLUDED.watermark)"
        ).format(sql.Identifier(schema, "sales_watermarks")),
        (topic, partitions, [marks[p] for p in partitions]),
    )


def _write_late(cur: Cursor, schema: str, outcome: SalesOutcome) -> None:
    for late in outcome.late:
        log.warning(
            "sales-analytics: order %s confirmed at %s is later than the grace period "
            "(watermark %s); recorded in sales_late_events, not counted",
            late.order_id,
            late.at.isoformat(),
            late.watermark.isoformat(),
        )
    if not outcome.late:
        return
    cur.executemany(
        sql.SQL(
            'INSERT INTO {} (event_id, order_id, occurred_at, watermark, partition, "offset",'
            " revenue_cents, units) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)"
            " ON CONFLICT (event_id) DO NOTHING"
        ).format(sql.Identifier(schema, "sales_late_events")),
        [
            (
                late.event_id,
                late.order_id,
                late.at,
                late.watermark,
                late.partition,
                late.offset,
                late.revenue_cents,
                late.units,
            )
            for late in outcome.late
        ],
    )
