"""The sink runner against the real broker: batches, offsets, dead letters, shutdown.

The sink here keeps what it is given in memory, so that the runner's own
behaviour is what is checked; the PostgreSQL projections have tests of their own.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator

import pytest
from confluent_kafka import Consumer, TopicPartition

from aggregates.shop import domain as shop
from core.errors import InvalidEventError
from core.settings import Settings
from schemas.catalog import SchemaCatalog
from schemas.registry_client import RegistryClient
from schemas.serde import AvroSerde
from sinks.base import BatchingSink, EventRecord, SinkBatch
from sinks.runner import SinkRunner, sink_group
from tests.integration.event_log import EventLog, line
from tests.integration.pipeline import read_topic, wait_until
from tests.integration.sink_support import isolated


class Remembering(BatchingSink[tuple[str, int]]):
    """Keeps (aggregate id, sequence) of every order event; refuses order ids starting 'bad'."""

    projection = "remembering"

    def __init__(self) -> None:
        super().__init__()
        self.batches: list[SinkBatch[tuple[str, int]]] = []

    def convert(self, record: EventRecord) -> tuple[str, int] | None:
        if record.metadata["aggregate_type"] != "Order":
            return None
        if record.aggregate_id.startswith("bad"):
            raise InvalidEventError("BAD_ORDER", f"order {record.aggregate_id} is refused")
        return record.aggregate_id, record.sequence

    def write(self, batch: SinkBatch[tuple[str, int]]) -> None:
        self.batches.append(batch)

    @property
    def items(self) -> list[tuple[str, int]]:
        return [entry.item for batch in self.batches for entry in batch.entries]


@pytest.fixture
def sink_settings(local_stack: Settings) -> Iterator[Settings]:
    with isolated(local_stack, partitions=2) as settings:
        yield settings


def serde_for(settings: Settings) -> AvroSerde:
    return AvroSerde(RegistryClient(settings.registry), SchemaCatalog.for_domain(shop))


def start(runner: SinkRunner) -> threading.Thread:
    thread = threading.Thread(target=runner.run, kwargs={"install_signal_handlers": False})
    thread.start()
    return thread


def committed(settings: Settings, group: str, topic: str, partitions: int) -> dict[int, int]:
    consumer = Consumer({**settings.kafka.confluent_config(), "group.id": group})
    try:
        found = consumer.committed([TopicPartition(topic, p) for p in range(partitions)], 10)
        return {tp.partition: tp.offset for tp in found}
    finally:
        consumer.close()


def test_events_are_applied_in_order_poison_is_dead_lettered_and_offsets_committed(
    sink_settings: Settings,
) -> None:
    settings = sink_settings
    serde = serde_for(settings)
    log = EventLog(settings, serde)
    orders = [f"o-{uuid.uuid4().hex[:6]}" for _ in range(6)]
    for order_id in orders:
        log.placed(order_id, "c-1", [line("sku-1", 1, 100)])
        log.order(order_id, "OrderConfirmed")
    log.raw(orders[0], b"not avro at all")
    log.placed("bad-1", "c-1", [line("sku-1", 1, 100)])
    log.item("sku-1", "ItemRegistered", name="Mug")
    log.order(orders[0], "OrderShipped", carrier="DHL")
    written = log.commit()

    sink = Remembering()
    runner = SinkRunner(sink, settings, serde)
    thread = start(runner)
    try:
        wait_until(lambda: len(sink.items) == 13, 60, "13 order events applied")
        wait_until(
            lambda: sum(committed(settings, runner.group, log.topic, 2).values()) == written,
            30,
            "offsets of every record committed",
        )
    finally:
        runner.stop()
        thread.join(30)
    assert not thread.is_alive()

    for order_id in orders:
        sequences = [seq for oid, seq in sink.items if oid == order_id]
        assert sequences == ([1, 2, 3] if order_id == orders[0] else [1, 2])
    assert runner.group == sink_group(settings, "remembering")

    letters = read_topic(settings, settings.kafka.topic_prefix + "events-dlq")
    assert len(letters) == 2
    by_code = {
        dict(headers)["error.code"]: (key, value, dict(headers)) for key, value, headers in letters
    }
    key, value, headers = by_code[b"NOT_CONFLUENT_FRAMED"]
    assert (key, value) == (orders[0].encode(), b"not avro at all")
    assert headers["error.class"] == b"NotConfluentFramedError"
    assert headers["original.topic"] == log.topic.encode()
    assert headers["dead_letter.component"] == b"sink-remembering"
    offset = int(headers["original.offset"])
    partition = int(headers["original.partition"])
    assert [r for r in read_topic(settings, log.topic) if r[1] == b"not avro at all"]
    _, _, invalid = by_code[b"BAD_ORDER"]
    assert invalid["error.class"] == b"InvalidEventError"
    assert b"bad-1 is refused" in invalid["error.message"]
    assert (partition, offset) != (
        int(invalid["original.partition"]),
        int(invalid["original.offset"]),
    )


class Confirmations(Remembering):
    """Applies order confirmations only, and says so."""

    projection = "confirmations"
    event_types = frozenset({"OrderConfirmed"})


def test_events_a_sink_does_not_apply_are_skipped_without_being_decoded(
    sink_settings: Settings,
) -> None:
    settings = sink_settings
    serde = serde_for(settings)
    log = EventLog(settings, serde)
    log.placed("o-cut", "c-1", [line("sku-1", 1, 100)])
    log.cut_last()  # corrupt, but of a type the sink skips: never read, so no dead letter
    log.order("o-cut", "OrderConfirmed")
    log.order("o-cut", "OrderShipped", carrier="DHL")
    log.placed("o-2", "c-1", [line("sku-1", 1, 100)])
    log.order("o-2", "OrderConfirmed")
    log.cut_last()  # corrupt and of a type the sink applies: decoded, dead-lettered
    written = log.commit()

    sink = Confirmations()
    runner = SinkRunner(sink, settings, serde)
    thread = start(runner)
    try:
        wait_until(
            lambda: sum(committed(settings, runner.group, log.topic, 2).values()) == written,
            60,
            "offsets of every record committed",
        )
    finally:
        runner.stop()
        thread.join(30)

    assert sink.items == [("o-cut", 2)]
    letters = read_topic(settings, settings.kafka.topic_prefix + "events-dlq")
    assert [(key, dict(headers)["error.class"]) for key, _, headers in letters] == [
        (b"o-2", b"AvroDecodeError")
    ]


def test_a_restarted_runner_resumes_after_the_last_commit(sink_settings: Settings) -> None:
    settings = sink_settings
    serde = serde_for(settings)
    log = EventLog(settings, serde)
    first = [f"o-{uuid.uuid4().hex[:6]}" for _ in range(5)]
    for order_id in first:
        log.placed(order_id, "c-1", [line("sku-1", 1, 100)])
    log.commit()
    sink = Remembering()
    runner = SinkRunner(sink, settings, serde)
    thread = start(runner)
    wait_until(lambda: len(sink.items) == 5, 60, "first events")
    runner.stop()
    thread.join(30)

    second = [f"o-{uuid.uuid4().hex[:6]}" for _ in range(4)]
    for order_id in second:
        log.placed(order_id, "c-2", [line("sku-1", 1, 100)])
    log.commit()
    again = Remembering()
    runner = SinkRunner(again, settings, serde)
    thread = start(runner)
    try:
        wait_until(lambda: len(again.items) == 4, 60, "second events")
    finally:
        runner.stop()
        thread.join(30)
    assert sorted(oid for oid, _ in again.items) == sorted(second)
