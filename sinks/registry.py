"""The projections, by name: what ``cqrs sink run``, ``cqrs projections`` and
read-your-writes find them by.

Every projection provides a ``ProjectionEntry``: build its sink, migrate its
store, rebuild it side by side, and (when it can) wait for an aggregate's
version. Entries are loaded lazily from ``module:attribute`` references, so
the command line imports only the store it works on. A new projection adds one
line to ``ENTRIES``.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Protocol

from core.errors import ConfigurationError, PipelineError
from core.settings import Settings
from schemas.serde import AvroSerde
from sinks.base import Sink
from sinks.rebuild import RebuildProgress, RebuildReport

ENTRIES = {
    "order-summary": "sinks.registry:ORDER_SUMMARY",
    "inventory-levels": "sinks.registry:INVENTORY_LEVELS",
    "sales-analytics": "sinks.registry:SALES_ANALYTICS",
    "search-orders": "sinks.search.entry:SEARCH_ORDERS",
}


class ProjectionTimeoutError(PipelineError):
    """A projection did not reach the awaited version in time."""


class ProjectionEntry(Protocol):
    name: str
    description: str

    def build_sink(self, settings: Settings, serde: AvroSerde) -> Sink:
        """The sink that ``cqrs sink run <name>`` drives."""

    def migrate(self, settings: Settings) -> list[str]:
        """Create or upgrade the projection's store; what changed, as lines."""

    def rebuild(
        self, settings: Settings, serde: AvroSerde, progress: RebuildProgress
    ) -> RebuildReport:
        """Replay the log into a new target beside the live one, then switch to it."""

    def wait_for(
        self, settings: Settings, aggregate_id: str, version: int, timeout_s: float
    ) -> int:
        """Block until the projection shows ``version`` of the aggregate; returns what it shows.

        Raises ``ProjectionTimeoutError`` when the time runs out.
        """


@dataclass(frozen=True)
class PostgresEntry:
    """A PostgreSQL projection (``sinks.postgres``)."""

    name: str
    description: str
    factory: Callable[[Settings], Any]  # Settings -> PostgresProjection

    def build_sink(self, settings: Settings, serde: AvroSerde) -> Sink:
        from sinks.postgres.database import Database
        from sinks.postgres.sink import PostgresSink
        from sinks.publication import ViewPublisher

        publisher = ViewPublisher(settings, serde) if settings.sinks.publish_views else None
        database = Database(settings.postgres, f"cqrs-sink-{self.name}")
        return PostgresSink(self.factory(settings), settings, database, publisher)

    def migrate(self, settings: Settings) -> list[str]:
        from sinks.postgres import schema
        from sinks.postgres.database import Database

        database = Database(settings.postgres, f"cqrs-migrate-{self.name}")
        try:
            with database.transaction() as cur:
                return schema.migrate(
                    cur, settings.sinks.postgres_schema, [self.factory(settings).plan]
                )
        finally:
            database.close()

    def rebuild(
        self, settings: Settings, serde: AvroSerde, progress: RebuildProgress
    ) -> RebuildReport:
        from sinks.postgres.rebuild import rebuild

        return rebuild(settings, self.factory(settings), serde, progress)

    def wait_for(
        self, settings: Settings, aggregate_id: str, version: int, timeout_s: float
    ) -> int:
        from sinks.postgres.read_your_writes import applied_version

        seen = applied_version(settings, self.factory(settings), aggregate_id, version, timeout_s)
        if seen is None:
            raise ProjectionTimeoutError(
                f"{self.name} did not show version {version} of {aggregate_id} within "
                f"{timeout_s:g}s; is `cqrs sink run {self.name}` running and caught up?"
            )
        return seen


def _order_summary(_settings: Settings) -> Any:
    from sinks.postgres.order_summary import OrderSummaryProjection

    return OrderSummaryProjection()


def _inventory_levels(_settings: Settings) -> Any:
    from sinks.postgres.inventory_levels import InventoryLevelsProjection

    return InventoryLevelsProjection()


def _sales_analytics(settings: Settings) -> Any:
    from sinks.postgres.sales_analytics import SalesAnalyticsProjection

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


def names() -> list[str]:
    return list(ENTRIES)


def projection(name: str) -> ProjectionEntry:
    """The entry of ``name``; ConfigurationError naming the known projections otherwise."""
    reference = ENTRIES.get(name)
    if reference is None:
        raise ConfigurationError(
            f"no projection named {name!r}; known projections: {', '.join(ENTRIES)}"
        )
    module, attribute = reference.split(":")
    entry: ProjectionEntry = getattr(importlib.import_module(module), attribute)
    return entry
