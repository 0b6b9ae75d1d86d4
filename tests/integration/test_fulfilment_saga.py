"""The fulfilment process manager end to end: `cqrs worker` and `cqrs saga` on the real broker."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from core.settings import Settings
from cqrs.client import CommandClient
from tests.integration.pipeline import Pipeline, wait_until

ADDRESS = {
    "name": "Grace",
    "street": "2 Harbour Rd",
    "city": "Arlington",
    "postal_code": "22201",
    "country": "US",
}


@pytest.fixture(scope="module")
def pipeline(local_stack: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pipeline]:
    pipeline = Pipeline.create(
        local_stack, tmp_path_factory.mktemp("logs"), tmp_path_factory.mktemp("state")
    )
    with pipeline.running("worker", "saga"):
        yield pipeline


def stocked_item(client: CommandClient, units: int) -> str:
    sku = f"sku-{uuid.uuid4().hex[:6]}"
    assert client.send_and_wait("RegisterItem", sku, {"name": f"Item {sku}"}).accepted
    assert client.send_and_wait("AdjustStock", sku, {"delta": units, "reason": "RESTOCK"}).accepted
    return sku


def place(client: CommandClient, lines: dict[str, int]) -> str:
    order_id = f"o-{uuid.uuid4().hex[:8]}"
    result = client.send_and_wait(
        "PlaceOrder",
        order_id,
        {
            "customer_id": "c-42",
            "shipping_address": ADDRESS,
            "lines": [
                {"sku": sku, "quantity": units, "unit_price_cents": 100}
                for sku, units in lines.items()
            ],
        },
    )
    assert result.accepted, result
    return order_id


def settled(pipeline: Pipeline, aggregate_id: str, last: str) -> list[dict[str, Any]]:
    """The aggregate's events once ``last`` is among them."""

    def events_once_there() -> list[dict[str, Any]]:
        events = pipeline.events(aggregate_id)
        return events if last in [e["type"] for e in events] else []

    return wait_until(events_once_there, what=f"{last} on {aggregate_id}")


def for_order(events: list[dict[str, Any]], order_id: str) -> list[str]:
    return [e["type"] for e in events if e.get("order_id") == order_id]


def test_an_order_with_stock_for_every_line_is_reserved_and_confirmed(
    client: CommandClient, pipeline: Pipeline
) -> None:
    mugs, plates = stocked_item(client, 10), stocked_item(client, 5)
    order_id = place(client, {mugs: 2, plates: 5})

    order_events = settled(pipeline, order_id, "OrderConfirmed")

    assert [e["type"] for e in order_events] == ["OrderPlaced", "OrderConfirmed"]
    placed, confirmed = order_events
    assert [e["metadata"]["sequence"] for e in order_events] == [1, 2]
    # The whole flow shares the client's correlation id; each step names its cause.
    assert confirmed["metadata"]["correlation_id"] == placed["metadata"]["correlation_id"]
    reserved = [e for e in pipeline.events(mugs) if e["type"] == "StockReserved"]
    assert [(e["order_id"], e["quantity"]) for e in reserved] == [(order_id, 2)]
    assert for_order(pipeline.events(plates), order_id) == ["StockReserved"]
    ship = client.send_and_wait("ShipOrder", order_id, {})
    assert ship.accepted
    assert for_order(settled(pipeline, mugs, "StockCommitted"), order_id) == [
        "StockReserved",
        "StockCommitted",
    ]


def test_an_order_a_line_cannot_be_reserved_for_is_rejected_and_nothing_stays_held(
    client: CommandClient, pipeline: Pipeline
) -> None:
    plenty, scarce = stocked_item(client, 10), stocked_item(client, 1)
    order_id = place(client, {plenty: 3, scarce: 2})

    order_events = settled(pipeline, order_id, "OrderRejected")

    assert [e["type"] for e in order_events] == ["OrderPlaced", "OrderRejected"]
    assert scarce in order_events[1]["reason"]
    assert for_order(pipeline.events(scarce), order_id) == ["StockReservationRejected"]
    # Whether the other reservation landed before or after the rejection, it is given back.
    released = settled(pipeline, plenty, "StockReleased")
    assert for_order(released, order_id) == ["StockReserved", "StockReleased"]
    retry = client.send_and_wait("ReserveStock", plenty, {"order_id": "probe", "quantity": 10})
    assert retry.accepted  # all ten units are available again


def test_a_cancelled_order_releases_its_reservations(
    client: CommandClient, pipeline: Pipeline
) -> None:
    sku = stocked_item(client, 4)
    order_id = place(client, {sku: 4})
    settled(pipeline, order_id, "OrderConfirmed")

    assert client.send_and_wait("CancelOrder", order_id, {"reason": "changed my mind"}).accepted

    item_events = settled(pipeline, sku, "StockReleased")
    assert for_order(item_events, order_id) == ["StockReserved", "StockReleased"]
    release = item_events[-1]
    cancelled = pipeline.events(order_id)[-1]
    assert cancelled["type"] == "OrderCancelled"
    assert release["metadata"]["correlation_id"] == cancelled["metadata"]["correlation_id"]


def test_the_saga_issues_each_command_once_with_ids_derived_from_its_cause(
    client: CommandClient, pipeline: Pipeline
) -> None:
    sku = stocked_item(client, 3)
    order_id = place(client, {sku: 1})
    settled(pipeline, order_id, "OrderConfirmed")

    serde = pipeline.serde()
    issued = [
        serde.decode(value).value["metadata"]
        for key, value, _ in pipeline.read("commands")
        if key in (sku.encode(), order_id.encode())
    ]
    by_saga = [m for m in issued if m["issued_by"] == "cqrs-fulfilment"]
    placed_id = pipeline.events(order_id)[0]["metadata"]["event_id"]
    reserved_id = for_order_event_id(pipeline.events(sku), order_id)
    # Two partitions (the SKU's and the order's): compare without their relative order.
    assert sorted(m["causation_id"] for m in by_saga) == sorted([placed_id, reserved_id])
    assert len({m["command_id"] for m in by_saga}) == 2


def for_order_event_id(events: list[dict[str, Any]], order_id: str) -> str:
    [reserved] = [e for e in events if e.get("order_id") == order_id]
    event_id: str = reserved["metadata"]["event_id"]
    return event_id
