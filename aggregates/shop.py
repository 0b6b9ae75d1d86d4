"""The shop, the pipeline's reference domain: orders, inventory and their fulfilment.

``CQRS_DOMAIN=aggregates.shop:domain`` (the default) runs it; its contracts are
under ``aggregates/schemas`` in the ``cqrs`` namespace.
"""

from __future__ import annotations

from pathlib import Path

from aggregates import fulfilment, inventory, order
from cqrs import Domain

domain = Domain(
    name="shop",
    aggregates=(order.AGGREGATE, inventory.AGGREGATE),
    schemas=Path(__file__).parent / "schemas",
    namespace="cqrs",
    process_managers=(fulfilment.PROCESS_MANAGER,),
)
