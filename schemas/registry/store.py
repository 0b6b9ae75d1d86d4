"""The registry's durable log: a single-partition compacted Kafka topic.

At start-up the whole topic is replayed into a ``RegistryState``; afterwards
every change is produced (idempotent producer, acks=all), flushed, and only
then applied, so what the API answers is always what a restart would rebuild.
Writes are serialised by a lock: one registry process writes a given topic.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic

from core.errors import ConfigurationError, StackError
from core.kafka_logs import served
from core.settings import Settings
from schemas.registry.state import LogRecord, RegistryState

T = TypeVar("T")
TOPIC_CONFIG = {"cleanup.policy": "compact", "min.compaction.lag.ms": "0"}


class KafkaSchemaLog:
    def __init__(self, settings: Settings) -> None:
        self._kafka = settings.kafka.confluent_config()
        self._topic = settings.registry.schemas_topic
        self._may_create_topic = settings.kafka.topic_creation == "create"
        self._lock = threading.Lock()
        self.state = RegistryState()
        self._producer: Producer | None = None

    def open(self) -> None:
        """Create the topic if needed and replay it; then accept writes."""
        self._ensure_topic()
        self._replay()
        self._producer = Producer(
            {**self._kafka, "enable.idempotence": True, "acks": "all", "linger.ms": 0}
        )

    def close(self) -> None:
        if self._producer is not None:
            self._producer.flush(10)

    def read(self, query: Callable[[RegistryState], T]) -> T:
        with self._lock:
            return query(self.state)

    def write(self, decide: Callable[[RegistryState], tuple[T, list[LogRecord]]]) -> T:
        """Decide against the current state, persist the records, then apply them."""
        with self._lock:
            answer, records = decide(self.state)
            for key, value in records:
                self._append(key, value)
            for key, value in records:
                self.state.apply(key, value)
            return answer

    def _append(self, key: dict[str, Any], value: dict[str, Any] | None) -> None:
        assert self._producer is not None, "open() first"
        failures: list[KafkaError] = []

        def on_delivery(error: KafkaError | None, _message: Message) -> None:
            if error is not None:
                failures.append(error)

        self._producer.produce(
            self._topic,
            key=_dump(key),
            value=None if value is None else _dump(value),
            on_delivery=on_delivery,
        )
        remaining = self._producer.flush(30)
        if failures or remaining:
            reason = failures[0].str() if failures else "timed out"
            raise StackError(f"could not persist to schema topic {self._topic}: {reason}")

    def _ensure_topic(self) -> None:
        admin = served(AdminClient(self._kafka))
        if self._topic in admin.list_topics(timeout=10).topics:
            return
        if not self._may_create_topic:
            raise ConfigurationError(
                f"kafka.topic_creation is 'verify' but the schema topic {self._topic} is missing; "
                "create it (1 partition, cleanup.policy=compact) or set "
                "CQRS_KAFKA__TOPIC_CREATION=create"
            )
        future = admin.create_topics([NewTopic(self._topic, 1, 1, config=TOPIC_CONFIG)])
        try:
            future[self._topic].result(timeout=30)
        except KafkaException as error:
            if error.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise

    def _replay(self) -> None:
        consumer = Consumer(
            {
                **self._kafka,
                "group.id": "cqrs-registry-replay",
                "enable.auto.commit": False,
                "isolation.level": "read_committed",
            }
        )
        try:
            low, high = self._watermarks(consumer)
            if high <= low:
                return
            consumer.assign([TopicPartition(self._topic, 0, low)])
            position = low
            while position < high:
                message = consumer.poll(5)
                if message is None:
                    continue
                if message.error():
                    raise KafkaException(message.error())
                key, value = message.key(), message.value()
                if key is not None:
                    self.state.apply(json.loads(key), None if value is None else json.loads(value))
                position = (message.offset() or 0) + 1
        finally:
            consumer.close()

    def _watermarks(self, consumer: Consumer) -> tuple[int, int]:
        # A broker that has just restarted answers NOT_LEADER until its partitions have
        # leaders again; that is a wait, not a failure.
        deadline = time.monotonic() + 60
        while True:
            try:
                low, high = consumer.get_watermark_offsets(
                    TopicPartition(self._topic, 0), timeout=10
                )
                return low, high
            except KafkaException as error:
                if not broker_starting(error.args[0]) or time.monotonic() > deadline:
                    raise StackError(
                        f"could not read the schema topic {self._topic}: {error.args[0].str()}; "
                        "check that the Kafka broker is up and the topic has a leader"
                    ) from error
                time.sleep(0.5)


# librdkafka leaves these unmarked as retriable when a watermark request meets them,
# yet a broker restarted on its old data answers so until its partitions have leaders.
_STARTING_BROKER_ERRORS = frozenset(
    {
        KafkaError.NOT_LEADER_FOR_PARTITION,
        KafkaError.LEADER_NOT_AVAILABLE,
        KafkaError._TRANSPORT,
        KafkaError._TIMED_OUT,
    }
)


def broker_starting(error: KafkaError) -> bool:
    """Whether ``error`` only says the broker is not ready yet: worth waiting out."""
    return bool(error.retriable()) or error.code() in _STARTING_BROKER_ERRORS


def _dump(document: dict[str, Any]) -> bytes:
    return json.dumps(document, separators=(",", ":")).encode()
