"""The shop's read models as projection entries: what ``aggregates.shop`` declares.

Each entry builds its projection lazily, so that only a process that runs the
projection imports its store's client.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from core.settings import Settings
from sinks.registry import PostgresEntry


def _order_summary(_settings: Settings) -> Any:
    from aggregates.read_side.order_summary import OrderSummaryProjection

    return OrderSummaryProjection()


def _inventory_levels(_settings: Settings) -> Any:
    from aggregates.read_side.inventory_levels import InventoryLevelsProjection

    return InventoryLevelsProjection()


def _sales_analytics(settings: Settings) -> Any:
    from aggregates.read_side.sales_analytics import SalesAnalyticsProjection

    return SalesAnalyticsProjection(timedelta(seconds=settings.sinks.analytics_grace_s))


ORDER_SUMMARY = PostgresEntry(
    "order-summary",
    "PostgreSQL order_summary (one row per order) and customer_orders (order history); "
    "topic order-summary",
    _order_summary,
)
INVENTORY_LEVELS = PostgresEntry(
    "inventory-levels",
    "PostgreSQL inventory_levels (on hand, reserved, available per SKU); topic inventory-levels",
    _inventory_levels,
)
SALES_ANALYTICS = PostgresEntry(
    "sales-analytics",
    "PostgreSQL sales_windows (per minute and hour, per SKU and overall, by event time) and "
    "sales_late_events; topic sales-analytics",
    _sales_analytics,
)
