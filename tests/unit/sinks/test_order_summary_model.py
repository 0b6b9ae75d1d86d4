"""Pure order-summary logic: conversion, validation, folding, version-guarded application."""

from __future__ import annotations

from collections.abc import Sequence

import pytest
from hypothesis import given
from hypothesis import strategies as st

from aggregates.read_side.model import orders
from aggregates.read_side.model.orders import OrderPatch, OrderRow
from core.errors import InvalidEventError
from tests.unit.sinks.events import T0, event, placed


def changes(*records: object) -> list[orders.OrderChange]:
    converted = [orders.convert(r) for r in records]  # type: ignore[arg-type]
    return [c for c in converted if c is not None]


def store(state: dict[str, OrderRow], writes: Sequence[OrderRow | OrderPatch]) -> None:
    for write in writes:
        result = orders.apply(state.get(write.order_id), write)
        if result is not None:
            state[write.order_id] = result


def test_a_placed_order_becomes_a_full_row() -> None:
    rows, patches = orders.fold(changes(placed("o-1", ("a", 2, 250), ("b", 1, 1000), at=5)))
    assert patches == []
    [row] = rows
    assert (row.status, row.customer_id, row.total_cents, row.item_count) == (
        "PLACED",
        "c-1",
        1500,
        3,
    )
    assert [line.sku for line in row.lines] == ["a", "b"]
    assert row.placed_at == row.updated_at
    assert row.version == 1


def test_a_batch_that_places_and_confirms_writes_one_confirmed_row() -> None:
    rows, patches = orders.fold(
        changes(placed("o-1", ("a", 1, 100)), event("OrderConfirmed", "o-1", 2, at=60))
    )
    assert patches == []
    [row] = rows
    assert (row.status, row.version, row.confirmed_at) == ("CONFIRMED", 2, row.updated_at)
    assert row.placed_at == T0


def test_changes_of_orders_placed_earlier_become_patches_keeping_every_timestamp() -> None:
    rows, patches = orders.fold(
        changes(
            event("OrderConfirmed", "o-1", 2, at=10),
            event("OrderShipped", "o-1", 3, at=20, carrier="DHL"),
            event("OrderCancelled", "o-2", 2, at=30, reason="changed mind"),
        )
    )
    assert rows == []
    by_id = {p.order_id: p for p in patches}
    assert by_id["o-1"].status == "SHIPPED"
    assert by_id["o-1"].confirmed_at is not None and by_id["o-1"].shipped_at is not None
    assert (by_id["o-2"].status, by_id["o-2"].status_reason) == ("CANCELLED", "changed mind")


def test_events_of_other_aggregates_are_ignored() -> None:
    assert orders.convert(event("StockReserved", "sku-1", 3, order_id="o-1", quantity=2)) is None


@pytest.mark.parametrize(
    ("record", "code"),
    [
        (placed("o-1", ("a", 1, 100), total_cents=999), "TOTAL_MISMATCH"),
        (placed("o-1"), "ORDER_HAS_NO_LINES"),
        (placed("o-1", ("a", 0, 100)), "INVALID_LINE"),
        (placed("o-1", ("a", 1, 100), customer_id=""), "MISSING_CUSTOMER"),
        (event("OrderConfirmed", "o-1", 0), "INVALID_SEQUENCE"),
        (event("OrderConfirmed", "o-1", 2, aggregate_type="InventoryItem"), "WRONG_AGGREGATE_TYPE"),
        (event("OrderConfirmed", "", 2), "MISSING_AGGREGATE_ID"),
    ],
)
def test_events_a_summary_can_never_apply_are_refused_with_a_code(
    record: object, code: str
) -> None:
    with pytest.raises(InvalidEventError) as refused:
        orders.convert(record)  # type: ignore[arg-type]
    assert refused.value.code == code


def test_the_version_guard_makes_a_repeated_batch_change_nothing() -> None:
    batch = changes(
        placed("o-1", ("a", 1, 100)),
        event("OrderConfirmed", "o-1", 2, at=10),
        event("OrderShipped", "o-2", 3, at=20),
    )
    state: dict[str, OrderRow] = {}
    store(state, [r for r in orders.fold(changes(placed("o-2", ("b", 1, 5))))[0]])
    store(state, [*orders.fold(changes(event("OrderConfirmed", "o-2", 2)))[1]])
    rows, patches = orders.fold(batch)
    store(state, [*rows, *patches])
    once = dict(state)
    store(state, [*rows, *patches])
    assert state == once
    assert (state["o-1"].status, state["o-2"].status) == ("CONFIRMED", "SHIPPED")


def test_an_older_write_never_overwrites_a_newer_row() -> None:
    state: dict[str, OrderRow] = {}
    rows, _ = orders.fold(changes(placed("o-1", ("a", 1, 100)), event("OrderShipped", "o-1", 3)))
    store(state, rows)
    _, stale = orders.fold(changes(event("OrderConfirmed", "o-1", 2)))
    store(state, stale)
    assert (state["o-1"].status, state["o-1"].version) == ("SHIPPED", 3)


def test_a_patch_of_an_order_never_placed_here_creates_nothing() -> None:
    _, patches = orders.fold(changes(event("OrderConfirmed", "ghost", 2)))
    assert orders.apply(None, patches[0]) is None


STATUS_EVENTS = ["OrderConfirmed", "OrderRejected", "OrderCancelled", "OrderShipped"]


@given(
    st.lists(st.sampled_from(STATUS_EVENTS), min_size=1, max_size=6),
    st.integers(min_value=1, max_value=6),
)
def test_any_split_into_batches_gives_the_row_of_one_batch(kinds: list[str], cut: int) -> None:
    history = [placed("o-1", ("a", 2, 300))] + [
        event(kind, "o-1", n + 2, at=n * 7.0, reason="r") for n, kind in enumerate(kinds)
    ]
    whole: dict[str, OrderRow] = {}
    store(whole, [w for part in orders.fold(changes(*history)) for w in part])
    split: dict[str, OrderRow] = {}
    for part in (history[:cut], history[cut:]):
        rows, patches = orders.fold(changes(*part))
        store(split, [*rows, *patches])
    assert split == whole
