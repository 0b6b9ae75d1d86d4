"""Pure sales analytics: what a sale is, windows by event time, lateness and grace."""

from __future__ import annotations

from datetime import datetime, timedelta

from aggregates.read_side.model import sales
from aggregates.read_side.model.sales import ALL_SKUS, HOUR, MINUTE, SalesOutcome, Totals, WindowKey
from sinks.base import EventRecord
from tests.unit.sinks.events import T0, event, placed

GRACE = timedelta(seconds=60)


def run(
    records: list[EventRecord],
    partition: int = 0,
    pending: dict[str, sales.PendingOrder] | None = None,
    marks: dict[int, datetime] | None = None,
) -> SalesOutcome:
    entries = [(partition, n, sales.convert(r)) for n, r in enumerate(records)]
    return sales.fold(entries, pending or {}, marks or {}, GRACE)


def key(granularity: str, start: datetime, sku: str) -> WindowKey:
    return WindowKey(granularity, start, sku, "EUR")


def totals(outcome: SalesOutcome, k: WindowKey) -> tuple[int, int, int]:
    found = outcome.windows.get(k, Totals())
    return found.revenue_cents, found.units, found.order_count


def test_a_confirmed_order_is_a_sale_in_the_windows_of_its_confirmation() -> None:
    outcome = run(
        [
            placed("o-1", ("a", 2, 250), ("b", 1, 1000), at=10),
            event("OrderConfirmed", "o-1", 2, at=70),  # the next minute
        ]
    )
    minute = T0 + timedelta(minutes=1)
    assert totals(outcome, key(MINUTE, minute, "a")) == (500, 2, 1)
    assert totals(outcome, key(MINUTE, minute, "b")) == (1000, 1, 1)
    assert totals(outcome, key(MINUTE, minute, ALL_SKUS)) == (1500, 3, 1)
    assert totals(outcome, key(HOUR, T0, ALL_SKUS)) == (1500, 3, 1)
    assert key(MINUTE, T0, ALL_SKUS) not in outcome.windows
    assert outcome.forgotten == {"o-1"} and outcome.remembered == {}


def test_placed_rejected_and_cancelled_orders_are_no_sales() -> None:
    outcome = run(
        [
            placed("o-1", ("a", 1, 100)),
            placed("o-2", ("a", 1, 100)),
            placed("o-3", ("a", 1, 100)),
            event("OrderRejected", "o-1", 2, reason="out of stock"),
            event("OrderCancelled", "o-2", 2),
        ]
    )
    assert outcome.windows == {}
    assert set(outcome.remembered) == {"o-3"}
    assert outcome.forgotten == {"o-1", "o-2"}


def test_a_confirmation_uses_the_lines_remembered_from_an_earlier_batch() -> None:
    first = run([placed("o-1", ("a", 3, 100))])
    second = run([event("OrderConfirmed", "o-1", 2, at=5)], pending=first.remembered)
    assert totals(second, key(MINUTE, T0, "a")) == (300, 3, 1)
    assert sales.orders_to_look_up([sales.convert(event("OrderConfirmed", "o-1", 2))]) == {"o-1"}


def test_a_confirmation_without_a_known_placement_is_reported_not_counted() -> None:
    outcome = run([event("OrderConfirmed", "ghost", 2)])
    assert outcome.windows == {} and outcome.unmatched == ["ghost"]


def test_late_sales_count_within_the_grace_period_and_are_set_aside_after_it() -> None:
    outcome = run(
        [
            placed("o-early", ("a", 1, 100), at=0),
            placed("o-late", ("a", 1, 100), at=1),
            event("StockAdjusted", "sku-1", 2, at=110, delta=1, reason="RESTOCK"),  # time moves
            event("OrderConfirmed", "o-early", 2, at=50),  # window ends at 60; 110 < 60 + 60
            event("StockAdjusted", "sku-1", 3, at=200, delta=1, reason="RESTOCK"),
            event("OrderConfirmed", "o-late", 2, at=55),  # watermark 200 ≥ 60 + 60: too late
        ]
    )
    assert totals(outcome, key(MINUTE, T0, ALL_SKUS)) == (100, 1, 1)
    [late] = outcome.late
    assert (late.order_id, late.watermark, late.revenue_cents) == (
        "o-late",
        T0 + timedelta(seconds=200),
        100,
    )
    assert (late.partition, late.offset) == (0, 5)
    assert outcome.watermarks == {0: T0 + timedelta(seconds=200)}


def test_a_late_sale_is_left_out_of_the_hour_too_so_minutes_add_up_to_hours() -> None:
    marks = {0: T0 + timedelta(minutes=30)}
    outcome = run(
        [placed("o-1", ("a", 1, 100), at=0), event("OrderConfirmed", "o-1", 2, at=5)],
        marks=marks,
    )
    assert outcome.windows == {} and len(outcome.late) == 1


def test_watermarks_are_per_partition() -> None:
    marks = {1: T0 + timedelta(hours=2)}
    outcome = run(
        [placed("o-1", ("a", 1, 100)), event("OrderConfirmed", "o-1", 2, at=5)],
        partition=0,
        marks=marks,
    )
    assert totals(outcome, key(HOUR, T0, "a")) == (100, 1, 1)


def test_window_keys_round_trip_through_their_text() -> None:
    k = key(HOUR, T0, "sku/with/slashes")
    assert WindowKey.parse(k.text()) == k
    assert k.end == T0 + timedelta(hours=1)
    assert sales.window_start(T0 + timedelta(seconds=59.9), MINUTE) == T0
