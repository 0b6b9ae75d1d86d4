"""The fulfilment process manager: reserve, confirm, reject, cancel, ship, compensate."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from aggregates import inventory, order
from aggregates.fulfilment import Fulfilment, Observed, Stage, react
from aggregates.inventory import StockReservationRejected, StockReserved
from aggregates.order import (
    Address,
    OrderCancelled,
    OrderLine,
    OrderPlaced,
    OrderRejected,
    OrderShipped,
)
from cqrs import Issue

ADDRESS = Address("Ada", "1 Loop", "Paris", "75001", "FR")
PLACED = OrderPlaced("c", (OrderLine("a", 1, 100), OrderLine("b", 2, 50)), ADDRESS, "EUR", 200)


def run(*steps: tuple[str, Observed]) -> tuple[Fulfilment, list[Issue]]:
    state, issued = Fulfilment(), []
    for source, event in steps:
        state, commands = react(state, "o-1", source, event)
        issued += commands
    return state, issued


def item(sku: str, command: inventory.InventoryCommand) -> Issue:
    return Issue(sku, command)


def the_order(command: order.OrderCommand) -> Issue:
    return Issue("o-1", command)


def test_happy_path_reserves_every_line_then_confirms() -> None:
    state, issued = run(
        ("o-1", PLACED), ("a", StockReserved("o-1", 1)), ("b", StockReserved("o-1", 2))
    )
    assert issued == [
        item("a", inventory.ReserveStock("o-1", 1)),
        item("b", inventory.ReserveStock("o-1", 2)),
        the_order(order.ConfirmOrder()),
    ]
    assert state.stage is Stage.CONFIRMING


def test_a_refused_line_rejects_the_order_and_releases_the_rest() -> None:
    state, issued = run(
        ("o-1", PLACED),
        ("a", StockReserved("o-1", 1)),
        ("b", StockReservationRejected("o-1", 2, 1)),
    )
    assert issued[2:] == [
        the_order(order.RejectOrder("b: insufficient stock (1 available)")),
        item("a", inventory.ReleaseStock("o-1")),
    ]
    assert (state.stage, state.held) == (Stage.REJECTED, ())


def test_a_late_reservation_after_rejection_is_released_at_once() -> None:
    _, issued = run(
        ("o-1", PLACED),
        ("a", StockReservationRejected("o-1", 1, 0)),
        ("b", StockReserved("o-1", 2)),
    )
    assert issued[-1] == item("b", inventory.ReleaseStock("o-1"))
    assert the_order(order.ConfirmOrder()) not in issued


def test_cancellation_releases_what_is_held_and_shipping_commits_it() -> None:
    reserved = (("o-1", PLACED), ("a", StockReserved("o-1", 1)), ("b", StockReserved("o-1", 2)))
    _, cancelled = run(*reserved, ("o-1", OrderCancelled("no")))
    _, shipped = run(*reserved, ("o-1", OrderShipped()))
    assert cancelled[-2:] == [
        item("a", inventory.ReleaseStock("o-1")),
        item("b", inventory.ReleaseStock("o-1")),
    ]
    assert shipped[-2:] == [
        item("a", inventory.CommitStock("o-1")),
        item("b", inventory.CommitStock("o-1")),
    ]


def test_a_redelivered_order_placed_issues_nothing_new() -> None:
    _, issued = run(("o-1", PLACED), ("o-1", PLACED))
    assert len(issued) == 2


outcomes = st.lists(
    st.tuples(st.sampled_from(["a", "b"]), st.booleans()),
    min_size=0,
    max_size=4,
    unique_by=lambda x: x[0],
)


@given(outcomes, st.sampled_from([None, "cancel", "reject", "ship"]))
def test_no_stock_stays_held_by_a_dead_order(
    outcomes: list[tuple[str, bool]], ending: str | None
) -> None:
    steps: list[tuple[str, Observed]] = [("o-1", PLACED)]
    steps += [
        (sku, StockReserved("o-1", 1) if ok else StockReservationRejected("o-1", 1, 0))
        for sku, ok in outcomes
    ]
    if ending == "cancel":
        steps.append(("o-1", OrderCancelled()))
    elif ending == "reject":
        steps.append(("o-1", OrderRejected("x")))
    state, issued = run(*steps)
    if ending == "ship" and state.stage is Stage.CONFIRMING:
        state, more = react(state, "o-1", "o-1", OrderShipped())
        issued += more

    reserved = [sku for sku, ok in outcomes if ok]
    settled = [
        i.aggregate_id
        for i in issued
        if isinstance(i.command, (inventory.ReleaseStock, inventory.CommitStock))
    ]
    confirmed = the_order(order.ConfirmOrder()) in issued
    assert confirmed == (sorted(reserved) == ["a", "b"] and len(outcomes) == 2)
    if state.stage in {Stage.REJECTED, Stage.CANCELLED, Stage.SHIPPED}:
        assert sorted(settled) == sorted(reserved)
        assert state.held == ()
    else:
        assert settled == []
