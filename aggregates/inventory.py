"""The Inventory item aggregate (id = SKU).

Stock on hand is split into units reserved for open orders and units
available. Invariant: available (on hand minus reserved) never goes below zero.
Shipping an order commits its reservation: the units leave the stock.
"""

from __future__ import annotations

import typing
from dataclasses import dataclass, replace
from enum import StrEnum

from aggregates.limits import MAX_UNITS
from cqrs import (
    Aggregate,
    AggregateNotFoundError,
    AlreadyExistsError,
    IllegalTransitionError,
    InvalidCommandError,
)

AGGREGATE_TYPE = "InventoryItem"
INSUFFICIENT_STOCK = "INSUFFICIENT_STOCK"
UNKNOWN_ITEM = "UNKNOWN_ITEM"


class AdjustmentReason(StrEnum):
    RESTOCK = "RESTOCK"
    CORRECTION = "CORRECTION"


@dataclass(frozen=True)
class InventoryItem:
    """State; ``registered`` is False until RegisterItem."""

    registered: bool = False
    name: str = ""
    on_hand: int = 0
    reservations: tuple[tuple[str, int], ...] = ()  # (order id, units), in order of arrival

    @property
    def reserved(self) -> int:
        return sum(units for _, units in self.reservations)

    @property
    def available(self) -> int:
        return self.on_hand - self.reserved

    def reservation(self, order_id: str) -> int | None:
        return next((units for order, units in self.reservations if order == order_id), None)

    def without(self, order_id: str) -> tuple[tuple[str, int], ...]:
        return tuple(entry for entry in self.reservations if entry[0] != order_id)


# -- commands ----------------------------------------------------------------


@dataclass(frozen=True)
class RegisterItem:
    name: str


@dataclass(frozen=True)
class AdjustStock:
    delta: int
    reason: AdjustmentReason
    note: str = ""


@dataclass(frozen=True)
class ReserveStock:
    order_id: str
    quantity: int


@dataclass(frozen=True)
class ReleaseStock:
    order_id: str


@dataclass(frozen=True)
class CommitStock:
    order_id: str


InventoryCommand = RegisterItem | AdjustStock | ReserveStock | ReleaseStock | CommitStock

# -- events ------------------------------------------------------------------


@dataclass(frozen=True)
class ItemRegistered:
    name: str


@dataclass(frozen=True)
class StockAdjusted:
    delta: int
    reason: AdjustmentReason
    note: str = ""


@dataclass(frozen=True)
class StockReserved:
    order_id: str
    quantity: int


@dataclass(frozen=True)
class StockReservationRejected:
    order_id: str
    quantity: int
    available: int
    reason: str = INSUFFICIENT_STOCK


@dataclass(frozen=True)
class StockReleased:
    order_id: str
    quantity: int


@dataclass(frozen=True)
class StockCommitted:
    order_id: str
    quantity: int


InventoryEvent = (
    ItemRegistered
    | StockAdjusted
    | StockReserved
    | StockReservationRejected
    | StockReleased
    | StockCommitted
)

# -- decide ------------------------------------------------------------------


def decide(state: InventoryItem, command: InventoryCommand) -> list[InventoryEvent]:
    match command:
        case RegisterItem(name=name):
            if state.registered:
                raise AlreadyExistsError(
                    "ITEM_ALREADY_REGISTERED", "this SKU is already registered"
                )
            return [ItemRegistered(name)]
        case AdjustStock():
            return [_adjust(state, command)]
        case ReserveStock():
            return [_reserve(state, command)]
        case ReleaseStock(order_id=order_id):
            return [StockReleased(order_id, _reserved_for(state, order_id))]
        case CommitStock(order_id=order_id):
            return [StockCommitted(order_id, _reserved_for(state, order_id))]


def _adjust(state: InventoryItem, command: AdjustStock) -> StockAdjusted:
    _require_registered(state)
    if command.delta == 0:
        raise InvalidCommandError("ZERO_ADJUSTMENT", "a stock adjustment must change the stock")
    if command.reason is AdjustmentReason.RESTOCK and command.delta < 0:
        raise InvalidCommandError(
            "NEGATIVE_RESTOCK", "a restock adds units; use CORRECTION to remove"
        )
    if state.available + command.delta < 0:
        raise IllegalTransitionError(
            "STOCK_BELOW_RESERVED",
            f"removing {-command.delta} units would leave {state.available + command.delta} "
            f"available ({state.on_hand} on hand, {state.reserved} reserved)",
        )
    if state.on_hand + command.delta > MAX_UNITS:
        raise InvalidCommandError(
            "STOCK_LIMIT_EXCEEDED",
            f"adding {command.delta} units to {state.on_hand} on hand exceeds {MAX_UNITS}",
        )
    return StockAdjusted(command.delta, command.reason, command.note)


def _reserve(state: InventoryItem, command: ReserveStock) -> InventoryEvent:
    if command.quantity <= 0:
        raise InvalidCommandError("INVALID_QUANTITY", "a reservation must be for at least one unit")
    if state.reservation(command.order_id) is not None:
        raise IllegalTransitionError("RESERVATION_EXISTS", "this order already holds a reservation")
    if not state.registered:
        # An answer, not an error: the process manager waiting for it must hear back.
        return StockReservationRejected(command.order_id, command.quantity, 0, UNKNOWN_ITEM)
    if command.quantity > state.available:
        return StockReservationRejected(command.order_id, command.quantity, state.available)
    return StockReserved(command.order_id, command.quantity)


def _reserved_for(state: InventoryItem, order_id: str) -> int:
    _require_registered(state)
    units = state.reservation(order_id)
    if units is None:
        raise IllegalTransitionError(
            "NO_RESERVATION", f"order {order_id} holds no reservation here"
        )
    return units


def _require_registered(state: InventoryItem) -> None:
    if not state.registered:
        raise AggregateNotFoundError("ITEM_NOT_REGISTERED", "no item with this SKU is registered")


# -- evolve ------------------------------------------------------------------


def evolve(state: InventoryItem, event: InventoryEvent) -> InventoryItem:
    match event:
        case ItemRegistered(name=name):
            return replace(state, registered=True, name=name)
        case StockAdjusted(delta=delta):
            return replace(state, on_hand=state.on_hand + delta)
        case StockReserved(order_id=order_id, quantity=quantity):
            return replace(state, reservations=(*state.reservations, (order_id, quantity)))
        case StockReservationRejected():
            return state
        case StockReleased(order_id=order_id):
            return replace(state, reservations=state.without(order_id))
        case StockCommitted(order_id=order_id, quantity=quantity):
            return replace(
                state, on_hand=state.on_hand - quantity, reservations=state.without(order_id)
            )


AGGREGATE = Aggregate(
    AGGREGATE_TYPE,
    InventoryItem(),
    decide,
    evolve,
    typing.get_args(InventoryCommand),
    typing.get_args(InventoryEvent),
)
