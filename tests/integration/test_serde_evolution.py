"""Old events written to Kafka are read in today's shape: by resolution or by an upcaster."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from confluent_kafka import Consumer, Producer

from core.errors import NotConfluentFramedError, UnknownSchemaIdError, UpcastError
from core.settings import Settings
from core.upcasting import Upcasters
from schemas.catalog import SchemaCatalog
from schemas.registry_client import RegistryClient
from schemas.serde import AvroSerde, frame
from tests.integration.conftest import TopicFactory

NOW = datetime(2026, 11, 23, 9, 30, tzinfo=UTC)


def metadata(aggregate_id: str, sequence: int) -> dict[str, Any]:
    return {
        "event_id": str(uuid.uuid4()),
        "aggregate_type": "Order",
        "aggregate_id": aggregate_id,
        "sequence": sequence,
        "command_id": "c",
        "correlation_id": "c",
        "causation_id": "c",
        "occurred_at": NOW,
        "recorded_at": NOW,
    }


def through_kafka(settings: Settings, topic: str, records: list[bytes]) -> list[bytes]:
    producer = Producer(settings.kafka.confluent_config())
    for record in records:
        producer.produce(topic, record)
    assert producer.flush(30) == 0
    consumer = Consumer(
        {
            **settings.kafka.confluent_config(),
            "group.id": uuid.uuid4().hex,
            "auto.offset.reset": "earliest",
        }
    )
    consumer.subscribe([topic])
    received: list[bytes] = []
    try:
        for _ in range(60):
            message = consumer.poll(0.5)
            if message is not None and not message.error() and message.value() is not None:
                received.append(message.value() or b"")
            if len(received) == len(records):
                break
    finally:
        consumer.close()
    return received


def add_field(name: str, default: str, revision: int = 2) -> Callable[[dict[str, Any]], None]:
    def change(schema: dict[str, Any]) -> None:
        schema["revision"] = revision
        schema["fields"].append({"name": name, "type": "string", "default": default, "doc": name})

    return change


def test_v1_event_is_read_as_v2_through_schema_resolution(
    local_stack: Settings,
    new_topic: TopicFactory,
    registry: RegistryClient,
    catalog: SchemaCatalog,
    evolved_catalog: Callable[..., SchemaCatalog],
) -> None:
    topic = new_topic("evolve")
    v1 = {"metadata": metadata("o-1", 4), "reason": "changed my mind"}
    written = AvroSerde(registry, catalog).encode(topic, "cqrs.events.OrderCancelled", v1)

    [received] = through_kafka(local_stack, topic, [written])
    v2_catalog = evolved_catalog(
        "cqrs.events.OrderCancelled", add_field("cancelled_by", "customer")
    )
    decoded = AvroSerde(registry, v2_catalog).decode(received)

    assert decoded.writer_revision == 1
    assert decoded.value == {**v1, "cancelled_by": "customer"}


def test_v1_event_is_read_as_v2_through_an_upcaster(
    local_stack: Settings,
    new_topic: TopicFactory,
    registry: RegistryClient,
    catalog: SchemaCatalog,
    evolved_catalog: Callable[..., SchemaCatalog],
) -> None:
    topic = new_topic("upcast")
    v1 = [
        {"metadata": metadata("o-2", 2), "reason": "Out of stock: sku-9"},
        {"metadata": metadata("o-3", 2), "reason": "payment declined"},
    ]
    written = [
        AvroSerde(registry, catalog).encode(topic, "cqrs.events.OrderRejected", v) for v in v1
    ]
    received = through_kafka(local_stack, topic, written)
    v2_catalog = evolved_catalog("cqrs.events.OrderRejected", add_field("reason_code", "UNKNOWN"))

    upcasters = Upcasters()

    @upcasters.register("cqrs.events.OrderRejected", from_revision=1)
    def upcast_order_rejected_v1_v2(old: dict[str, Any]) -> dict[str, Any]:
        code = "OUT_OF_STOCK" if old["reason"].lower().startswith("out of stock") else "OTHER"
        return {**old, "reason_code": code}

    upcast = [AvroSerde(registry, v2_catalog, upcasters).decode(r).value for r in received]
    resolved_only = [AvroSerde(registry, v2_catalog).decode(r).value for r in received]

    assert [v["reason_code"] for v in upcast] == ["OUT_OF_STOCK", "OTHER"]
    assert [v["reason_code"] for v in resolved_only] == ["UNKNOWN", "UNKNOWN"]
    assert [{k: v for k, v in value.items() if k != "reason_code"} for value in upcast] == v1


def test_an_upcaster_that_breaks_the_shape_is_a_specific_error(
    registry: RegistryClient,
    catalog: SchemaCatalog,
    evolved_catalog: Callable[..., SchemaCatalog],
    unique_name: Callable[[str], str],
) -> None:
    data = AvroSerde(registry, catalog).encode(
        unique_name("t"), "cqrs.events.OrderRejected", {"metadata": metadata("o", 1), "reason": "x"}
    )
    upcasters = Upcasters()
    upcasters.register("cqrs.events.OrderRejected", from_revision=1)(lambda old: {"reason": 5})
    v2 = evolved_catalog("cqrs.events.OrderRejected", add_field("reason_code", "UNKNOWN"))
    with pytest.raises(UpcastError, match="revision 1"):
        AvroSerde(registry, v2, upcasters).decode(data)


def test_bad_bytes_are_specific_errors_for_the_dead_letter_topic(
    registry: RegistryClient, catalog: SchemaCatalog
) -> None:
    serde = AvroSerde(registry, catalog)
    with pytest.raises(NotConfluentFramedError) as no_magic:
        serde.decode(b'{"order_id": "o-1"}')
    with pytest.raises(UnknownSchemaIdError) as unknown_id:
        serde.decode(frame(2_000_000_000, b"\x02"))
    assert (no_magic.value.code, unknown_id.value.code) == (
        "NOT_CONFLUENT_FRAMED",
        "UNKNOWN_SCHEMA_ID",
    )
    assert unknown_id.value.schema_id == 2_000_000_000
