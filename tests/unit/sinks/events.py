"""Decoded events as the runner hands them to sinks, for pure tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sinks.base import EventRecord

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def event(
    record_name: str,
    aggregate_id: str,
    sequence: int,
    at: datetime | float = 0.0,
    aggregate_type: str | None = None,
    **fields: Any,
) -> EventRecord:
    when = at if isinstance(at, datetime) else T0 + timedelta(seconds=at)
    kind = aggregate_type or ("Order" if record_name.startswith("Order") else "InventoryItem")
    metadata = {
        "event_id": f"{aggregate_id}/{sequence}",
        "aggregate_type": kind,
        "aggregate_id": aggregate_id,
        "sequence": sequence,
        "occurred_at": when,
    }
    return EventRecord(f"cqrs.events.{record_name}", {"metadata": metadata, **fields})


def placed(
    order_id: str, *lines: tuple[str, int, int], at: float = 0.0, **extra: Any
) -> EventRecord:
    items = [{"sku": s, "quantity": q, "unit_price_cents": p} for s, q, p in lines]
    fields: dict[str, Any] = {
        "customer_id": "c-1",
        "lines": items,
        "currency": "EUR",
        "total_cents": sum(q * p for _, q, p in lines),
        **extra,
    }
    return event("OrderPlaced", order_id, 1, at, **fields)
