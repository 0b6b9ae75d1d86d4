"""Order documents of the search index and how events fold into them (pure, no IO).

A document is the full state of one order at one aggregate version: it is
built from ``OrderPlaced`` (customer, lines, address, totals) and changed by
the later events (status, reason, carrier). Because it holds the whole state
and its ``version``, the index itself is the fold's memory: a sink that
restarts reads the current document back and applies only events with a
higher sequence (see ``sinks.search.sink``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, NamedTuple

from sinks.base import Entry, EventRecord
from sinks.errors import InvalidEventError
from sinks.model.orders import ORDER_EVENTS

ORDER_AGGREGATE = "Order"
STATUS_AFTER = {
    "OrderPlaced": "PLACED",
    "OrderConfirmed": "CONFIRMED",
    "OrderRejected": "REJECTED",
    "OrderCancelled": "CANCELLED",
    "OrderShipped": "SHIPPED",
}


@dataclass(frozen=True, slots=True)
class OrderChange:
    """One order event as the search projection needs it."""

    order_id: str
    sequence: int
    event_type: str
    event_id: str
    occurred_at: str  # ISO-8601 UTC, formatted once: documents carry it as text
    fields: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class OrderItem:
    sku: str
    quantity: int
    unit_price_cents: int

    @property
    def amount_cents(self) -> int:
        return self.quantity * self.unit_price_cents


@dataclass(frozen=True, slots=True)
class ShippingAddress:
    name: str
    street: str
    city: str
    postal_code: str
    country: str


class OrderDocument(NamedTuple):
    """What the index holds per order (document id = order id).

    A named tuple: immutable, and ``_replace`` is cheap, which matters because
    every event of a backlog makes one.
    """

    order_id: str
    customer_id: str
    status: str
    items: tuple[OrderItem, ...]
    currency: str
    total_cents: int
    shipping_address: ShippingAddress
    placed_at: str  # timestamps as ISO-8601 UTC text, as the index holds them
    updated_at: str
    version: int
    last_event_id: str
    status_reason: str = ""
    carrier: str = ""
    tracking_number: str | None = None
    shipped_at: str | None = None

    @property
    def item_count(self) -> int:
        return sum(item.quantity for item in self.items)

    def to_source(self) -> dict[str, Any]:
        """The JSON document sent to the index."""
        return {
            "order_id": self.order_id,
            "customer_id": self.customer_id,
            "status": self.status,
            "status_reason": self.status_reason,
            "items": [
                {
                    "sku": item.sku,
                    "quantity": item.quantity,
                    "unit_price_cents": item.unit_price_cents,
                    "amount_cents": item.amount_cents,
                }
                for item in self.items
            ],
            "item_count": self.item_count,
            "currency": self.currency,
            "total_cents": self.total_cents,
            "shipping_address": {
                "name": self.shipping_address.name,
                "street": self.shipping_address.street,
                "city": self.shipping_address.city,
                "postal_code": self.shipping_address.postal_code,
                "country": self.shipping_address.country,
            },
            "carrier": self.carrier,
            "tracking_number": self.tracking_number,
            "placed_at": self.placed_at,
            "updated_at": self.updated_at,
            "shipped_at": self.shipped_at,
            "version": self.version,
            "last_event_id": self.last_event_id,
        }

    @classmethod
    def from_source(cls, source: Mapping[str, Any]) -> OrderDocument:
        """A document read back from the index (the inverse of ``to_source``)."""
        address = source["shipping_address"]
        return cls(
            order_id=source["order_id"],
            customer_id=source["customer_id"],
            status=source["status"],
            items=tuple(
                OrderItem(item["sku"], int(item["quantity"]), int(item["unit_price_cents"]))
                for item in source["items"]
            ),
            currency=source["currency"],
            total_cents=int(source["total_cents"]),
            shipping_address=ShippingAddress(
                address["name"],
                address["street"],
                address["city"],
                address["postal_code"],
                address["country"],
            ),
            placed_at=source["placed_at"],
            updated_at=source["updated_at"],
            version=int(source["version"]),
            last_event_id=source["last_event_id"],
            status_reason=source.get("status_reason") or "",
            carrier=source.get("carrier") or "",
            tracking_number=source.get("tracking_number"),
            shipped_at=source.get("shipped_at"),
        )


def order_change(record: EventRecord) -> OrderChange | None:
    """The change an event makes to an order document; None for events of other aggregates."""
    metadata = record.metadata
    if metadata.get("aggregate_type") != ORDER_AGGREGATE:
        return None
    if record.event_type not in ORDER_EVENTS:
        raise InvalidEventError(
            "UNKNOWN_ORDER_EVENT", f"{record.full_name} is not an order event the index knows"
        )
    order_id = record.aggregate_id
    if not order_id or record.sequence < 1:
        raise InvalidEventError(
            "MISSING_ORDER_IDENTITY",
            f"{record.event_type} lacks an aggregate id or a positive sequence",
        )
    occurred_at = _timestamp(
        record.occurred_at or datetime.fromtimestamp(record.timestamp_ms / 1000, UTC)
    )
    fields = {name: value for name, value in record.value.items() if name != "metadata"}
    if record.event_type == "OrderPlaced":
        _check_placed(order_id, fields)
    return OrderChange(
        order_id,
        record.sequence,
        record.event_type,
        str(metadata.get("event_id") or ""),
        occurred_at,
        fields,
    )


def apply(document: OrderDocument | None, change: OrderChange) -> OrderDocument:
    """The document after ``change``; ``InvalidEventError`` when no order was placed."""
    if change.event_type == "OrderPlaced":
        return _placed(change)
    if document is None:
        raise InvalidEventError(
            "ORDER_NOT_PLACED",
            f"{change.event_type} (sequence {change.sequence}) for order {change.order_id}, "
            "which the index has no OrderPlaced for",
        )
    changes: dict[str, Any] = {
        "status": STATUS_AFTER[change.event_type],
        "updated_at": change.occurred_at,
        "version": change.sequence,
        "last_event_id": change.event_id,
    }
    match change.event_type:
        case "OrderRejected" | "OrderCancelled":
            changes["status_reason"] = str(change.fields.get("reason") or "")
        case "OrderShipped":
            changes["carrier"] = str(change.fields.get("carrier") or "")
            changes["tracking_number"] = change.fields.get("tracking_number")
            changes["shipped_at"] = change.occurred_at
    return document._replace(**changes)


@dataclass
class Fold:
    """The outcome of folding one order's changes of a batch onto its stored document."""

    document: OrderDocument | None
    base_version: int
    applied: list[Entry[OrderChange]] = field(default_factory=list)
    already_applied: list[Entry[OrderChange]] = field(default_factory=list)
    rejected: list[tuple[Entry[OrderChange], InvalidEventError]] = field(default_factory=list)
    gaps: list[tuple[int, int]] = field(default_factory=list)  # (expected, got) sequences

    @property
    def changed(self) -> bool:
        return self.document is not None and self.document.version > self.base_version


