"""The Order aggregate (id = order id).

Lifecycle: PLACED → CONFIRMED → SHIPPED, with REJECTED (from PLACED) and
CANCELLED (from PLACED or CONFIRMED, never once shipped).
"""

from __future__ import annotations

import typing
from dataclasses import dataclass, replace
from enum import StrEnum

from aggregates.limits import MAX_CENTS, MAX_UNITS
from cqrs import (
    Aggregate,
    AggregateNotFoundError,
    AlreadyExistsError,
    IllegalTransitionError,
    InvalidCommandError,
)

AGGREGATE_TYPE = "Order"


class OrderStatus(StrEnum):
    PLACED = "PLACED"
    CONFIRMED = "CONFIRMED"
    REJECTED = "REJECTED"
    CANCELLED = "CANCELLED"
    SHIPPED = "SHIPPED"


@dataclass(frozen=True)
class OrderLine:
    sku: str
    quantity: int
    unit_price_cents: int

    @property
    def amount_cents(self) -> int:
        return self.quantity * self.unit_price_cents


@dataclass(frozen=True)
class Address:
    name: str
    street: str
    city: str
    postal_code: str
    country: str


@dataclass(frozen=True)
class Order:
    """State; ``status is None`` until the order is placed."""

    status: OrderStatus | None = None
    customer_id: str = ""
    lines: tuple[OrderLine, ...] = ()
    currency: str = ""

    @property
    def total_cents(self) -> int:
        return sum(line.amount_cents for line in self.lines)


# -- commands ----------------------------------------------------------------


@dataclass(frozen=True)
class PlaceOrder:
    customer_id: str
    lines: tuple[OrderLine, ...]
    shipping_address: Address
    currency: str = "EUR"


@dataclass(frozen=True)
class ConfirmOrder:
    pass


@dataclass(frozen=True)
class RejectOrder:
    reason: str


@dataclass(frozen=True)
class CancelOrder:
    reason: str = ""


@dataclass(frozen=True)
class ShipOrder:
    carrier: str = ""
    tracking_number: str | None = None


OrderCommand = PlaceOrder | ConfirmOrder | RejectOrder | CancelOrder | ShipOrder

# -- events ------------------------------------------------------------------


@dataclass(frozen=True)
class OrderPlaced:
    customer_id: str
    lines: tuple[OrderLine, ...]
    shipping_address: Address
    currency: str
    total_cents: int


@dataclass(frozen=True)
class OrderConfirmed:
    pass


@dataclass(frozen=True)
class OrderRejected:
    reason: str


@dataclass(frozen=True)
class OrderCancelled:
    reason: str = ""


@dataclass(frozen=True)
class OrderShipped:
    carrier: str = ""
    tracking_number: str | None = None


OrderEvent = OrderPlaced | OrderConfirmed | OrderRejected | OrderCancelled | OrderShipped

# -- decide ------------------------------------------------------------------


def decide(state: Order, command: OrderCommand) -> list[OrderEvent]:
    """The events a command leads to, or a DomainError."""
    match command:
        case PlaceOrder():
            return [_place(state, command)]
        case ConfirmOrder():
            _require(state, {OrderStatus.PLACED}, "confirm")
            return [OrderConfirmed()]
        case RejectOrder(reason=reason):
            _require(state, {OrderStatus.PLACED}, "reject")
            return [OrderRejected(reason)]
        case CancelOrder(reason=reason):
            if state.status is OrderStatus.SHIPPED:
                raise IllegalTransitionError(
                    "ORDER_ALREADY_SHIPPED", "a shipped order cannot be cancelled"
                )
            _require(state, {OrderStatus.PLACED, OrderStatus.CONFIRMED}, "cancel")
            return [OrderCancelled(reason)]
        case ShipOrder(carrier=carrier, tracking_number=tracking):
            if state.status is not None and state.status is not OrderStatus.CONFIRMED:
                raise IllegalTransitionError(
                    "ORDER_NOT_CONFIRMED",
                    f"only a confirmed order ships; this one is {state.status}",
                )
            _require(state, {OrderStatus.CONFIRMED}, "ship")
            return [OrderShipped(carrier, tracking)]


def _place(state: Order, command: PlaceOrder) -> OrderPlaced:
    if state.status is not None:
        raise AlreadyExistsError("ORDER_ALREADY_EXISTS", "an order with this id was already placed")
    if not command.lines:
        raise InvalidCommandError("ORDER_HAS_NO_LINES", "an order needs at least one line")
    seen: set[str] = set()
    for line in command.lines:
        if line.quantity <= 0:
            raise InvalidCommandError("INVALID_QUANTITY", f"{line.sku}: quantity must be positive")
        if line.unit_price_cents < 0:
            raise InvalidCommandError(
                "NEGATIVE_PRICE", f"{line.sku}: unit price cannot be negative"
            )
        if line.sku in seen:
            raise InvalidCommandError("DUPLICATE_SKU", f"{line.sku} appears on more than one line")
        seen.add(line.sku)
    units = sum(line.quantity for line in command.lines)
    if units > MAX_UNITS:
        raise InvalidCommandError(
            "ORDER_TOO_LARGE", f"{units} units in one order; at most {MAX_UNITS}"
        )
    total = sum(line.amount_cents for line in command.lines)
    if total > MAX_CENTS:
        raise InvalidCommandError(
            "ORDER_TOO_LARGE", f"a total of {total} cents; at most {MAX_CENTS}"
        )
    return OrderPlaced(
        command.customer_id, command.lines, command.shipping_address, command.currency, total
    )


def _require(state: Order, allowed: set[OrderStatus], action: str) -> None:
    if state.status is None:
        raise AggregateNotFoundError("ORDER_NOT_FOUND", "no order with this id was placed")
    if state.status not in allowed:
        raise IllegalTransitionError(
            "ILLEGAL_TRANSITION", f"cannot {action} an order that is {state.status}"
        )


# -- evolve ------------------------------------------------------------------


def evolve(state: Order, event: OrderEvent) -> Order:
    """Apply a recorded event; no checks (history is history)."""
    match event:
        case OrderPlaced():
            return Order(OrderStatus.PLACED, event.customer_id, event.lines, event.currency)
        case OrderConfirmed():
            return replace(state, status=OrderStatus.CONFIRMED)
        case OrderRejected():
            return replace(state, status=OrderStatus.REJECTED)
        case OrderCancelled():
            return replace(state, status=OrderStatus.CANCELLED)
        case OrderShipped():
            return replace(state, status=OrderStatus.SHIPPED)


AGGREGATE = Aggregate(
    AGGREGATE_TYPE,
    Order(),
    decide,
    evolve,
    typing.get_args(OrderCommand),
    typing.get_args(OrderEvent),
)
