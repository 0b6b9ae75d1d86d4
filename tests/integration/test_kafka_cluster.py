"""Kafka faults on private clusters: a killed leader is replaced, a killed node comes back.

Each test runs its own cluster (``tests/integration/kafka_cluster.py``) from the
local stack's code, so SIGKILLing a node never disturbs the shared stack.
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient
from confluent_kafka.admin._config import ConfigResource
from confluent_kafka.admin._resource import ResourceType
from confluent_kafka.cimpl import NewTopic

from tests.integration.kafka_cluster import PrivateKafka, private_kafka

PARTITIONS = 3


def _create_topic(cluster: PrivateKafka, replicas: int, config: dict[str, str]) -> str:
    topic = f"faults-{uuid.uuid4().hex[:8]}"
    admin = AdminClient(cluster.config())
    admin.create_topics([NewTopic(topic, PARTITIONS, replicas, config=config)])[topic].result(30)
    cluster.wait_until(
        lambda: all(len(cluster.isr_of(topic, p)) == replicas for p in range(PARTITIONS)),
        f"every replica of {topic} in sync",
    )
    return topic


def _topic_config(cluster: PrivateKafka, topic: str, name: str) -> str:
    """One config value of the topic, from whichever node answers (once it knows the topic)."""
    admin = AdminClient(cluster.config())
    resource = ConfigResource(ResourceType.TOPIC, topic)
    deadline = time.monotonic() + 15
    while True:
        try:
            return str(admin.describe_configs([resource])[resource].result(timeout=10)[name].value)
        except KafkaException as error:
            # A node can learn of a new topic a moment after the one that answered metadata.
            unknown = error.args[0].code() == KafkaError.UNKNOWN_TOPIC_OR_PART
            if not unknown or time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def _transactional_producer(cluster: PrivateKafka) -> Producer:
    producer = Producer(
        {**cluster.config(), "transactional.id": f"faults-{uuid.uuid4().hex}", "linger.ms": 5}
    )
    producer.init_transactions(60)
    return producer


def _produce(producer: Producer, topic: str, values: list[bytes]) -> None:
    producer.begin_transaction()
    for index, value in enumerate(values):
        producer.produce(topic, value=value, partition=index % PARTITIONS)


def _commit(producer: Producer, timeout_s: float = 60.0) -> int:
    """Commit, retrying what librdkafka calls retriable; the attempts it took."""
    deadline = time.monotonic() + timeout_s
    attempts = 0
    while True:
        attempts += 1
        try:
            producer.commit_transaction(max(deadline - time.monotonic(), 1.0))
            return attempts
        except KafkaException as error:
            if not error.args[0].retriable() or time.monotonic() > deadline:
                raise


def _read_committed(cluster: PrivateKafka, topic: str, expected: int) -> list[bytes]:
    consumer = Consumer(
        {
            **cluster.config(),
            "group.id": f"faults-{uuid.uuid4().hex}",
            "enable.auto.commit": False,
            "isolation.level": "read_committed",
        }
    )
    consumer.assign([TopicPartition(topic, p, 0) for p in range(PARTITIONS)])
    values: list[bytes] = []
    deadline = time.monotonic() + 30
    try:
        # Until the expected count arrives, then a little longer to catch duplicates.
        quiet_until = None
        while time.monotonic() < deadline and (
            quiet_until is None or time.monotonic() < quiet_until
        ):
            message = consumer.poll(0.5)
            if message is not None and message.error() is None and message.value() is not None:
                values.append(message.value())  # type: ignore[arg-type]
            if quiet_until is None and len(values) >= expected:
                quiet_until = time.monotonic() + 2
    finally:
        consumer.close()
    return values


def _batch(label: str, count: int = 30) -> list[bytes]:
    return [f"{label}-{index}".encode() for index in range(count)]


def test_a_killed_leader_is_replaced_and_transactions_go_on(tmp_path: Path) -> None:
    with private_kafka(tmp_path, brokers=3) as cluster:
        assert cluster.node_ids == [1, 2, 3]
        assert len(cluster.bootstrap.split(",")) == 3
        topic = _create_topic(cluster, 3, {"min.insync.replicas": "2"})
        assert _topic_config(cluster, topic, "min.insync.replicas") == "2"
        producer = _transactional_producer(cluster)
        _produce(producer, topic, _batch("before"))
        _commit(producer)

        victim = cluster.leader_of(topic, 0)
        cluster.kill(victim)
        took = cluster.wait_until(
            lambda: cluster.leader_of(topic, 0) not in (victim, -1), "a new leader of partition 0"
        )
        cluster.wait_until(
            lambda: victim not in cluster.isr_of(topic, 0), "the killed node out of the ISR"
        )
        assert took < 30
        assert cluster.leader_of(topic, 0) in set(cluster.node_ids) - {victim}

        # Two of three in sync satisfy min.insync.replicas=2: transactions go on.
        _produce(producer, topic, _batch("one-down"))
        _commit(producer)

        cluster.start(victim)
        cluster.wait_until(
            lambda: all(victim in cluster.isr_of(topic, p) for p in range(PARTITIONS)),
            "the restarted node back in every ISR",
        )
        _produce(producer, topic, _batch("rejoined"))
        _commit(producer)

        expected = _batch("before") + _batch("one-down") + _batch("rejoined")
        assert sorted(_read_committed(cluster, topic, len(expected))) == sorted(expected)


def test_a_transactional_producer_survives_a_killed_single_node(tmp_path: Path) -> None:
    with private_kafka(tmp_path, brokers=1) as cluster:
        assert cluster.node_ids == [1]
        topic = _create_topic(cluster, 1, {})
        producer = _transactional_producer(cluster)
        _produce(producer, topic, _batch("before"))
        _commit(producer)

        cluster.kill(1)
        assert cluster.pid(1) is None
        # A transaction begun while the only broker is down completes once it is back.
        _produce(producer, topic, _batch("while-down"))
        cluster.start(1)
        _commit(producer)
        _produce(producer, topic, _batch("after"))
        _commit(producer)

        expected = _batch("before") + _batch("while-down") + _batch("after")
        assert sorted(_read_committed(cluster, topic, len(expected))) == sorted(expected)
