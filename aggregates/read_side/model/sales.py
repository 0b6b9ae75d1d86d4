"""Sales analytics: revenue, units and orders per SKU and overall, per minute and per hour.

**What is a sale.** An order counts as sold when it is *confirmed* (stock was
reserved for it); a placed order may still be rejected. ``OrderConfirmed``
carries no lines, so the projection remembers each placed order's lines and
currency until the order is confirmed, rejected or cancelled. The sale is
counted at the confirmation's event time (``metadata.occurred_at``, when the
confirming command was issued). Cancelling a confirmed order does not subtract
it: windows report confirmed sales, not net revenue. Amounts are per currency.

**Event time and lateness.** Each partition of ``events`` has a watermark: the
latest event time seen on it (any event). A sale is *late* when the watermark
of its partition had already passed the end of its minute window plus the
grace period; it is then counted in no window (neither minute nor hour, so the
two stay consistent) and recorded as a late sale instead. Watermarks are per
partition and stored with the windows, so a replay makes the same decisions:
a rebuilt projection equals the live one.

Window keys: (granularity, window start, SKU or ``*`` for all, currency).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Literal

from aggregates.read_side.model.common import require_envelope
from aggregates.read_side.model.orders import AGGREGATE_TYPE as ORDER
from aggregates.read_side.model.orders import Line
from aggregates.read_side.model.orders import convert as order_change
from sinks.base import EventRecord

ALL_SKUS = "*"
MINUTE, HOUR = "MINUTE", "HOUR"
GRANULARITIES = {MINUTE: timedelta(minutes=1), HOUR: timedelta(hours=1)}
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
Kind = Literal["placed", "confirmed", "closed", "tick"]


@dataclass(frozen=True, slots=True)
class SalesEvent:
    """What the analytics make of an event: a placement to remember, a sale, or just time."""

    kind: Kind
    order_id: str
    event_id: str
    at: datetime
    currency: str = ""
    lines: tuple[Line, ...] = ()


@dataclass(frozen=True, slots=True)
class PendingOrder:
    """A placed order waiting for its confirmation."""

    currency: str
    lines: tuple[Line, ...]


@dataclass(frozen=True, slots=True, order=True)
class WindowKey:
    granularity: str
    start: datetime
    sku: str
    currency: str

    @property
    def end(self) -> datetime:
        return self.start + GRANULARITIES[self.granularity]

    def text(self) -> str:
        """The key of the window's record on the sales-analytics topic."""
        return f"{self.granularity}/{self.start.isoformat()}/{self.sku}/{self.currency}"

    @classmethod
    def parse(cls, text: str) -> WindowKey:
        granularity, start, rest = text.split("/", 2)
        sku, currency = rest.rsplit("/", 1)  # SKUs may contain slashes; currencies do not
        return cls(granularity, datetime.fromisoformat(start), sku, currency)


@dataclass(slots=True)
class Totals:
    revenue_cents: int = 0
    units: int = 0
    order_count: int = 0

    def add(self, revenue_cents: int, units: int) -> None:
        self.revenue_cents += revenue_cents
        self.units += units
        self.order_count += 1


@dataclass(frozen=True, slots=True)
class LateSale:
    event_id: str
    order_id: str
    at: datetime
    watermark: datetime
    partition: int
    offset: int
    revenue_cents: int
    units: int


@dataclass
class SalesOutcome:
    """Everything one batch changes."""

    windows: dict[WindowKey, Totals] = field(default_factory=dict)
    remembered: dict[str, PendingOrder] = field(default_factory=dict)  # placed, still open
    forgotten: set[str] = field(default_factory=set)  # confirmed, rejected or cancelled
    watermarks: dict[int, datetime] = field(default_factory=dict)  # partition → advanced to
    late: list[LateSale] = field(default_factory=list)
    unmatched: list[str] = field(default_factory=list)  # confirmed, but never seen placed


