"""The command processor against the real broker and registry, run as `cqrs worker`."""

from __future__ import annotations

import uuid
import zlib
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from confluent_kafka import Producer
from confluent_kafka.schema_registry import (
    SchemaRegistryClient,
    topic_record_subject_name_strategy,
)
from confluent_kafka.schema_registry.avro import AvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext

from core.settings import Settings
from cqrs.client import CommandClient
from processors.partitioning import partition_for
from schemas.catalog import SchemaCatalog
from schemas.registry_client import RegistryClient
from schemas.serde import AvroSerde
from tests.integration.event_log import ADDRESS
from tests.integration.pipeline import Pipeline, wait_until


@pytest.fixture(scope="module")
def pipeline(local_stack: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pipeline]:
    pipeline = Pipeline.create(
        local_stack, tmp_path_factory.mktemp("logs"), tmp_path_factory.mktemp("state")
    )
    with pipeline.running("worker"):
        yield pipeline


def test_commands_yield_results_and_gap_free_events_keyed_by_aggregate(
    client: CommandClient, pipeline: Pipeline
) -> None:
    sku, order_id = f"sku-{uuid.uuid4().hex[:6]}", f"o-{uuid.uuid4().hex[:6]}"
    results = [
        client.send_and_wait("RegisterItem", sku, {"name": "Mug"}),
        client.send_and_wait("AdjustStock", sku, {"delta": 10, "reason": "RESTOCK"}),
        client.send_and_wait("ReserveStock", sku, {"order_id": order_id, "quantity": 3}),
        client.send_and_wait("ReserveStock", sku, {"order_id": "other", "quantity": 8}),
        client.send_and_wait(
            "PlaceOrder",
            order_id,
            {
                "customer_id": "c-1",
                "shipping_address": ADDRESS,
                "lines": [{"sku": sku, "quantity": 3, "unit_price_cents": 250}],
            },
        ),
    ]
    assert [r.status for r in results] == ["ACCEPTED"] * 5
    assert [r.version for r in results] == [1, 2, 3, 4, 1]

    item_events = pipeline.events(sku)
    assert [e["type"] for e in item_events] == [
        "ItemRegistered",
        "StockAdjusted",
        "StockReserved",
        "StockReservationRejected",
    ]
    assert [e["metadata"]["sequence"] for e in item_events] == [1, 2, 3, 4]
    assert item_events[3]["available"] == 7
    assert [e["metadata"]["event_id"] for e in item_events] == [r.event_ids[0] for r in results[:4]]
    [placed] = pipeline.events(order_id)
    assert placed["total_cents"] == 750
    assert placed["metadata"]["aggregate_type"] == "Order"
    assert placed["metadata"]["causation_id"] == results[4].command_id
    subjects = RegistryClient(pipeline.settings.registry).subjects()
    assert f"{pipeline.settings.kafka.topic_prefix}events-cqrs.events.StockReserved" in subjects


def test_a_repeated_command_id_returns_the_original_result_and_emits_nothing(
    client: CommandClient, pipeline: Pipeline
) -> None:
    sku = f"sku-{uuid.uuid4().hex[:6]}"
    command_id = str(uuid.uuid4())
    first = client.send_and_wait("RegisterItem", sku, {"name": "Cup"}, command_id=command_id)
    again = client.send_and_wait("RegisterItem", sku, {"name": "Cup"}, command_id=command_id)
    assert again == first
    assert len(pipeline.events(sku)) == 1


def test_expected_version_mismatch_is_a_rejection_with_the_current_version(
    client: CommandClient,
) -> None:
    sku = f"sku-{uuid.uuid4().hex[:6]}"
    client.send_and_wait("RegisterItem", sku, {"name": "Cup"})
    ok = client.send_and_wait(
        "AdjustStock", sku, {"delta": 5, "reason": "RESTOCK"}, expected_version=1
    )
    stale = client.send_and_wait(
        "AdjustStock", sku, {"delta": 5, "reason": "RESTOCK"}, expected_version=1
    )
    assert ok.accepted and ok.version == 2
    assert (stale.status, stale.rejection_code, stale.current_version) == (
        "REJECTED",
        "VERSION_CONFLICT",
        2,
    )


