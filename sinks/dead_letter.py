"""Copies of events a sink can never apply, on the ``events-dlq`` topic.

The copy keeps the original key, value and headers, and adds the headers of
the one dead-letter contract (``schemas.dead_letters``: what failed, where the
record came from, and the same under Kafka Connect's ``__connect.errors.*``
names). Records are produced at once (asynchronously) and made durable by
``flush()``, which the runner calls before any offset is committed past them.
"""

from __future__ import annotations

import logging
import threading

from confluent_kafka import KafkaError, Message, Producer

from core.errors import SinkError
from core.settings import Settings
from schemas.dead_letters import dead_letter_headers, headers_of

log = logging.getLogger("cqrs.sinks.dead_letter")
Headers = list[tuple[str, str | bytes | None]]


class DeadLetterPublisher:
    """An idempotent producer of dead letters; not thread-safe (one per runner)."""

    def __init__(self, settings: Settings, topic: str, component: str) -> None:
        self.topic = topic
        self.component = component
        self._producer = Producer(
            {
                **settings.kafka.confluent_config(),
                "enable.idempotence": True,
                "acks": "all",
                "linger.ms": 5,
            }
        )
        # Copies whose delivery failed for good, produced again by the next flush.
        self._failed: list[tuple[bytes | None, bytes | None, Headers, str]] = []
        self._lock = threading.Lock()

    def publish(
        self,
        error: Exception,
        *,
        topic: str,
        partition: int,
        offset: int,
        timestamp_ms: int,
        key: bytes | None,
        value: bytes | None,
        original_headers: Headers,
    ) -> None:
        headers = original_headers + dead_letter_headers(
            error,
            topic=topic,
            partition=partition,
            offset=offset,
            timestamp_ms=timestamp_ms,
            component=self.component,
            component_class="cqrs.sinks.SinkRunner",
        )
        self._producer.produce(
            self.topic, key=key, value=value, headers=headers, on_delivery=self._delivered
        )
        self._producer.poll(0)

    def flush(self, timeout_s: float = 30.0) -> None:
        """Wait until every dead letter is acknowledged; ``SinkError(retryable)`` if not.

        Offsets must never pass a dead letter that is not durable, so a copy whose
        delivery failed is kept and produced again by the next call.
        """
        with self._lock:
            again, self._failed = self._failed, []
        for key, value, headers, _ in again:
            self._producer.produce(
                self.topic, key=key, value=value, headers=headers, on_delivery=self._delivered
            )
        remaining = self._producer.flush(timeout_s)
        if remaining:
            raise SinkError(
                f"{remaining} dead letter(s) for {self.topic} not acknowledged within "
                f"{timeout_s:.0f}s; is Kafka reachable?",
                retryable=True,
            )
        with self._lock:
            failed = list(self._failed)
        if failed:
            raise SinkError(
                f"{len(failed)} dead letter(s) not written to {self.topic} ({failed[0][3]}); "
                "retrying",
                retryable=True,
            )

    def close(self) -> None:
        self._producer.flush(10)

    def _delivered(self, error: KafkaError | None, message: Message) -> None:
        if error is None:
            return
        log.error("dead letter not delivered to %s: %s", self.topic, error.str())
        headers = headers_of(message)
        with self._lock:
            self._failed.append((message.key(), message.value(), headers, error.str()))
