"""The ``inventory-levels`` projection: one row per SKU with its stock levels.

``inventory_levels(sku, name, on_hand, reserved, available, updated_at,
version)``, ``available`` being a generated column (on hand minus reserved).
One statement per batch: deltas update rows older than their version, and
create the rows of SKUs seen for the first time. Changed levels are published on
the ``inventory-levels`` topic (InventoryLevel).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from aggregates.read_side.model import inventory
from aggregates.read_side.model.inventory import StockDelta
from cqrs.read_models import sql
from sinks.base import Entry, EventRecord
from sinks.postgres.projection import Applied, PostgresProjection, View
from sinks.postgres.schema import Cursor, Migration, position_tables

VIEW_COLUMNS = ("sku", "name", "on_hand", "reserved", "available", "updated_at", "version")


def _tables(schema: str) -> list[sql.Composed]:
    return [
        *position_tables(schema),
        sql.SQL(
            """CREATE TABLE {} (
                sku text PRIMARY KEY,
                name text NOT NULL DEFAULT '',
                on_hand integer NOT NULL,
                reserved integer NOT NULL,
                available integer GENERATED ALWAYS AS (on_hand - reserved) STORED,
                updated_at timestamptz NOT NULL,
                version bigint NOT NULL
            )"""
        ).format(sql.Identifier(schema, "inventory_levels")),
    ]


def apply_statement(schema: str) -> sql.Composed:
    """Update known SKUs, insert new ones; both return the rows as they now are."""
    columns = sql.SQL(", ").join(map(sql.Identifier, VIEW_COLUMNS))
    return sql.SQL(
        "WITH i AS ("
        " SELECT * FROM unnest(%(sku)s::text[], %(name)s::text[], %(on_hand)s::int[],"
        " %(reserved)s::int[], %(updated_at)s::timestamptz[], %(version)s::bigint[])"
        " AS i(sku, name, on_hand, reserved, updated_at, version)"
        "), updated AS ("
        " UPDATE {levels} AS t SET name = COALESCE(i.name, t.name),"
        " on_hand = t.on_hand + i.on_hand, reserved = t.reserved + i.reserved,"
        " updated_at = i.updated_at, version = i.version"
        " FROM i WHERE t.sku = i.sku AND t.version < i.version RETURNING t.*"
        "), created AS ("
        " INSERT INTO {levels} (sku, name, on_hand, reserved, updated_at, version)"
        " SELECT sku, COALESCE(name, ''), on_hand, reserved, updated_at, version FROM i"
        " WHERE NOT EXISTS (SELECT FROM {levels} AS t WHERE t.sku = i.sku)"
        " ON CONFLICT (sku) DO NOTHING RETURNING *"
        ") SELECT {columns} FROM updated UNION ALL SELECT {columns} FROM created"
    ).format(levels=sql.Identifier(schema, "inventory_levels"), columns=columns)


def parameters(deltas: Sequence[StockDelta]) -> dict[str, list[Any]]:
    return {
        "sku": [d.sku for d in deltas],
        "name": [d.name for d in deltas],
        "on_hand": [d.on_hand for d in deltas],
        "reserved": [d.reserved for d in deltas],
        "updated_at": [d.updated_at for d in deltas],
        "version": [d.version for d in deltas],
    }


def view_of(row: Sequence[Any]) -> View:
    value = dict(zip(VIEW_COLUMNS, row, strict=True))
    return View(str(value["sku"]), value)


class InventoryLevelsProjection(PostgresProjection[StockDelta]):
    name = "inventory-levels"
    description = "inventory_levels (one row per SKU: on hand, reserved, available)"
    exposed = ("inventory_levels",)
    migrations = (Migration(1, "inventory_levels", _tables),)
    view_topic = "inventory-levels"
    view_record = "cqrs.views.InventoryLevel"
    version_table = "inventory_levels"
    version_key = "sku"
    event_types = inventory.EVENTS

    def convert(self, record: EventRecord) -> StockDelta | None:
        return inventory.convert(record)

    def apply(
        self, cur: Cursor, schema: str, entries: Sequence[Entry[StockDelta]], *, views: bool = True
    ) -> Applied:
        partition_of = {e.item.sku: e.partition for e in entries}
        deltas = inventory.fold(e.item for e in entries)
        applied = Applied()
        cur.execute(apply_statement(schema), parameters(deltas))
        for found in cur.fetchall():
            view = view_of(found)
            applied.add(partition_of[view.key], view)
        return applied

    def load_views(self, cur: Cursor, schema: str, keys: Sequence[str]) -> list[View]:
        cur.execute(
            sql.SQL("SELECT {} FROM {} WHERE sku = ANY(%s)").format(
                sql.SQL(", ").join(map(sql.Identifier, VIEW_COLUMNS)),
                sql.Identifier(schema, "inventory_levels"),
            ),
            (list(keys),),
        )
        return [view_of(row) for row in cur.fetchall()]
