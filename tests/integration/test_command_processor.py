"""The command processor against the real broker and registry, run as `cqrs worker`."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, Producer

from cqrs.client import CommandClient
from cqrs.settings import Settings
from schemas.catalog import SchemaCatalog
from schemas.registry_client import RegistryClient
from schemas.serde import AvroSerde

ADDRESS = {
    "name": "Ada",
    "street": "1 Loop",
    "city": "Paris",
    "postal_code": "75001",
    "country": "FR",
}


class Worker:
    def __init__(self, settings: Settings, env: dict[str, str], log: Path) -> None:
        self.settings, self.env, self.log = settings, env, log
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "cqrs", "worker"],
                env={**os.environ, **self.env},
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 90
        while "Worker]: Ready" not in self.log.read_text(errors="replace"):
            assert self.process.poll() is None, self.log.read_text()[-3000:]
            assert time.monotonic() < deadline, "worker not ready:\n" + self.log.read_text()[-3000:]
            time.sleep(0.3)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(60)
            except subprocess.TimeoutExpired:
                self.process.kill()


@pytest.fixture(scope="module")
def worker(local_stack: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Worker]:
    run = uuid.uuid4().hex[:8]
    env = {
        "CQRS_KAFKA__TOPIC_PREFIX": f"cp-{run}-",
        "CQRS_PROCESSOR__APP_ID": f"cp-{run}",
        "CQRS_PROCESSOR__PARTITIONS": "3",
        "CQRS_PROCESSOR__DATADIR": str(tmp_path_factory.mktemp("worker")),
    }
    settings = local_stack.model_copy(
        update={"kafka": local_stack.kafka.model_copy(update={"topic_prefix": f"cp-{run}-"})}
    )
    worker = Worker(settings, env, tmp_path_factory.mktemp("logs") / "worker.log")
    worker.start()
    yield worker
    worker.stop()


@pytest.fixture(scope="module")
def client(worker: Worker) -> Iterator[CommandClient]:
    client = CommandClient(worker.settings)
    yield client
    client.close()


def read_topic(
    settings: Settings, topic: str, idle_s: float = 2.0
) -> list[tuple[bytes, bytes, list[tuple[str, bytes]]]]:
    consumer = Consumer(
        {
            **settings.kafka.confluent_config(),
            "group.id": uuid.uuid4().hex,
            "auto.offset.reset": "earliest",
            "isolation.level": "read_committed",
        }
    )
    consumer.subscribe([settings.kafka.topic_prefix + topic])
    records: list[tuple[bytes, bytes, list[tuple[str, bytes]]]] = []
    last = time.monotonic()
    try:
        while time.monotonic() - last < idle_s:
            message = consumer.poll(0.3)
            if message is None or message.error():
                continue
            headers: list[tuple[str, bytes]] = []
            for header in message.headers() or []:
                name, value = header[0], header[1]
                headers.append((str(name), value if isinstance(value, bytes) else b""))
            records.append((message.key() or b"", message.value() or b"", headers))
            last = time.monotonic()
    finally:
        consumer.close()
    return records


def events_of(settings: Settings, aggregate_id: str) -> list[dict[str, Any]]:
    serde = AvroSerde(RegistryClient(settings.registry), SchemaCatalog(), auto_register=False)
    decoded = [
        serde.decode(value)
        for key, value, _ in read_topic(settings, "events")
        if key == aggregate_id.encode()
    ]
    return [{"type": d.full_name.rsplit(".", 1)[-1], **d.value} for d in decoded]


def test_commands_yield_results_and_gap_free_events_keyed_by_aggregate(
    client: CommandClient, worker: Worker
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

    item_events = events_of(worker.settings, sku)
    assert [e["type"] for e in item_events] == [
        "ItemRegistered",
        "StockAdjusted",
        "StockReserved",
        "StockReservationRejected",
    ]
    assert [e["metadata"]["sequence"] for e in item_events] == [1, 2, 3, 4]
    assert item_events[3]["available"] == 7
    assert [e["metadata"]["event_id"] for e in item_events] == [r.event_ids[0] for r in results[:4]]
    [placed] = events_of(worker.settings, order_id)
    assert placed["total_cents"] == 750
    assert placed["metadata"]["aggregate_type"] == "Order"
    assert placed["metadata"]["causation_id"] == results[4].command_id
    subjects = RegistryClient(worker.settings.registry).subjects()
    assert f"{worker.settings.kafka.topic_prefix}events-cqrs.events.StockReserved" in subjects


def test_a_repeated_command_id_returns_the_original_result_and_emits_nothing(
    client: CommandClient, worker: Worker
) -> None:
    sku = f"sku-{uuid.uuid4().hex[:6]}"
    command_id = str(uuid.uuid4())
    first = client.send_and_wait("RegisterItem", sku, {"name": "Cup"}, command_id=command_id)
    again = client.send_and_wait("RegisterItem", sku, {"name": "Cup"}, command_id=command_id)
    assert again == first
    assert len(events_of(worker.settings, sku)) == 1


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


def test_domain_rule_violations_are_rejections_with_stable_codes(client: CommandClient) -> None:
    order_id = f"o-{uuid.uuid4().hex[:6]}"
    empty = client.send_and_wait(
        "PlaceOrder", order_id, {"customer_id": "c", "shipping_address": ADDRESS, "lines": []}
    )
    unknown = client.send_and_wait("ShipOrder", order_id, {})
    assert (empty.rejection_code, unknown.rejection_code) == (
        "ORDER_HAS_NO_LINES",
        "ORDER_NOT_FOUND",
    )


def test_bad_records_go_to_the_dead_letter_topic_without_blocking_the_partition(
    client: CommandClient, worker: Worker, catalog: SchemaCatalog
) -> None:
    settings = worker.settings
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
    producer = Producer(settings.kafka.confluent_config())
    for value in (b"not avro at all", b"\x00\x7f\xff\xff\xf0garbage", no_aggregate, an_event):
        producer.produce(topic, key=key.encode(), value=value)
    producer.flush(10)

    after = client.send_and_wait("RegisterItem", key, {"name": "still works"})

    assert (
        after.accepted and after.version == 1
    )  # same partition, not blocked, nothing decided before
    dead = [
        (headers, value)
        for k, value, headers in read_topic(settings, "commands-dlq")
        if k == key.encode()
    ]
    codes = [dict(headers)["error.code"].decode() for headers, _ in dead]
    assert codes == [
        "NOT_CONFLUENT_FRAMED",
        "UNKNOWN_SCHEMA_ID",
        "MISSING_AGGREGATE_ID",
        "UNKNOWN_COMMAND_TYPE",
    ]
    assert dead[0][1] == b"not avro at all"
    assert all(dict(headers)["original.topic"] == topic.encode() for headers, _ in dead)
    results = {k: v for k, v, _ in read_topic(settings, "command-results")}
    result_serde = AvroSerde(RegistryClient(settings.registry), catalog)
    answered = {
        k.decode(): result_serde.decode(v).value["rejection"]["code"]
        for k, v in results.items()
        if k in (b"cmd-no-agg", b"cmd-event")
    }
    assert answered == {"cmd-no-agg": "MISSING_AGGREGATE_ID", "cmd-event": "UNKNOWN_COMMAND_TYPE"}
    assert len(events_of(settings, key)) == 1
