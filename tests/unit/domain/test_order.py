"""Order: given past events and a command, these events or this error."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from aggregates.limits import MAX_CENTS, MAX_UNITS
from aggregates.order import (
    Address,
    CancelOrder,
    ConfirmOrder,
    Order,
    OrderCancelled,
    OrderCommand,
    OrderConfirmed,
    OrderEvent,
    OrderLine,
    OrderPlaced,
    OrderRejected,
    OrderShipped,
    OrderStatus,
    PlaceOrder,
    RejectOrder,
    ShipOrder,
    decide,
    evolve,
)
from core.errors import DomainError

ADDRESS = Address("Ada", "1 Loop", "Paris", "75001", "FR")
LINES = (OrderLine("sku-1", 2, 1250), OrderLine("sku-2", 1, 0))
PLACED = OrderPlaced("cust-1", LINES, ADDRESS, "EUR", 2500)


def given_events(*events: OrderEvent) -> Order:
    state = Order()
    for event in events:
        state = evolve(state, event)
    return state


def test_place_order_totals_the_lines() -> None:
    assert decide(Order(), PlaceOrder("cust-1", LINES, ADDRESS)) == [PLACED]


@pytest.mark.parametrize(
    ("lines", "code"),
    [
        ((), "ORDER_HAS_NO_LINES"),
        ((OrderLine("a", 0, 1),), "INVALID_QUANTITY"),
        ((OrderLine("a", -1, 1),), "INVALID_QUANTITY"),
        ((OrderLine("a", 1, -1),), "NEGATIVE_PRICE"),
        ((OrderLine("a", 1, 1), OrderLine("a", 2, 1)), "DUPLICATE_SKU"),
        # Each line fits the contracts, the whole order does not.
        ((OrderLine("a", MAX_UNITS, 0), OrderLine("b", 1, 0)), "ORDER_TOO_LARGE"),
        ((OrderLine("a", MAX_UNITS, MAX_CENTS // MAX_UNITS + 1),), "ORDER_TOO_LARGE"),
    ],
)
def test_invalid_orders_are_refused_with_a_stable_code(
    lines: tuple[OrderLine, ...], code: str
) -> None:
    with pytest.raises(DomainError) as raised:
        decide(Order(), PlaceOrder("cust-1", lines, ADDRESS))
    assert raised.value.code == code


@pytest.mark.parametrize(
    ("history", "command", "expected"),
    [
        ((PLACED,), ConfirmOrder(), [OrderConfirmed()]),
        ((PLACED,), RejectOrder("no stock"), [OrderRejected("no stock")]),
        ((PLACED,), CancelOrder("changed mind"), [OrderCancelled("changed mind")]),
        ((PLACED, OrderConfirmed()), CancelOrder(), [OrderCancelled()]),
        ((PLACED, OrderConfirmed()), ShipOrder("DHL", "T1"), [OrderShipped("DHL", "T1")]),
    ],
)
def test_legal_transitions(
    history: tuple[OrderEvent, ...], command: OrderCommand, expected: list[OrderEvent]
) -> None:
    assert decide(given_events(*history), command) == expected


@pytest.mark.parametrize(
    ("history", "command", "code"),
    [
        ((), ConfirmOrder(), "ORDER_NOT_FOUND"),
        ((), ShipOrder(), "ORDER_NOT_FOUND"),
        ((PLACED,), PlaceOrder("c", LINES, ADDRESS), "ORDER_ALREADY_EXISTS"),
        ((PLACED,), ShipOrder(), "ORDER_NOT_CONFIRMED"),
        ((PLACED, OrderConfirmed()), ConfirmOrder(), "ILLEGAL_TRANSITION"),
        ((PLACED, OrderConfirmed(), OrderShipped()), CancelOrder(), "ORDER_ALREADY_SHIPPED"),
        ((PLACED, OrderRejected("x")), CancelOrder(), "ILLEGAL_TRANSITION"),
        ((PLACED, OrderCancelled()), ShipOrder(), "ORDER_NOT_CONFIRMED"),
        ((PLACED, OrderConfirmed()), RejectOrder("late"), "ILLEGAL_TRANSITION"),
    ],
)
def test_illegal_transitions_are_refused(
    history: tuple[OrderEvent, ...], command: OrderCommand, code: str
) -> None:
    with pytest.raises(DomainError) as raised:
        decide(given_events(*history), command)
    assert raised.value.code == code


lines = st.lists(
    st.builds(
        OrderLine,
        st.sampled_from(["a", "b", "c", "d"]),
        st.one_of(st.integers(-2, 5), st.just(MAX_UNITS)),  # the contracts' bounds too
        st.one_of(st.integers(-5, 500), st.integers(0, MAX_CENTS)),
    ),
    max_size=4,
).map(tuple)
commands = st.one_of(
    st.builds(PlaceOrder, st.just("cust"), lines, st.just(ADDRESS)),
    st.just(ConfirmOrder()),
    st.builds(RejectOrder, st.text(max_size=5)),
    st.builds(CancelOrder, st.text(max_size=5)),
    st.builds(ShipOrder, st.text(max_size=5)),
)
ALLOWED = {
    None: {OrderStatus.PLACED},
    OrderStatus.PLACED: {OrderStatus.CONFIRMED, OrderStatus.REJECTED, OrderStatus.CANCELLED},
    OrderStatus.CONFIRMED: {OrderStatus.SHIPPED, OrderStatus.CANCELLED},
    OrderStatus.REJECTED: set(),
    OrderStatus.CANCELLED: set(),
    OrderStatus.SHIPPED: set(),
}


@given(st.lists(commands, max_size=12))
def test_random_command_sequences_keep_every_invariant(sequence: list[OrderCommand]) -> None:
    state, history = Order(), []
    for command in sequence:
        try:
            events = decide(state, command)
        except DomainError:
            continue
        assert decide(state, command) == events  # deciding is deterministic
        for event in events:
            after = evolve(state, event)
            assert after.status in ALLOWED[state.status]
            state = after
            history.append(event)
        if state.status is not None:
            assert state.lines, "a placed order has at least one line"
            assert all(line.quantity > 0 and line.unit_price_cents >= 0 for line in state.lines)
            assert sum(line.quantity for line in state.lines) <= MAX_UNITS
            assert state.total_cents <= MAX_CENTS
    assert given_events(*history) == state  # replaying the log is deterministic
