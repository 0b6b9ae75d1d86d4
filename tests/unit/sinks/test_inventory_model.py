"""Pure inventory-levels logic: deltas, folding and exactly-once application by version."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from aggregates.read_side.model import inventory
from aggregates.read_side.model.inventory import InventoryRow, StockDelta
from core.errors import InvalidEventError
from sinks.base import EventRecord
from tests.unit.sinks.events import event


def history() -> list[EventRecord]:
    return [
        event("ItemRegistered", "sku-1", 1, name="Mug"),
        event("StockAdjusted", "sku-1", 2, delta=10, reason="RESTOCK"),
        event("StockReserved", "sku-1", 3, order_id="o-1", quantity=3),
        event("StockReservationRejected", "sku-1", 4, order_id="o-2", quantity=9, available=7),
        event("StockReserved", "sku-1", 5, order_id="o-3", quantity=2),
        event("StockReleased", "sku-1", 6, order_id="o-3", quantity=2),
        event("StockCommitted", "sku-1", 7, order_id="o-1", quantity=3),
    ]


def deltas(records: list[EventRecord]) -> list[StockDelta]:
    found = [inventory.convert(r) for r in records]
    return [d for d in found if d is not None]


def applied(state: InventoryRow | None, batch: list[EventRecord]) -> InventoryRow | None:
    for delta in inventory.fold(deltas(batch)):
        state = inventory.apply(state, delta)
    return state


def test_the_history_of_an_item_gives_its_levels() -> None:
    row = applied(None, history())
    assert row is not None
    assert (row.name, row.on_hand, row.reserved, row.available, row.version) == ("Mug", 7, 0, 7, 7)


def test_a_batch_applied_twice_counts_once() -> None:
    first = applied(None, history()[:3])
    again = applied(first, history()[:3])
    assert again == first
    assert first is not None and (first.on_hand, first.reserved) == (10, 3)


def test_duplicates_within_a_batch_count_once() -> None:
    records = history()[:3]
    row = applied(None, [*records, records[1], records[2]])
    assert row is not None and (row.on_hand, row.reserved) == (10, 3)


@pytest.mark.parametrize(
    ("record", "code"),
    [
        (event("StockAdjusted", "sku-1", 2, delta=0, reason="CORRECTION"), "ZERO_ADJUSTMENT"),
        (event("StockReserved", "sku-1", 2, order_id="o", quantity=-1), "INVALID_QUANTITY"),
        (event("StockCommitted", "sku-1", 2, order_id="o", quantity=0), "INVALID_QUANTITY"),
        (
            event("ItemRegistered", "sku-1", 1, aggregate_type="Order", name="x"),
            "WRONG_AGGREGATE_TYPE",
        ),
    ],
)
def test_impossible_stock_events_are_refused(record: EventRecord, code: str) -> None:
    with pytest.raises(InvalidEventError) as refused:
        inventory.convert(record)
    assert refused.value.code == code


def test_order_events_are_not_stock_events() -> None:
    assert inventory.convert(event("OrderConfirmed", "o-1", 2)) is None


@given(st.lists(st.integers(min_value=1, max_value=6), max_size=4))
def test_any_split_into_batches_gives_the_same_levels(cuts: list[int]) -> None:
    records = history()
    bounds = sorted({0, len(records), *cuts})
    state: InventoryRow | None = None
    for start, end in itertools.pairwise(bounds):
        state = applied(state, records[start:end])
    assert state == applied(None, records)