def test_domain_rule_violations_are_rejections_with_stable_codes(
    client: CommandClient, pipeline: Pipeline
) -> None:
    order_id, huge_id = f"o-{uuid.uuid4().hex[:6]}", f"o-{uuid.uuid4().hex[:6]}"
    empty = client.send_and_wait(
        "PlaceOrder", order_id, {"customer_id": "c", "shipping_address": ADDRESS, "lines": []}
    )
    unknown = client.send_and_wait("ShipOrder", order_id, {})
    # Every line fits its schema; the order's total (an Avro long) would not.
    line = {"sku": "s", "quantity": 2**31 - 1, "unit_price_cents": 2**62}
    huge = client.send_and_wait(
        "PlaceOrder", huge_id, {"customer_id": "c", "shipping_address": ADDRESS, "lines": [line]}
    )
    after = client.send_and_wait("ShipOrder", huge_id, {})  # the partition goes on

    assert (empty.rejection_code, unknown.rejection_code, huge.rejection_code) == (
        "ORDER_HAS_NO_LINES",
        "ORDER_NOT_FOUND",
        "ORDER_TOO_LARGE",
    )
    assert after.rejection_code == "ORDER_NOT_FOUND"
    assert pipeline.events(order_id) == [] and pipeline.events(huge_id) == []
    # Invalid commands are bad input and dead-lettered too; a business refusal is not.
    dead = {
        (key.decode(), dict(headers)["error.code"].decode())
        for key, _, headers in pipeline.read("commands-dlq")
        if key in (order_id.encode(), huge_id.encode())
    }
    assert dead == {(order_id, "ORDER_HAS_NO_LINES"), (huge_id, "ORDER_TOO_LARGE")}


def test_bad_records_go_to_the_dead_letter_topic_without_blocking_the_partition(
    client: CommandClient, pipeline: Pipeline, catalog: SchemaCatalog
) -> None:
    settings = pipeline.settings
    serde = AvroSerde(RegistryClient(settings.registry), catalog)
    topic = settings.kafka.topic_prefix + "commands"
    key = f"sku-{uuid.uuid4().hex[:6]}"
    now = {"issued_at": 1_700_000_000_000}
    no_aggregate = serde.encode(
        topic,
        "cqrs.commands.RegisterItem",
        {"metadata": {"command_id": "cmd-no-agg", "aggregate_id": " ", **now}, "name": "x"},
    )
    an_event = serde.encode(
        topic,
        "cqrs.events.ItemRegistered",
        {
            "metadata": {
                "event_id": "e",
                "aggregate_type": "InventoryItem",
                "aggregate_id": key,
                "sequence": 1,
                "command_id": "cmd-event",
                "correlation_id": "c",
                "causation_id": "c",
                "occurred_at": 0,
                "recorded_at": 0,
            },
            "name": "x",
        },
    )
    truncated = no_aggregate[:7]  # a registered command's schema id, then half a string
    producer = Producer({**settings.kafka.confluent_config(), "partitioner": "murmur2_random"})
    for value in (
        b"not avro at all",
        b"\x00\x7f\xff\xff\xf0garbage",
        truncated,
        no_aggregate,
        an_event,
    ):
        producer.produce(topic, key=key.encode(), value=value)
    producer.flush(10)

    after = client.send_and_wait("RegisterItem", key, {"name": "still works"})

    assert (
        after.accepted and after.version == 1
    )  # same partition, not blocked, nothing decided before
    dead = [
        (headers, value) for k, value, headers in pipeline.read("commands-dlq") if k == key.encode()
    ]
    codes = [dict(headers)["error.code"].decode() for headers, _ in dead]
    assert codes == [
        "NOT_CONFLUENT_FRAMED",
        "UNKNOWN_SCHEMA_ID",
        "AVRO_DECODE_FAILED",
        "MISSING_AGGREGATE_ID",
        "UNKNOWN_COMMAND_TYPE",
    ]
    assert dead[0][1] == b"not avro at all"
    assert all(dict(headers)["original.topic"] == topic.encode() for headers, _ in dead)
    # The same under Kafka Connect's names, for tooling written for Connect's DLQs.
    for headers, _ in dead:
        found = dict(headers)
        assert found["__connect.errors.topic"] == topic.encode()
        assert found["__connect.errors.offset"] == found["original.offset"]
        assert found["__connect.errors.connector.name"] == b"command-processor"
        assert found["__connect.errors.exception.message"] == found["error.message"]
    stages = [dict(headers)["__connect.errors.stage"] for headers, _ in dead]
    assert stages[:3] == [b"VALUE_CONVERTER"] * 3
    results = {k: v for k, v, _ in pipeline.read("command-results")}
    result_serde = AvroSerde(RegistryClient(settings.registry), catalog)
    answered = {
        k.decode(): result_serde.decode(v).value["rejection"]["code"]
        for k, v in results.items()
        if k in (b"cmd-no-agg", b"cmd-event")
    }
    assert answered == {"cmd-no-agg": "MISSING_AGGREGATE_ID", "cmd-event": "UNKNOWN_COMMAND_TYPE"}
    assert len(pipeline.events(key)) == 1


