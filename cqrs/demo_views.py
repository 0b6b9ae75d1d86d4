"""Read-only looks at the read side, as a downstream reader sees it (used by ``cqrs demo``)."""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import dict_row

from core.settings import Settings
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


def _matching(  # noqa: PLR0917 - one call site per read model, all keywords
    settings: Settings,
    view: str,
    columns: tuple[str, ...],
    match: str,
    order_by: str,
    like: str,
    limit: int,
) -> list[dict[str, Any]]:
    """Rows of a read-model view whose ``match`` column is LIKE ``like``, in ``order_by`` order."""
    query = sql.SQL("SELECT {} FROM {} WHERE {} LIKE %(like)s ORDER BY {} LIMIT %(limit)s").format(
        sql.SQL(", ").join(sql.Identifier(column) for column in columns),
        sql.Identifier(settings.sinks.postgres_schema, view),
        sql.Identifier(match),
        sql.SQL(order_by),  # a constant of this module, never user input
    )
    return _rows(settings, query, limit, like)


def orders(settings: Settings, like: str = "%", limit: int = 12) -> list[dict[str, Any]]:
    """Order summaries whose id matches the SQL pattern ``like``."""
    columns = ("order_id", "customer_id", "status", "item_count", "total_cents", "currency")
    return _matching(
        settings, "order_summary", (*columns, "version"), "order_id", "order_id", like, limit
    )


def customer_history(settings: Settings, like: str = "%", limit: int = 8) -> list[dict[str, Any]]:
    """Per customer: orders (ids matching ``like``) and their total, from customer_orders."""
    query = sql.SQL(
        "SELECT customer_id, count(*) AS orders, sum(total_cents) AS total_cents FROM {} "
        "WHERE order_id LIKE %(like)s GROUP BY customer_id ORDER BY customer_id LIMIT %(limit)s"
    ).format(sql.Identifier(settings.sinks.postgres_schema, "customer_orders"))
    return _rows(settings, query, limit, like)


def inventory(settings: Settings, like: str = "%", limit: int = 12) -> list[dict[str, Any]]:
    """Stock levels of the SKUs matching ``like``."""
    columns = ("sku", "name", "on_hand", "reserved", "available", "version")
    return _matching(settings, "inventory_levels", columns, "sku", "sku", like, limit)


def sales(settings: Settings, like: str = "%", limit: int = 12) -> list[dict[str, Any]]:
    """Sales windows of the SKUs matching ``like``: minutes, then hours, newest first."""
    columns = ("granularity", "window_start", "sku", "revenue_cents", "units", "order_count")
    order_by = "granularity DESC, window_start DESC, sku"
    return _matching(settings, "sales_windows", columns, "sku", order_by, like, limit)


def search_orders(settings: Settings, text: str, size: int = 5) -> list[dict[str, Any]]:
    """Full-text search over the order documents, through the index alias."""
    backend = open_backend(settings.search)
    try:
        query = {"multi_match": {"query": text, "fields": ["*"], "lenient": True}}
        return backend.search(f"{settings.search.index_prefix}-orders", query, size)
    finally:
        backend.close()