def fold(document: OrderDocument | None, changes: Sequence[Entry[OrderChange]]) -> Fold:
    """Apply the changes newer than ``document``, in sequence order.

    Changes at or below the document's version were applied before (a
    redelivery) and are skipped. A change that cannot apply (no order placed)
    is rejected and the fold goes on. A sequence gap (an event dead-lettered
    earlier) is recorded; the later event still applies, since every order
    event carries what it changes in full.
    """
    result = Fold(document, document.version if document else 0)
    for entry in sorted(changes, key=lambda e: e.item.sequence):
        change = entry.item
        current = result.document
        if current is not None and change.sequence <= current.version:
            result.already_applied.append(entry)
            continue
        try:
            result.document = apply(current, change)
        except InvalidEventError as error:
            result.rejected.append((entry, error))
            continue
        expected = (current.version if current else 0) + 1
        if change.sequence != expected and change.event_type != "OrderPlaced":
            result.gaps.append((expected, change.sequence))
        result.applied.append(entry)
    return result


def _placed(change: OrderChange) -> OrderDocument:
    fields = change.fields
    address = fields["shipping_address"]
    return OrderDocument(
        order_id=change.order_id,
        customer_id=str(fields["customer_id"]),
        status="PLACED",
        items=tuple(
            OrderItem(str(line["sku"]), int(line["quantity"]), int(line["unit_price_cents"]))
            for line in fields["lines"]
        ),
        currency=str(fields.get("currency") or ""),
        total_cents=int(fields["total_cents"]),
        shipping_address=ShippingAddress(
            str(address["name"]),
            str(address["street"]),
            str(address["city"]),
            str(address["postal_code"]),
            str(address["country"]),
        ),
        placed_at=change.occurred_at,
        updated_at=change.occurred_at,
        version=change.sequence,
        last_event_id=change.event_id,
    )


def _check_placed(order_id: str, fields: Mapping[str, Any]) -> None:
    lines = fields.get("lines") or []
    if not lines:
        raise InvalidEventError("ORDER_WITHOUT_LINES", f"OrderPlaced {order_id} has no lines")
    total = sum(int(line["quantity"]) * int(line["unit_price_cents"]) for line in lines)
    if total != int(fields.get("total_cents", -1)):
        raise InvalidEventError(
            "TOTAL_MISMATCH",
            f"OrderPlaced {order_id}: total_cents {fields.get('total_cents')} but the lines "
            f"add up to {total}",
        )


def _timestamp(moment: datetime) -> str:
    aware = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return aware.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