def test_commands_keyed_or_partitioned_unlike_kafkas_default_are_rejected(
    client: CommandClient, pipeline: Pipeline
) -> None:
    """A second writer for one aggregate can never appear through a foreign partitioner."""
    settings = pipeline.settings
    serde = pipeline.serde()
    topic = settings.kafka.topic_prefix + "commands"
    sku = next(  # a key that librdkafka's CRC32 and Kafka's murmur2 place apart
        candidate
        for candidate in (f"sku-{uuid.uuid4().hex[:6]}" for _ in range(1000))
        if partition_for(candidate.encode(), 3) != zlib.crc32(candidate.encode()) % 3
    )

    def command(command_id: str) -> bytes:
        metadata = {"command_id": command_id, "aggregate_id": sku, "issued_at": 1_700_000_000_000}
        return serde.encode(
            topic, "cqrs.commands.RegisterItem", {"metadata": metadata, "name": "x"}
        )

    crc32_producer = Producer({**settings.kafka.confluent_config(), "partitioner": "consistent"})
    crc32_producer.produce(topic, key=sku.encode(), value=command("cmd-crc32"))
    crc32_producer.produce(topic, key=b"another-key", value=command("cmd-other-key"), partition=0)
    crc32_producer.flush(10)

    def answers() -> dict[str, str]:
        result_serde = pipeline.serde()
        return {
            key.decode(): result_serde.decode(value).value["rejection"]["code"]
            for key, value, _ in pipeline.read("command-results", idle_s=1)
            if key in (b"cmd-crc32", b"cmd-other-key")
        }

    assert wait_until(lambda: len(answers()) == 2, what="both rejections")
    assert answers() == {"cmd-crc32": "WRONG_PARTITION", "cmd-other-key": "KEY_MISMATCH"}
    assert pipeline.events(sku) == []
    assert client.send_and_wait("RegisterItem", sku, {"name": "placed right"}).version == 1


def test_the_table_rebuilt_from_the_event_log_equals_the_live_one(
    client: CommandClient, pipeline: Pipeline
) -> None:
    sku, order_id = f"sku-{uuid.uuid4().hex[:6]}", f"o-{uuid.uuid4().hex[:6]}"
    client.send_and_wait("RegisterItem", sku, {"name": "Teapot"})
    client.send_and_wait("AdjustStock", sku, {"delta": 2, "reason": "RESTOCK"})
    client.send_and_wait("ReserveStock", sku, {"order_id": order_id, "quantity": 5})  # refused
    client.send_and_wait("ShipOrder", order_id, {})  # rejected: a record with version 0
    verify = pipeline.cli("replay", "state")
    write_while_running = pipeline.cli("replay", "state", "--write")

    assert verify.returncode == 0, verify.stdout + verify.stderr
    assert "0 differ from live" in verify.stdout
    assert write_while_running.returncode != 0
    assert "stop them before --write" in write_while_running.stdout + write_while_running.stderr


def test_a_command_from_confluents_avro_serializer_is_decided(pipeline: Pipeline) -> None:
    """What an external producer does, as the README shows: nothing of this project's."""
    settings = pipeline.settings
    topic = settings.kafka.topic_prefix + "commands"
    registry = SchemaRegistryClient({"url": settings.registry.url})
    registered = registry.get_latest_version(f"{topic}-cqrs.commands.RegisterItem")
    serialize = AvroSerializer(
        registry,
        registered.schema.schema_str,
        conf={
            "auto.register.schemas": False,
            "subject.name.strategy": topic_record_subject_name_strategy,
        },
    )
    sku, command_id = f"sku-{uuid.uuid4().hex[:6]}", str(uuid.uuid4())
    command = {
        "metadata": {"command_id": command_id, "aggregate_id": sku, "issued_at": datetime.now(UTC)},
        "name": "Kettle",
    }
    producer = Producer({**settings.kafka.confluent_config(), "partitioner": "murmur2_random"})
    producer.produce(
        topic,
        key=sku.encode(),
        value=serialize(command, SerializationContext(topic, MessageField.VALUE)),
    )
    assert producer.flush(10) == 0

    def answer() -> dict[str, Any] | None:
        for key, value, _ in pipeline.read("command-results"):
            if key == command_id.encode():
                return dict(pipeline.serde().decode(value).value)
        return None

    result = wait_until(answer, timeout_s=30, what=f"the result of {command_id}")
    assert result is not None
    assert (result["status"], result["version"], result["aggregate_id"]) == ("ACCEPTED", 1, sku)
    [registered_event] = pipeline.events(sku)
    assert registered_event["name"] == "Kettle"
