"""InventoryItem: reservations, adjustments and the never-below-zero invariant."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from aggregates.inventory import (
    AdjustmentReason,
    AdjustStock,
    CommitStock,
    InventoryCommand,
    InventoryEvent,
    InventoryItem,
    ItemRegistered,
    RegisterItem,
    ReleaseStock,
    ReserveStock,
    StockAdjusted,
    StockCommitted,
    StockReleased,
    StockReservationRejected,
    StockReserved,
    decide,
    evolve,
)
from aggregates.limits import MAX_UNITS
from core.errors import DomainError

RESTOCK_10 = StockAdjusted(10, AdjustmentReason.RESTOCK)


def given_events(*events: InventoryEvent) -> InventoryItem:
    state = InventoryItem()
    for event in events:
        state = evolve(state, event)
    return state


def test_reserving_within_availability() -> None:
    state = given_events(ItemRegistered("Mug"), RESTOCK_10, StockReserved("o-1", 4))
    assert decide(state, ReserveStock("o-2", 6)) == [StockReserved("o-2", 6)]
    assert decide(state, ReserveStock("o-2", 7)) == [StockReservationRejected("o-2", 7, 6)]
    assert (state.on_hand, state.reserved, state.available) == (10, 4, 6)


def test_reserving_an_unknown_item_is_answered_with_a_rejection_event() -> None:
    assert decide(InventoryItem(), ReserveStock("o-1", 1)) == [
        StockReservationRejected("o-1", 1, 0, "UNKNOWN_ITEM")
    ]


def test_release_and_commit_settle_the_reservation() -> None:
    state = given_events(ItemRegistered("Mug"), RESTOCK_10, StockReserved("o-1", 4))
    assert decide(state, ReleaseStock("o-1")) == [StockReleased("o-1", 4)]
    assert decide(state, CommitStock("o-1")) == [StockCommitted("o-1", 4)]
    shipped = evolve(state, StockCommitted("o-1", 4))
    assert (shipped.on_hand, shipped.reserved, shipped.available) == (6, 0, 6)


@pytest.mark.parametrize(
    ("history", "command", "code"),
    [
        ((), AdjustStock(5, AdjustmentReason.RESTOCK), "ITEM_NOT_REGISTERED"),
        ((ItemRegistered("Mug"),), RegisterItem("Mug"), "ITEM_ALREADY_REGISTERED"),
        ((ItemRegistered("Mug"),), AdjustStock(0, AdjustmentReason.CORRECTION), "ZERO_ADJUSTMENT"),
        ((ItemRegistered("Mug"),), AdjustStock(-1, AdjustmentReason.RESTOCK), "NEGATIVE_RESTOCK"),
        (
            (ItemRegistered("Mug"), RESTOCK_10),
            AdjustStock(MAX_UNITS - 9, AdjustmentReason.RESTOCK),
            "STOCK_LIMIT_EXCEEDED",
        ),
        (
            (ItemRegistered("Mug"), RESTOCK_10, StockReserved("o", 8)),
            AdjustStock(-3, AdjustmentReason.CORRECTION),
            "STOCK_BELOW_RESERVED",
        ),
        ((ItemRegistered("Mug"), RESTOCK_10), ReserveStock("o", 0), "INVALID_QUANTITY"),
        (
            (ItemRegistered("Mug"), RESTOCK_10, StockReserved("o", 1)),
            ReserveStock("o", 1),
            "RESERVATION_EXISTS",
        ),
        ((ItemRegistered("Mug"),), ReleaseStock("o"), "NO_RESERVATION"),
        ((ItemRegistered("Mug"),), CommitStock("o"), "NO_RESERVATION"),
    ],
)
def test_refusals(
    history: tuple[InventoryEvent, ...], command: InventoryCommand, code: str
) -> None:
    with pytest.raises(DomainError) as raised:
        decide(given_events(*history), command)
    assert raised.value.code == code


orders = st.sampled_from(["o-1", "o-2", "o-3"])
commands = st.one_of(
    st.just(RegisterItem("Mug")),
    st.builds(
        AdjustStock,
        st.one_of(st.integers(-8, 8), st.just(MAX_UNITS), st.integers(-MAX_UNITS - 1, MAX_UNITS)),
        st.sampled_from(list(AdjustmentReason)),
    ),
    st.builds(ReserveStock, orders, st.integers(-1, 6)),
    st.builds(ReleaseStock, orders),
    st.builds(CommitStock, orders),
)


@given(st.lists(commands, max_size=25))
def test_available_stock_never_goes_below_zero(sequence: list[InventoryCommand]) -> None:
    state, history = InventoryItem(), []
    for command in sequence:
        try:
            events = decide(state, command)
        except DomainError:
            continue
        assert decide(state, command) == events  # deciding is deterministic
        for event in events:
            state = evolve(state, event)
            history.append(event)
            assert MAX_UNITS >= state.on_hand >= state.available >= 0
            assert state.reserved >= 0
            assert state.on_hand >= 0
            assert len({order for order, _ in state.reservations}) == len(state.reservations)
    assert given_events(*history) == state
