"""Kafka transactions on the local broker: committed records are visible, aborted ones never."""

from __future__ import annotations

import uuid

from confluent_kafka import Consumer, Producer

from core.settings import Settings
from tests.integration.conftest import TopicFactory


def _read_all(settings: Settings, topic: str, isolation: str, expected: int) -> list[bytes]:
    consumer = Consumer(
        {
            **settings.kafka.confluent_config(),
            "group.id": f"smoke-{uuid.uuid4().hex}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "isolation.level": isolation,
        }
    )
    consumer.subscribe([topic])
    values: list[bytes] = []
    idle_polls = 0
    try:
        # Read until the expected count arrives, then a little longer to catch extras.
        while idle_polls < (3 if len(values) >= expected else 30):
            message = consumer.poll(0.5)
            value = None if message is None or message.error() else message.value()
            if value is None:
                idle_polls += 1
                continue
            values.append(value)
    finally:
        consumer.close()
    return values


def test_read_committed_sees_committed_records_and_never_aborted_ones(
    local_stack: Settings, new_topic: TopicFactory
) -> None:
    topic = new_topic("txn")
    producer = Producer(
        {**local_stack.kafka.confluent_config(), "transactional.id": f"smoke-{uuid.uuid4()}"}
    )
    producer.init_transactions(30)

    producer.begin_transaction()
    for i in range(5):
        producer.produce(topic, key=b"k", value=f"committed-{i}".encode())
    producer.commit_transaction(30)

    producer.begin_transaction()
    for i in range(3):
        producer.produce(topic, key=b"k", value=f"aborted-{i}".encode())
    producer.flush(30)  # the aborted records really reach the log before the abort
    producer.abort_transaction(30)

    committed = _read_all(local_stack, topic, "read_committed", expected=5)
    everything = _read_all(local_stack, topic, "read_uncommitted", expected=8)

    assert committed == [f"committed-{i}".encode() for i in range(5)]
    assert sorted(everything) == sorted(
        [f"committed-{i}".encode() for i in range(5)] + [f"aborted-{i}".encode() for i in range(3)]
    )