def convert(record: EventRecord) -> SalesEvent:
    """Every event moves time; order events also place, sell or close an order."""
    event_id = str(record.metadata.get("event_id") or "")
    change = order_change(record)
    if change is None:
        at = record.occurred_at or datetime.fromtimestamp(record.timestamp_ms / 1000, UTC)
        return SalesEvent("tick", "", event_id, at)
    at = require_envelope(record, ORDER)
    if change.placement is not None:
        placement = change.placement
        return SalesEvent(
            "placed", change.order_id, event_id, at, placement.currency, placement.lines
        )
    kind: Kind = "confirmed" if record.event_type == "OrderConfirmed" else "closed"
    if record.event_type == "OrderShipped":
        kind = "tick"  # shipping changes no sale
    return SalesEvent(kind, change.order_id, event_id, at)


def orders_to_look_up(events: Iterable[SalesEvent]) -> set[str]:
    """Orders confirmed or closed in a batch that did not place them."""
    placed: set[str] = set()
    wanted: set[str] = set()
    for event in events:
        if event.kind == "placed":
            placed.add(event.order_id)
        elif event.kind in {"confirmed", "closed"} and event.order_id not in placed:
            wanted.add(event.order_id)
    return wanted


def fold(
    events: Iterable[tuple[int, int, SalesEvent]],
    pending: Mapping[str, PendingOrder],
    watermarks: Mapping[int, datetime],
    grace: timedelta,
) -> SalesOutcome:
    """The effect of ``(partition, offset, event)``s, in log order per partition."""
    outcome = SalesOutcome()
    open_orders = dict(pending)
    marks = dict(watermarks)
    for partition, offset, event in events:
        mark = marks.get(partition)
        if event.kind == "placed":
            open_orders[event.order_id] = PendingOrder(event.currency, event.lines)
            outcome.remembered[event.order_id] = open_orders[event.order_id]
            outcome.forgotten.discard(event.order_id)
        elif event.kind in {"confirmed", "closed"}:
            order = open_orders.pop(event.order_id, None)
            outcome.remembered.pop(event.order_id, None)
            outcome.forgotten.add(event.order_id)
            if event.kind == "confirmed":
                _sell(outcome, event, order, mark, grace=grace, where=(partition, offset))
        if mark is None or event.at > mark:
            marks[partition] = event.at
            outcome.watermarks[partition] = event.at
    return outcome


def _sell(
    outcome: SalesOutcome,
    event: SalesEvent,
    order: PendingOrder | None,
    mark: datetime | None,
    *,
    grace: timedelta,
    where: tuple[int, int],
) -> None:
    if order is None:
        outcome.unmatched.append(event.order_id)
        return
    per_sku: dict[str, list[int]] = {}
    for line in order.lines:
        revenue_units = per_sku.setdefault(line.sku, [0, 0])
        revenue_units[0] += line.quantity * line.unit_price_cents
        revenue_units[1] += line.quantity
    revenue = sum(r for r, _ in per_sku.values())
    units = sum(u for _, u in per_sku.values())
    minute = window_start(event.at, MINUTE)
    if mark is not None and mark >= minute + GRANULARITIES[MINUTE] + grace:
        outcome.late.append(
            LateSale(event.event_id, event.order_id, event.at, mark, *where, revenue, units)
        )
        return
    for granularity in GRANULARITIES:
        start = window_start(event.at, granularity)
        for sku, (sku_revenue, sku_units) in per_sku.items():
            key = WindowKey(granularity, start, sku, order.currency)
            outcome.windows.setdefault(key, Totals()).add(sku_revenue, sku_units)
        overall = WindowKey(granularity, start, ALL_SKUS, order.currency)
        outcome.windows.setdefault(overall, Totals()).add(revenue, units)


def window_start(at: datetime, granularity: str) -> datetime:
    size = GRANULARITIES[granularity]
    return EPOCH + ((at - EPOCH) // size) * size
