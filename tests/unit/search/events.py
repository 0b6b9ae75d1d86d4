"""Order events as the search sink receives them (decoded records), for tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from aggregates.read_side.search_orders import OrderChange, order_change
from core.errors import InvalidEventError
from sinks.base import Entry, EventRecord

PLACED_AT = datetime(2026, 3, 1, 9, 30, tzinfo=UTC)
ADDRESS = {
    "name": "Ada Lovelace",
    "street": "12 Analytical Row",
    "city": "London",
    "postal_code": "NW1 6XE",
    "country": "GB",
}
LINES: list[dict[str, Any]] = [
    {"sku": "mug-blue", "quantity": 2, "unit_price_cents": 1250},
    {"sku": "tea-earl-grey", "quantity": 3, "unit_price_cents": 800},
]


def record(
    event_type: str,
    order_id: str,
    sequence: int,
    aggregate_type: str = "Order",
    **fields: Any,
) -> EventRecord:
    metadata = {
        "event_id": f"{order_id}-e{sequence}",
        "aggregate_type": aggregate_type,
        "aggregate_id": order_id,
        "sequence": sequence,
        "command_id": f"{order_id}-c{sequence}",
        "correlation_id": order_id,
        "causation_id": f"{order_id}-c{sequence}",
        "occurred_at": PLACED_AT + timedelta(minutes=sequence),
        "recorded_at": PLACED_AT + timedelta(minutes=sequence, seconds=1),
    }
    return EventRecord(f"cqrs.events.{event_type}", {"metadata": metadata, **fields})


def placed(
    order_id: str, customer_id: str = "c-ada", lines: list[dict[str, Any]] | None = None
) -> EventRecord:
    chosen = lines if lines is not None else LINES
    total = sum(line["quantity"] * line["unit_price_cents"] for line in chosen)
    return record(
        "OrderPlaced",
        order_id,
        1,
        customer_id=customer_id,
        lines=chosen,
        shipping_address=ADDRESS,
        currency="EUR",
        total_cents=total,
    )


def confirmed(order_id: str, sequence: int = 2) -> EventRecord:
    return record("OrderConfirmed", order_id, sequence)


def shipped(order_id: str, sequence: int = 3, carrier: str = "DHL") -> EventRecord:
    return record("OrderShipped", order_id, sequence, carrier=carrier, tracking_number="TRK-1")


def cancelled(order_id: str, sequence: int, reason: str = "changed my mind") -> EventRecord:
    return record("OrderCancelled", order_id, sequence, reason=reason)


def entry(event: EventRecord, offset: int = 0, partition: int = 0) -> Entry[OrderChange]:
    change = order_change(event)
    assert change is not None
    return Entry("events", partition, offset, change)


class Refusals:
    """Records what a search sink refuses (instead of dead-lettering it)."""

    def __init__(self) -> None:
        self.refused: list[tuple[str, int, str]] = []
        self.flushes = 0

    def refuse(self, entry: Entry[OrderChange], error: InvalidEventError) -> None:
        self.refused.append((entry.item.order_id, entry.item.sequence, error.code))

    def flush(self) -> None:
        self.flushes += 1

    def close(self) -> None:
        return None
