"""The order fulfilment process manager (saga), as a pure reaction to events.

It talks to aggregates only through commands and events:

- OrderPlaced → reserve stock for every line (ReserveStock per SKU).
- all lines reserved → ConfirmOrder.
- any line refused → RejectOrder, and release what was already reserved.
- OrderCancelled or OrderRejected → release what is still reserved.
- OrderShipped → commit every reservation (the units leave the stock).
- a reservation that arrives after the order was rejected or cancelled is
  released at once (compensation), so no stock stays held by a dead order.

Its state is keyed by order id. ``react`` is deterministic: the processor
derives the issued commands' ids from the causing event's id, so a replayed
event re-issues commands with the same ids, which aggregates deduplicate.
"""

from __future__ import annotations

import typing
from dataclasses import dataclass, replace
from enum import StrEnum

from aggregates import inventory, order
from aggregates.inventory import StockReservationRejected, StockReserved
from aggregates.order import (
    OrderCancelled,
    OrderConfirmed,
    OrderPlaced,
    OrderRejected,
    OrderShipped,
)
from cqrs import Issue, Observation, ProcessManager


class Stage(StrEnum):
    RESERVING = "RESERVING"
    CONFIRMING = "CONFIRMING"
    CONFIRMED = "CONFIRMED"
    REJECTED = "REJECTED"
    CANCELLED = "CANCELLED"
    SHIPPED = "SHIPPED"


DEAD = frozenset({Stage.REJECTED, Stage.CANCELLED})


@dataclass(frozen=True)
class Fulfilment:
    stage: Stage | None = None
    wanted: tuple[tuple[str, int], ...] = ()  # (sku, units) per order line
    held: tuple[str, ...] = ()  # SKUs holding a reservation for this order now
    refused: tuple[str, ...] = ()

    def all_reserved(self) -> bool:
        return {sku for sku, _ in self.wanted} <= set(self.held)


Observed = (
    OrderPlaced
    | OrderConfirmed
    | OrderRejected
    | OrderCancelled
    | OrderShipped
    | StockReserved
    | StockReservationRejected
)


def react(
    state: Fulfilment, order_id: str, source_id: str, event: Observed
) -> tuple[Fulfilment, list[Issue]]:
    """New state and the commands to send, for ``event`` of aggregate ``source_id``."""
    match event:
        case OrderPlaced(lines=lines):
            if state.stage is not None:
                return state, []  # a duplicate delivery of the same fact
            wanted = tuple((line.sku, line.quantity) for line in lines)
            reserve = [
                _to_item(sku, inventory.ReserveStock(order_id, units)) for sku, units in wanted
            ]
            return Fulfilment(Stage.RESERVING, wanted), reserve
        case StockReserved():
            return _reserved(state, order_id, source_id)
        case StockReservationRejected(reason=reason, available=available):
            if state.stage is not Stage.RESERVING:
                return replace(state, refused=(*state.refused, source_id)), []
            why = f"{source_id}: {reason.lower().replace('_', ' ')} ({available} available)"
            rejected = replace(state, stage=Stage.REJECTED, refused=(*state.refused, source_id))
            return _release_all(rejected, order_id, [_to_order(order_id, order.RejectOrder(why))])
        case OrderConfirmed():
            return replace(state, stage=Stage.CONFIRMED), []
        case OrderRejected():
            return _release_all(replace(state, stage=Stage.REJECTED), order_id, [])
        case OrderCancelled():
            return _release_all(replace(state, stage=Stage.CANCELLED), order_id, [])
        case OrderShipped():
            commits = [_to_item(sku, inventory.CommitStock(order_id)) for sku in state.held]
            return replace(state, stage=Stage.SHIPPED, held=()), commits


def _reserved(state: Fulfilment, order_id: str, sku: str) -> tuple[Fulfilment, list[Issue]]:
    if state.stage in DEAD:  # too late: give the units back at once
        return state, [_to_item(sku, inventory.ReleaseStock(order_id))]
    holding = replace(state, held=(*state.held, sku))
    if holding.stage is Stage.RESERVING and holding.all_reserved():
        return replace(holding, stage=Stage.CONFIRMING), [_to_order(order_id, order.ConfirmOrder())]
    return holding, []


def _release_all(
    state: Fulfilment, order_id: str, first: list[Issue]
) -> tuple[Fulfilment, list[Issue]]:
    releases = [_to_item(sku, inventory.ReleaseStock(order_id)) for sku in state.held]
    return replace(state, held=()), [*first, *releases]


def _to_item(sku: str, command: inventory.InventoryCommand) -> Issue:
    return Issue(sku, command)


def _to_order(order_id: str, command: order.OrderCommand) -> Issue:
    return Issue(order_id, command)


def correlate(seen: Observation[Observed]) -> str:
    """The order an event belongs to: a stock event names it, an order event is it."""
    order_id: str | None = getattr(seen.event, "order_id", None)
    return order_id or seen.aggregate_id


def _react_to(
    state: Fulfilment, order_id: str, seen: Observation[Observed]
) -> tuple[Fulfilment, list[Issue]]:
    return react(state, order_id, seen.aggregate_id, seen.event)


PROCESS_MANAGER = ProcessManager(
    "fulfilment", Fulfilment(), typing.get_args(Observed), correlate, _react_to
)
