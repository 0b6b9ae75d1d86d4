"""The order summary: one row per order, and its copy in the customer's order history.

Every order event sets values (status, a lifecycle timestamp, the reason); none
adds to one. So a change carrying version *v* can be applied to any row older
than *v* and is a no-op on a row at *v* or newer: the version guard alone makes
writes idempotent.

A batch is folded per order into either a full ``OrderRow`` (the batch saw the
order placed) or an ``OrderPatch`` (the order was placed in an earlier batch).
``apply`` is the reference semantics the SQL of ``aggregates.read_side.order_summary``
implements.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from aggregates.read_side.model.common import require_envelope
from core.errors import InvalidEventError
from sinks.base import EventRecord

AGGREGATE_TYPE = "Order"
PLACED, CONFIRMED, REJECTED, CANCELLED, SHIPPED = (
    "PLACED",
    "CONFIRMED",
    "REJECTED",
    "CANCELLED",
    "SHIPPED",
)
# Event → (status it leads to, lifecycle timestamp it sets).
TRANSITIONS = {
    "OrderConfirmed": (CONFIRMED, "confirmed_at"),
    "OrderRejected": (REJECTED, "rejected_at"),
    "OrderCancelled": (CANCELLED, "cancelled_at"),
    "OrderShipped": (SHIPPED, "shipped_at"),
}
ORDER_EVENTS = frozenset({"OrderPlaced", *TRANSITIONS})
STAMPS = ("confirmed_at", "rejected_at", "cancelled_at", "shipped_at")


@dataclass(frozen=True, slots=True)
class Line:
    sku: str
    quantity: int
    unit_price_cents: int

    def as_dict(self) -> dict[str, Any]:
        return {
            "sku": self.sku,
            "quantity": self.quantity,
            "unit_price_cents": self.unit_price_cents,
        }


@dataclass(frozen=True, slots=True)
class Placement:
    customer_id: str
    lines: tuple[Line, ...]
    currency: str
    total_cents: int

    @property
    def item_count(self) -> int:
        return sum(line.quantity for line in self.lines)


@dataclass(frozen=True, slots=True)
class OrderChange:
    """What one order event sets: a placement, or a new status with its timestamp."""

    order_id: str
    version: int
    at: datetime
    status: str
    placement: Placement | None = None
    stamp: str | None = None  # which of STAMPS the event sets
    reason: str = ""


@dataclass(frozen=True, slots=True)
class OrderRow:
    """A whole order_summary row (customer_orders holds a subset of it)."""

    order_id: str
    customer_id: str
    status: str
    lines: tuple[Line, ...]
    currency: str
    total_cents: int
    item_count: int
    status_reason: str
    placed_at: datetime
    confirmed_at: datetime | None
    rejected_at: datetime | None
    cancelled_at: datetime | None
    shipped_at: datetime | None
    updated_at: datetime
    version: int


@dataclass(frozen=True, slots=True)
class OrderPatch:
    """A status change of an order placed before the batch; timestamps left None are kept."""

    order_id: str
    status: str
    status_reason: str
    confirmed_at: datetime | None
    rejected_at: datetime | None
    cancelled_at: datetime | None
    shipped_at: datetime | None
    updated_at: datetime
    version: int


def convert(record: EventRecord) -> OrderChange | None:
    """The change an order event makes; None for events of other aggregates."""
    if record.event_type == "OrderPlaced":
        at = require_envelope(record, AGGREGATE_TYPE)
        placement = _placement(record)
        return OrderChange(record.aggregate_id, record.sequence, at, PLACED, placement)
    transition = TRANSITIONS.get(record.event_type)
    if transition is None:
        return None
    at = require_envelope(record, AGGREGATE_TYPE)
    status, stamp = transition
    reason = str(record.value.get("reason") or "") if status in {REJECTED, CANCELLED} else ""
    return OrderChange(record.aggregate_id, record.sequence, at, status, None, stamp, reason)


def _placement(record: EventRecord) -> Placement:
    value = record.value
    raw_lines = value.get("lines") or []
    if not raw_lines:
        raise InvalidEventError("ORDER_HAS_NO_LINES", f"order {record.aggregate_id} has no lines")
    lines = tuple(
        Line(str(item["sku"]), int(item["quantity"]), int(item["unit_price_cents"]))
        for item in raw_lines
    )
    for line in lines:
        if line.quantity <= 0 or line.unit_price_cents < 0:
            raise InvalidEventError(
                "INVALID_LINE",
                f"order {record.aggregate_id}: {line.sku} has quantity {line.quantity} and "
                f"unit price {line.unit_price_cents}",
            )
    total = int(value.get("total_cents") or 0)
    computed = sum(line.quantity * line.unit_price_cents for line in lines)
    if total != computed:
        raise InvalidEventError(
            "TOTAL_MISMATCH",
            f"order {record.aggregate_id} says total {total} but its lines add up to {computed}",
        )
    customer_id = str(value.get("customer_id") or "")
    if not customer_id:
        raise InvalidEventError("MISSING_CUSTOMER", f"order {record.aggregate_id} has no customer")
    return Placement(customer_id, lines, str(value.get("currency") or "EUR"), total)


def fold(changes: Iterable[OrderChange]) -> tuple[list[OrderRow], list[OrderPatch]]:
    """One write per order: a full row when the batch placed it, else a patch."""
    by_order: dict[str, list[OrderChange]] = {}
    for change in changes:
        by_order.setdefault(change.order_id, []).append(change)
    rows: list[OrderRow] = []
    patches: list[OrderPatch] = []
    for history in by_order.values():
        placed = [n for n, change in enumerate(history) if change.placement is not None]
        if placed:
            rows.append(_folded_row(history[placed[-1] :]))
        else:
            patches.append(_folded_patch(history))
    return rows, patches


def _settled(history: list[OrderChange]) -> tuple[OrderChange, dict[str, datetime]]:
    """The last change of a history in version order (duplicates dropped), and its stamps."""
    last = history[0]
    stamps: dict[str, datetime] = {}
    for change in history:
        if change is not last and change.version <= last.version:
            continue  # a duplicate within the batch
        last = change
        if change.stamp:
            stamps[change.stamp] = change.at
    return last, stamps


def _folded_row(history: list[OrderChange]) -> OrderRow:
    first = history[0]
    placement = first.placement
    assert placement is not None
    last, stamps = _settled(history)
    return OrderRow(
        first.order_id,
        placement.customer_id,
        last.status,
        placement.lines,
        placement.currency,
        placement.total_cents,
        placement.item_count,
        last.reason,
        first.at,
        stamps.get("confirmed_at"),
        stamps.get("rejected_at"),
        stamps.get("cancelled_at"),
        stamps.get("shipped_at"),
        last.at,
        last.version,
    )


def _folded_patch(history: list[OrderChange]) -> OrderPatch:
    last, stamps = _settled(history)
    return OrderPatch(
        last.order_id,
        last.status,
        last.reason,
        stamps.get("confirmed_at"),
        stamps.get("rejected_at"),
        stamps.get("cancelled_at"),
        stamps.get("shipped_at"),
        last.at,
        last.version,
    )


def apply(existing: OrderRow | None, write: OrderRow | OrderPatch) -> OrderRow | None:
    """What a stored row becomes after a write: the semantics the SQL implements."""
    if existing is not None and existing.version >= write.version:
        return existing
    if isinstance(write, OrderRow):
        return write
    if existing is None:
        return None  # a patch of an order never placed here changes nothing
    stamps: dict[str, Any] = {
        name: getattr(write, name) or getattr(existing, name) for name in STAMPS
    }
    return replace(
        existing,
        status=write.status,
        status_reason=write.status_reason,
        updated_at=write.updated_at,
        version=write.version,
        **stamps,
    )
