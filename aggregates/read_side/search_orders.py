"""The shop's ``search-orders`` projection: order documents and how events make them.

A document is the full state of one order at one aggregate version: it is
built from ``OrderPlaced`` (customer, lines, address, totals) and changed by
the later events (status, reason, carrier). Pure, built on the public
read-model API (``cqrs.read_models``): the search sink does the IO.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, NamedTuple

from aggregates.read_side.model.orders import ORDER_EVENTS
from cqrs.read_models import (
    DATE,
    INTEGER,
    KEYWORD,
    LONG,
    SEARCH_TEXT,
    EventRecord,
    InvalidEventError,
    SearchEntry,
    SearchProjection,
    copied_keyword,
    text_field,
)

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

    @property
    def document_id(self) -> str:
        return self.order_id


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
    def document_id(self) -> str:
        return self.order_id

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


# The index's explicit mapping (identical on OpenSearch and Elasticsearch): ``items``
# is ``nested``, so "sku X with quantity > 2" matches within one line; the free-text
# fields are copied to ``search_text`` for one-box search.
ORDER_MAPPINGS: dict[str, Any] = {
    "dynamic": "strict",
    "properties": {
        "order_id": copied_keyword(),
        "customer_id": copied_keyword(),
        "status": KEYWORD,
        "status_reason": text_field(),
        "items": {
            "type": "nested",
            "properties": {
                "sku": copied_keyword(),
                "quantity": INTEGER,
                "unit_price_cents": LONG,
                "amount_cents": LONG,
            },
        },
        "item_count": INTEGER,
        "currency": KEYWORD,
        "total_cents": LONG,
        "shipping_address": {
            "properties": {
                "name": text_field(),
                "street": text_field(),
                "city": text_field(),
                "postal_code": copied_keyword(),
                "country": KEYWORD,
            }
        },
        "carrier": copied_keyword(),
        "tracking_number": copied_keyword(),
        "placed_at": DATE,
        "updated_at": DATE,
        "shipped_at": DATE,
        "version": LONG,
        "last_event_id": KEYWORD,
        SEARCH_TEXT: {"type": "text"},
    },
}


class OrdersSearch(SearchProjection[OrderChange, OrderDocument]):
    name = "search-orders"
    index = "orders"
    description = (
        "search index of orders: alias <search.index_prefix>-orders over generations "
        "<prefix>-orders-NNNNNN (OpenSearch or Elasticsearch)"
    )
    mappings = ORDER_MAPPINGS
    event_types = ORDER_EVENTS

    def convert(self, record: EventRecord) -> OrderChange | None:
        return order_change(record)

    def apply(self, document: OrderDocument | None, change: OrderChange) -> OrderDocument:
        return apply(document, change)

    def from_source(self, source: Mapping[str, Any]) -> OrderDocument:
        return OrderDocument.from_source(source)

    def starts(self, change: OrderChange) -> bool:
        return change.event_type == "OrderPlaced"


SEARCH_ORDERS = SearchEntry(OrdersSearch)
