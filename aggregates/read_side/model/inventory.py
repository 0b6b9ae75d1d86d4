"""Inventory levels: per SKU, its name, units on hand, reserved and available.

Stock events carry deltas (``StockAdjusted(delta)``, ``StockReserved(quantity)``),
not the resulting levels, so a change must be applied exactly once. The version
guard does that: a batch is folded per SKU into one ``StockDelta`` spanning
versions (from, to], applied only to a row older than *to*. Rows are written in
one transaction per batch, so a row is either before or after the whole span.

| event | on hand | reserved |
|---|---|---|
| ItemRegistered | (sets the name) | |
| StockAdjusted | + delta | |
| StockReserved | | + quantity |
| StockReservationRejected | | (version only) |
| StockReleased | | - quantity |
| StockCommitted | - quantity | - quantity |
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime

from aggregates.read_side.model.common import require_envelope, require_positive
from core.errors import InvalidEventError
from sinks.base import EventRecord

AGGREGATE_TYPE = "InventoryItem"
EVENTS = frozenset(
    {
        "ItemRegistered",
        "StockAdjusted",
        "StockReserved",
        "StockReservationRejected",
        "StockReleased",
        "StockCommitted",
    }
)


@dataclass(frozen=True, slots=True)
class StockDelta:
    """What one event, or a batch of events of one SKU, changes."""

    sku: str
    version: int
    updated_at: datetime
    name: str | None = None  # set by ItemRegistered
    on_hand: int = 0
    reserved: int = 0


@dataclass(frozen=True, slots=True)
class InventoryRow:
    sku: str
    name: str
    on_hand: int
    reserved: int
    updated_at: datetime
    version: int

    @property
    def available(self) -> int:
        return self.on_hand - self.reserved


def convert(record: EventRecord) -> StockDelta | None:
    """The change a stock event makes; None for events of other aggregates."""
    kind = record.event_type
    if kind not in EVENTS:
        return None
    at = require_envelope(record, AGGREGATE_TYPE)
    base = StockDelta(record.aggregate_id, record.sequence, at)
    match kind:
        case "ItemRegistered":
            return replace(base, name=str(record.value.get("name") or ""))
        case "StockAdjusted":
            delta = int(record.value.get("delta") or 0)
            if delta == 0:
                raise InvalidEventError(
                    "ZERO_ADJUSTMENT", f"StockAdjusted of {record.aggregate_id} changes nothing"
                )
            return replace(base, on_hand=delta)
        case "StockReserved":
            return replace(base, reserved=require_positive(record, "quantity"))
        case "StockReleased":
            return replace(base, reserved=-require_positive(record, "quantity"))
        case "StockCommitted":
            units = require_positive(record, "quantity")
            return replace(base, on_hand=-units, reserved=-units)
        case _:  # StockReservationRejected: an answer, no stock moves
            return base


def fold(deltas: Iterable[StockDelta]) -> list[StockDelta]:
    """One delta per SKU, summing the batch's changes; duplicates within it are dropped."""
    folded: dict[str, StockDelta] = {}
    for delta in deltas:
        seen = folded.get(delta.sku)
        if seen is None:
            folded[delta.sku] = delta
        elif delta.version > seen.version:
            folded[delta.sku] = StockDelta(
                delta.sku,
                delta.version,
                delta.updated_at,
                delta.name if delta.name is not None else seen.name,
                seen.on_hand + delta.on_hand,
                seen.reserved + delta.reserved,
            )
    return list(folded.values())


def apply(existing: InventoryRow | None, delta: StockDelta) -> InventoryRow:
    """What a stored row becomes after a delta: the semantics the SQL implements."""
    if existing is None:
        return InventoryRow(
            delta.sku,
            delta.name or "",
            delta.on_hand,
            delta.reserved,
            delta.updated_at,
            delta.version,
        )
    if existing.version >= delta.version:
        return existing
    return InventoryRow(
        delta.sku,
        delta.name if delta.name is not None else existing.name,
        existing.on_hand + delta.on_hand,
        existing.reserved + delta.reserved,
        delta.updated_at,
        delta.version,
    )
