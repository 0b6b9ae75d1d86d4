"""The PostgreSQL read models and projection topics against the real stack.

A known script of events is written to an isolated ``events`` topic (framed
and transactional, as the command processor writes them) and consumed by the
real sinks; the tables, the projection topics and the dead-letter topic are
then checked against what the script must produce.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer
from confluent_kafka.serialization import MessageField, SerializationContext

from core.settings import Settings
from schemas.serde import AvroSerde
from sinks.postgres.sink import PostgresSink
from sinks.registry import projection
from sinks.runner import event_record
from sinks.service import prepared_serde
from tests.integration.event_log import T0, EventLog, line
from tests.integration.pipeline import read_topic, wait_until
from tests.integration.sink_support import RunningSinks, isolated, query, table

PG_PROJECTIONS = ["order-summary", "inventory-levels", "sales-analytics"]


def at(seconds: float) -> Any:
    return T0 + timedelta(seconds=seconds)


def write_script(log: EventLog) -> None:
    """Two items, three orders: shipped, cancelled, rejected for lack of stock."""
    log.item("sku-A", "ItemRegistered", at(1), name="Mug")
    log.item("sku-A", "StockAdjusted", at(2), delta=10, reason="RESTOCK")
    log.item("sku-B", "ItemRegistered", at(3), name="Cup")
    log.item("sku-B", "StockAdjusted", at(4), delta=5, reason="RESTOCK")
    log.placed("o-1", "c-1", [line("sku-A", 2, 250), line("sku-B", 1, 1000)], at=at(10))
    log.item("sku-A", "StockReserved", at(11), order_id="o-1", quantity=2)
    log.item("sku-B", "StockReserved", at(12), order_id="o-1", quantity=1)
    log.order("o-1", "OrderConfirmed", at(20))
    log.order("o-1", "OrderShipped", at(30), carrier="DHL")
    log.item("sku-A", "StockCommitted", at(31), order_id="o-1", quantity=2)
    log.item("sku-B", "StockCommitted", at(32), order_id="o-1", quantity=1)
    log.placed("o-2", "c-1", [line("sku-A", 1, 250)], at=at(40))
    log.order("o-2", "OrderCancelled", at(50), reason="changed mind")
    log.placed("o-3", "c-2", [line("sku-B", 9, 1000)], at=at(60))
    log.item("sku-B", "StockReservationRejected", at(61), order_id="o-3", quantity=9, available=4)
    log.order("o-3", "OrderRejected", at(70), reason="out of stock")


EXPECTED_SUMMARY = [
    ("o-1", "c-1", "SHIPPED", 1500, 3, "", 3),
    ("o-2", "c-1", "CANCELLED", 250, 1, "changed mind", 2),
    ("o-3", "c-2", "REJECTED", 9000, 9, "out of stock", 2),
]
EXPECTED_HISTORY = [  # newest first per customer
    ("c-1", "o-2", "CANCELLED", 250, 2),
    ("c-1", "o-1", "SHIPPED", 1500, 3),
    ("c-2", "o-3", "REJECTED", 9000, 2),
]
EXPECTED_LEVELS = [("sku-A", "Mug", 8, 0, 8, 4), ("sku-B", "Cup", 4, 0, 4, 5)]
EXPECTED_WINDOWS = [  # o-1 confirmed at 12:00:20: a sale in the 12:00 minute and hour
    ("HOUR", "*", 1500, 3, 1),
    ("HOUR", "sku-A", 500, 2, 1),
    ("HOUR", "sku-B", 1000, 1, 1),
    ("MINUTE", "*", 1500, 3, 1),
    ("MINUTE", "sku-A", 500, 2, 1),
    ("MINUTE", "sku-B", 1000, 1, 1),
]


def summary(settings: Settings) -> list[tuple[Any, ...]]:
    return query(
        settings,
        "SELECT order_id, customer_id, status, total_cents, item_count, status_reason, version "
        "FROM {base}.order_summary ORDER BY order_id",
    )


def history(settings: Settings) -> list[tuple[Any, ...]]:
    return query(
        settings,
        "SELECT customer_id, order_id, status, total_cents, version "
        "FROM {base}.customer_orders ORDER BY customer_id, placed_at DESC, order_id",
    )


def levels(settings: Settings) -> list[tuple[Any, ...]]:
    return query(
        settings,
        "SELECT sku, name, on_hand, reserved, available, version "
        "FROM {base}.inventory_levels ORDER BY sku",
    )


def windows(settings: Settings) -> list[tuple[Any, ...]]:
    return query(
        settings,
        "SELECT granularity, sku, revenue_cents, units, order_count FROM {base}.sales_windows "
        "ORDER BY granularity, window_start, sku",
    )


def snapshot(settings: Settings) -> dict[str, list[tuple[Any, ...]]]:
    return {
        "order_summary": table(settings, "order_summary", "order_id"),
        "customer_orders": table(settings, "customer_orders", "customer_id, order_id"),
        "inventory_levels": table(settings, "inventory_levels", "sku"),
        "sales_windows": table(settings, "sales_windows", "granularity, window_start, sku"),
    }


def all_applied(settings: Settings) -> bool:
    return (
        summary(settings) == EXPECTED_SUMMARY
        and history(settings) == EXPECTED_HISTORY
        and levels(settings) == EXPECTED_LEVELS
        and windows(settings) == EXPECTED_WINDOWS
    )


@pytest.fixture(scope="module")
def scripted(local_stack: Settings) -> Iterator[Settings]:
    """The script written and applied by the three PostgreSQL sinks (then stopped)."""
    with isolated(local_stack, partitions=3) as settings:
        with RunningSinks(settings, PG_PROJECTIONS) as sinks:
            log = EventLog(settings, sinks.serde)
            write_script(log)
            log.commit()
            wait_until(lambda: all_applied(settings), 90, "the script applied")
            wait_until(sinks.ready, 30, "sinks ready")
        yield settings


def test_each_table_holds_what_the_script_says(scripted: Settings) -> None:
    assert summary(scripted) == EXPECTED_SUMMARY
    assert history(scripted) == EXPECTED_HISTORY
    assert levels(scripted) == EXPECTED_LEVELS
    assert windows(scripted) == EXPECTED_WINDOWS
    [(confirmed, shipped, cancelled, lines)] = query(
        scripted,
        "SELECT confirmed_at, shipped_at, cancelled_at, lines FROM {base}.order_summary "
        "WHERE order_id = 'o-1'",
    )
    assert (confirmed, shipped, cancelled) == (at(20), at(30), None)
    assert lines == [line("sku-A", 2, 250), line("sku-B", 1, 1000)]
    [(start, end)] = query(
        scripted,
        "SELECT window_start, window_end FROM {base}.sales_windows "
        "WHERE granularity = 'MINUTE' AND sku = '*'",
    )
    assert (start, end) == (T0, T0 + timedelta(minutes=1))


def latest_views(settings: Settings, topic: str) -> dict[str, dict[str, Any]]:
    """The topic read the way a downstream service does: plain consumer, AvroDeserializer."""
    registry = SchemaRegistryClient({"url": settings.registry.url})
    deserializer = AvroDeserializer(registry)
    name = settings.kafka.topic_prefix + topic
    latest: dict[str, dict[str, Any]] = {}
    for key, value, _ in read_topic(settings, name):
        view = deserializer(value, SerializationContext(name, MessageField.VALUE))
        assert isinstance(view, dict)
        latest[key.decode()] = view
    return latest


def test_projection_topics_carry_the_latest_view_per_key(scripted: Settings) -> None:
    orders = latest_views(scripted, "order-summary")
    assert {k: (v["status"], v["version"]) for k, v in orders.items()} == {
        "o-1": ("SHIPPED", 3),
        "o-2": ("CANCELLED", 2),
        "o-3": ("REJECTED", 2),
    }
    assert orders["o-1"]["shipped_at"] == at(30)
    assert orders["o-1"]["lines"] == [line("sku-A", 2, 250), line("sku-B", 1, 1000)]
    items = latest_views(scripted, "inventory-levels")
    assert {k: (v["on_hand"], v["reserved"], v["available"]) for k, v in items.items()} == {
        "sku-A": (8, 0, 8),
        "sku-B": (4, 0, 4),
    }
    sales = latest_views(scripted, "sales-analytics")
    overall = sales[f"MINUTE/{T0.isoformat()}/*/EUR"]
    assert (overall["revenue_cents"], overall["units"], overall["order_count"]) == (1500, 3, 1)
    assert len(sales) == len(EXPECTED_WINDOWS)
    assert not query(scripted, "SELECT * FROM {base}__order_summary_1.publication_outbox")


def test_events_delivered_again_change_nothing(scripted: Settings) -> None:
    before = snapshot(scripted)
    events_topic = scripted.kafka.topic_prefix + "events"
    # 1. The groups' Kafka offsets rewound: each sink seeks to the positions in PostgreSQL.
    for name in PG_PROJECTIONS:
        rewind(scripted, name, events_topic)
    with RunningSinks(scripted, PG_PROJECTIONS) as sinks:
        wait_until(sinks.ready, 60, "sinks positioned and caught up")
    assert snapshot(scripted) == before
    # 2. Every record handed to a sink again (as to a second owner during a rebalance).
    serde = prepared_serde(scripted)
    for name in PG_PROJECTIONS:
        again = projection(name, scripted).build_sink(scripted, serde)
        assert isinstance(again, PostgresSink)
        feed_everything(scripted, again, serde, events_topic)
    assert snapshot(scripted) == before
    # 3. Positions forgotten: the version guards alone keep summaries and levels unchanged.
    for name in ("order_summary", "inventory_levels"):
        query(scripted, f"DELETE FROM {{base}}__{name}_1.projection_offsets RETURNING 1")
    with RunningSinks(scripted, ["order-summary", "inventory-levels"]) as sinks:
        wait_until(
            lambda: (
                positions(scripted, "order_summary") == positions(scripted, "sales_analytics")
                and positions(scripted, "inventory_levels")
                == positions(scripted, "sales_analytics")
            ),
            60,
            "every event applied again",
        )
    assert snapshot(scripted) == before


def rewind(settings: Settings, projection: str, topic: str) -> None:
    consumer = Consumer(
        {
            **settings.kafka.confluent_config(),
            "group.id": f"{settings.kafka.topic_prefix}cqrs-sink-{projection}",
        }
    )
    try:
        consumer.commit(offsets=[TopicPartition(topic, p, 0) for p in range(3)], asynchronous=False)
    finally:
        consumer.close()


def feed_everything(
    settings: Settings, sink: PostgresSink[Any], serde: AvroSerde, topic: str
) -> None:
    consumer = Consumer(
        {
            **settings.kafka.confluent_config(),
            "group.id": "feed-again",
            "isolation.level": "read_committed",
            "enable.partition.eof": True,
        }
    )
    consumer.assign([TopicPartition(topic, p, 0) for p in range(3)])
    ends: set[int] = set()
    positions_: dict[tuple[str, int], int] = {}
    try:
        while len(ends) < 3:
            for message in consumer.consume(100, 1.0):
                if message.error():
                    ends.add(message.partition() or 0)
                    continue
                number, offset = message.partition() or 0, message.offset() or 0
                record = event_record(serde, message, sink.event_types)
                if record is not None:
                    sink.add(record, topic, number, offset)
                positions_[(topic, number)] = offset + 1
    finally:
        consumer.close()
    sink.flush(positions_)
    sink.close()


def positions(settings: Settings, table_set: str) -> list[tuple[Any, ...]]:
    return query(
        settings,
        f"SELECT partition, next_offset FROM {{base}}__{table_set}_1.projection_offsets "
        "ORDER BY partition",
    )
