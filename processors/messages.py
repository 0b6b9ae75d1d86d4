"""Which Avro record is which domain command or event, and of which aggregate.

The contracts (``schemas/avro``) and the domain (``aggregates``) are kept apart;
this table is the only place that joins them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aggregates import inventory, order

COMMANDS_NAMESPACE = "cqrs.commands."
EVENTS_NAMESPACE = "cqrs.events."


@dataclass(frozen=True)
class AggregateKind:
    name: str
    initial: Any
    decide: Callable[[Any, Any], list[Any]]
    evolve: Callable[[Any, Any], Any]
    commands: tuple[type, ...]
    events: tuple[type, ...]


ORDER = AggregateKind(
    order.AGGREGATE_TYPE,
    order.Order(),
    order.decide,
    order.evolve,
    (order.PlaceOrder, order.ConfirmOrder, order.RejectOrder, order.CancelOrder, order.ShipOrder),
    (
        order.OrderPlaced,
        order.OrderConfirmed,
        order.OrderRejected,
        order.OrderCancelled,
        order.OrderShipped,
    ),
)
INVENTORY = AggregateKind(
    inventory.AGGREGATE_TYPE,
    inventory.InventoryItem(),
    inventory.decide,
    inventory.evolve,
    (
        inventory.RegisterItem,
        inventory.AdjustStock,
        inventory.ReserveStock,
        inventory.ReleaseStock,
        inventory.CommitStock,
    ),
    (
        inventory.ItemRegistered,
        inventory.StockAdjusted,
        inventory.StockReserved,
        inventory.StockReservationRejected,
        inventory.StockReleased,
        inventory.StockCommitted,
    ),
)
KINDS = {kind.name: kind for kind in (ORDER, INVENTORY)}

COMMAND_TYPES: dict[str, tuple[AggregateKind, type]] = {
    COMMANDS_NAMESPACE + cls.__name__: (kind, cls)
    for kind in KINDS.values()
    for cls in kind.commands
}
EVENT_TYPES: dict[str, tuple[AggregateKind, type]] = {
    EVENTS_NAMESPACE + cls.__name__: (kind, cls) for kind in KINDS.values() for cls in kind.events
}


def event_name(event: object) -> str:
    return EVENTS_NAMESPACE + type(event).__name__


def command_name(command: object) -> str:
    return COMMANDS_NAMESPACE + type(command).__name__
