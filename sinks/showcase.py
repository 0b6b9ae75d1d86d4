"""Read-only looks at the read side, as a downstream reader sees it (used by ``cqrs demo``)."""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import dict_row

from cqrs.settings import Settings
from sinks.search.backend import open_backend


def _rows(settings: Settings, query: sql.Composed, limit: int, like: str) -> list[dict[str, Any]]:
    with (
        psycopg.connect(settings.postgres.conninfo(), row_factory=dict_row) as connection,
        connection.cursor() as cursor,
    ):
        cursor.execute(query, {"limit": limit, "like": like})
        return list(cursor.fetchall())


def order_statuses(settings: Settings, order_ids: list[str]) -> dict[str, str]:
    """Current status per order in the ``order_summary`` read model."""
    schema = settings.sinks.postgres_schema
    with psycopg.connect(settings.postgres.conninfo()) as connection:
        rows = connection.execute(
            sql.SQL("SELECT order_id, status FROM {} WHERE order_id = ANY(%s)").format(
                sql.Identifier(schema, "order_summary")
            ),
            [order_ids],
        ).fetchall()
    return {str(order_id): str(status) for order_id, status in rows}


def orders(settings: Settings, like: str = "%", limit: int = 12) -> list[dict[str, Any]]:
    """Order summaries whose id matches the SQL pattern ``like``."""
    query = sql.SQL(
        "SELECT order_id, customer_id, status, item_count, total_cents, currency, version "
        "FROM {} WHERE order_id LIKE %(like)s ORDER BY order_id LIMIT %(limit)s"
    ).format(sql.Identifier(settings.sinks.postgres_schema, "order_summary"))
    return _rows(settings, query, limit, like)


def customer_history(settings: Settings, like: str = "%", limit: int = 8) -> list[dict[str, Any]]:
    """Per customer: orders (ids matching ``like``) and their total, from customer_orders."""
    query = sql.SQL(
        "SELECT customer_id, count(*) AS orders, sum(total_cents) AS total_cents FROM {} "
        "WHERE order_id LIKE %(like)s GROUP BY customer_id ORDER BY customer_id LIMIT %(limit)s"
    ).format(sql.Identifier(settings.sinks.postgres_schema, "customer_orders"))
    return _rows(settings, query, limit, like)


def inventory(settings: Settings, like: str = "%", limit: int = 12) -> list[dict[str, Any]]:
    query = sql.SQL(
        "SELECT sku, name, on_hand, reserved, available, version FROM {} "
        "WHERE sku LIKE %(like)s ORDER BY sku LIMIT %(limit)s"
    ).format(sql.Identifier(settings.sinks.postgres_schema, "inventory_levels"))
    return _rows(settings, query, limit, like)


def sales(settings: Settings, like: str = "%", limit: int = 12) -> list[dict[str, Any]]:
    """Sales windows of SKUs matching ``like`` (and the overall rows), newest first."""
    query = sql.SQL(
        "SELECT granularity, window_start, sku, revenue_cents, units, order_count FROM {} "
        "WHERE sku LIKE %(like)s ORDER BY granularity DESC, window_start DESC, sku "
        "LIMIT %(limit)s"
    ).format(sql.Identifier(settings.sinks.postgres_schema, "sales_windows"))
    return _rows(settings, query, limit, like)


def search_orders(settings: Settings, text: str, size: int = 5) -> list[dict[str, Any]]:
    """Full-text search over the order documents, through the index alias."""
    backend = open_backend(settings.search)
    try:
        query = {"multi_match": {"query": text, "fields": ["*"], "lenient": True}}
        return backend.search(f"{settings.search.index_prefix}-orders", query, size)
    finally:
        backend.close()
