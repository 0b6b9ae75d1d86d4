"""Publishing views on the compacted projection topics (Avro through the registry).

Views are produced after the store's transaction committed, from the rows it
returned, so each carries the full view and its version. The producer is
idempotent with ``acks=all`` and Kafka's default (murmur2) partitioner, so a
view lands where any Java or librdkafka client with the default would put its
key. ``publish`` returns once every record is acknowledged.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence

from confluent_kafka import KafkaError, Message, Producer

from core.errors import SerializationError, SinkError
from core.settings import Settings
from schemas.serde import AvroSerde
from sinks.postgres.projection import View

log = logging.getLogger("cqrs.sinks.publication")


class ViewPublisher:
    def __init__(self, settings: Settings, serde: AvroSerde) -> None:
        self._prefix = settings.kafka.topic_prefix
        self._serde = serde
        self._producer = Producer(
            {
                **settings.kafka.confluent_config(),
                "enable.idempotence": True,
                "acks": "all",
                "linger.ms": 5,
                "partitioner": "murmur2_random",
                "compression.type": "lz4",
            }
        )
        self._failures: list[str] = []
        self._lock = threading.Lock()

    def publish(self, topic: str, record: str, views: Sequence[View]) -> None:
        """Produce ``views`` on ``<prefix><topic>``; ``SinkError(retryable)`` unless all landed."""
        if not views:
            return
        name = self._prefix + topic
        for view in views:
            try:
                value = self._serde.encode(name, record, view.value)
            except SerializationError as error:
                raise SinkError(
                    f"view {view.key} does not fit {record}: {error}", retryable=False
                ) from error
            self._produce(name, view.key.encode(), value)
        remaining = self._producer.flush(30)
        with self._lock:
            failures, self._failures = self._failures, []
        if remaining or failures:
            reason = failures[0] if failures else f"{remaining} not acknowledged within 30s"
            raise SinkError(f"publishing views on {name} failed: {reason}", retryable=True)

    def close(self) -> None:
        self._producer.flush(10)

    def _produce(self, topic: str, key: bytes, value: bytes) -> None:
        while True:
            try:
                self._producer.produce(topic, key=key, value=value, on_delivery=self._delivered)
                return
            except BufferError:
                self._producer.poll(0.1)  # the local queue is full: let deliveries drain it

    def _delivered(self, error: KafkaError | None, _message: Message) -> None:
        if error is not None:
            with self._lock:
                self._failures.append(error.str())
