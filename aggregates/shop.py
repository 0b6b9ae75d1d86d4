"""The shop, the pipeline's reference domain: orders, inventory and their fulfilment.

``CQRS_DOMAIN=aggregates.shop:domain`` (the default) runs it; its contracts are
under ``aggregates/schemas`` in the ``cqrs`` namespace.
"""

from __future__ import annotations

from pathlib import Path

from aggregates import fulfilment, inventory, order
from cqrs import Domain, Projection, View

domain = Domain(
    name="shop",
    aggregates=(order.AGGREGATE, inventory.AGGREGATE),
    schemas=Path(__file__).parent / "schemas",
    namespace="cqrs",
    process_managers=(fulfilment.PROCESS_MANAGER,),
    projections=(
        Projection(
            "order-summary",
            "aggregates.read_models:ORDER_SUMMARY",
            View("order-summary", "cqrs.views.OrderSummary", "order id"),
        ),
        Projection(
            "inventory-levels",
            "aggregates.read_models:INVENTORY_LEVELS",
            View("inventory-levels", "cqrs.views.InventoryLevel", "sku"),
        ),
        Projection(
            "sales-analytics",
            "aggregates.read_models:SALES_ANALYTICS",
            View(
                "sales-analytics", "cqrs.views.SalesWindow", "granularity/window start/sku/currency"
            ),
        ),
        Projection("search-orders", "aggregates.read_side.search_orders:SEARCH_ORDERS"),
    ),
)
