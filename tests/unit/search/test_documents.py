"""Folding order events into search documents: pure, no engine."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from aggregates.read_side.search_orders import OrderDocument, OrdersSearch, order_change
from core.errors import InvalidEventError
from sinks.base import EventRecord
from sinks.search.projection import Fold
from sinks.search.projection import fold as generic_fold
from sinks.search.sink import DocumentCache
from tests.unit.search.events import (
    ADDRESS,
    PLACED_AT,
    cancelled,
    confirmed,
    entry,
    placed,
    record,
    shipped,
)


def fold(document: OrderDocument | None, changes: list[Any]) -> Fold[Any, OrderDocument]:
    return generic_fold(OrdersSearch(), document, changes)


def placed_document(order_id: str) -> OrderDocument:
    document = fold(None, [entry(placed(order_id))]).document
    assert document is not None
    return document


def test_placed_builds_the_whole_document() -> None:
    result = fold(None, [entry(placed("o-1"))])
    document = result.document
    assert document is not None
    source = document.to_source()
    assert source["order_id"] == "o-1"
    assert source["customer_id"] == "c-ada"
    assert source["status"] == "PLACED"
    assert source["items"] == [
        {"sku": "mug-blue", "quantity": 2, "unit_price_cents": 1250, "amount_cents": 2500},
        {"sku": "tea-earl-grey", "quantity": 3, "unit_price_cents": 800, "amount_cents": 2400},
    ]
    assert (source["item_count"], source["total_cents"], source["currency"]) == (5, 4900, "EUR")
    assert source["shipping_address"] == ADDRESS
    assert source["placed_at"] == "2026-03-01T09:31:00.000Z"
    assert source["version"] == 1
    assert result.changed


def test_later_events_change_status_and_keep_the_rest() -> None:
    result = fold(
        None,
        [entry(placed("o-1")), entry(confirmed("o-1"), 1), entry(shipped("o-1"), 2)],
    )
    assert result.document is not None
    source = result.document.to_source()
    assert (source["status"], source["version"], source["carrier"]) == ("SHIPPED", 3, "DHL")
    assert source["tracking_number"] == "TRK-1"
    assert source["shipped_at"] == source["updated_at"] == "2026-03-01T09:33:00.000Z"
    assert source["total_cents"] == 4900
    assert len(result.applied) == 3


def test_changes_apply_in_sequence_order_whatever_the_batch_order() -> None:
    result = fold(None, [entry(confirmed("o-1")), entry(placed("o-1"))])
    assert result.document is not None
    assert (result.document.status, result.document.version) == ("CONFIRMED", 2)


def test_redelivered_events_at_or_below_the_stored_version_are_skipped() -> None:
    stored = fold(None, [entry(placed("o-1")), entry(confirmed("o-1"))]).document
    again = fold(stored, [entry(placed("o-1")), entry(confirmed("o-1"))])
    assert again.document == stored
    assert not again.changed
    assert len(again.already_applied) == 2


def test_only_newer_events_apply_to_a_stored_document() -> None:
    stored = fold(None, [entry(placed("o-1")), entry(confirmed("o-1"))]).document
    result = fold(stored, [entry(confirmed("o-1")), entry(cancelled("o-1", 3, "late"))])
    assert result.document is not None
    assert (result.document.status, result.document.status_reason) == ("CANCELLED", "late")
    assert result.base_version == 2 and result.changed
    assert [e.item.sequence for e in result.applied] == [3]


def test_a_status_event_without_a_placed_order_is_rejected() -> None:
    result = fold(None, [entry(confirmed("o-9"))])
    assert result.document is None
    assert [error.code for _, error in result.rejected] == ["ORDER_NOT_PLACED"]
    assert not result.changed


def test_a_sequence_gap_is_recorded_and_the_later_state_applied() -> None:
    stored = fold(None, [entry(placed("o-1"))]).document
    result = fold(stored, [entry(shipped("o-1", 3))])
    assert result.gaps == [(2, 3)]
    assert result.document is not None and result.document.status == "SHIPPED"


def test_documents_survive_the_round_trip_through_the_index() -> None:
    document = fold(None, [entry(placed("o-1")), entry(shipped("o-1", 2))]).document
    assert document is not None
    assert OrderDocument.from_source(document.to_source()) == document


def test_events_of_other_aggregates_are_not_order_changes() -> None:
    assert order_change(record("ItemRegistered", "sku-1", 1, "InventoryItem", name="Mug")) is None


@pytest.mark.parametrize(
    ("event", "code"),
    [
        (
            record("OrderPlaced", "o-1", 1, customer_id="c", lines=[], total_cents=0),
            "ORDER_WITHOUT_LINES",
        ),
        (
            record(
                "OrderPlaced",
                "o-1",
                1,
                customer_id="c",
                lines=[{"sku": "a", "quantity": 2, "unit_price_cents": 5}],
                total_cents=11,
            ),
            "TOTAL_MISMATCH",
        ),
        (record("OrderPlaced", "", 1), "MISSING_ORDER_IDENTITY"),
        (record("OrderTeleported", "o-1", 2), "UNKNOWN_ORDER_EVENT"),
    ],
)
def test_poison_order_events_are_invalid(event: EventRecord, code: str) -> None:
    with pytest.raises(InvalidEventError) as raised:
        order_change(event)
    assert raised.value.code == code


def test_the_event_time_is_the_business_time() -> None:
    change = order_change(placed("o-1"))  # occurred one minute after PLACED_AT
    assert change is not None
    assert change.occurred_at == (PLACED_AT + timedelta(minutes=1)).strftime(
        "%Y-%m-%dT%H:%M:%S.000Z"
    )


def test_the_document_cache_drops_the_least_recently_used() -> None:
    cache = DocumentCache(2)
    documents = [placed_document(f"o-{n}") for n in range(3)]
    cache.put(documents[0])
    cache.put(documents[1])
    assert cache.get("o-0") is not None  # o-0 now most recent
    cache.put(documents[2])
    assert cache.get("o-1") is None
    assert cache.get("o-0") is not None and cache.get("o-2") is not None
    assert len(cache) == 2
    disabled = DocumentCache(0)
    disabled.put(documents[0])
    assert len(disabled) == 0
