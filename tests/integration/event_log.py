"""Writing events the way the command processor does, for read-side tests and benchmarks.

``EventLog`` produces Confluent-framed Avro events (``AvroSerde``) keyed by
aggregate id with Kafka's default partitioner, inside Kafka transactions, with
gap-free ``metadata.sequence`` per aggregate — what sinks consume in production.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any

from confluent_kafka import Producer

from core.settings import Settings
from schemas.serde import AvroSerde

EVENTS = "cqrs.events."
ORDER, ITEM = "Order", "InventoryItem"
T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
ADDRESS = {
    "name": "Ada",
    "street": "1 Loop",
    "city": "Paris",
    "postal_code": "75001",
    "country": "FR",
}


def line(sku: str, quantity: int, unit_price_cents: int) -> dict[str, Any]:
    return {"sku": sku, "quantity": quantity, "unit_price_cents": unit_price_cents}


class EventLog:
    """Appends events to ``<prefix>events``; ``commit()`` writes them in one transaction."""

    def __init__(self, settings: Settings, serde: AvroSerde) -> None:
        self.topic = settings.kafka.topic_prefix + "events"
        self._serde = serde
        self._producer = Producer(
            {
                **settings.kafka.confluent_config(),
                "transactional.id": f"event-log-{uuid.uuid4().hex}",
                "partitioner": "murmur2_random",
                "linger.ms": 20,
                "batch.num.messages": 10000,
                "queue.buffering.max.messages": 500000,
            }
        )
        self._producer.init_transactions(30)
        self._versions: dict[str, int] = defaultdict(int)
        self._pending: list[tuple[bytes, bytes]] = []
        self.clock = T0

    def event(
        self,
        aggregate_type: str,
        aggregate_id: str,
        name: str,
        fields: dict[str, Any],
        *,
        at: datetime | None = None,
    ) -> dict[str, Any]:
        """Queue one event (next sequence of its aggregate); returns its value."""
        self._versions[aggregate_id] += 1
        occurred = at or self.tick()
        value = {
            "metadata": {
                "event_id": str(uuid.uuid4()),
                "aggregate_type": aggregate_type,
                "aggregate_id": aggregate_id,
                "sequence": self._versions[aggregate_id],
                "command_id": str(uuid.uuid4()),
                "correlation_id": str(uuid.uuid4()),
                "causation_id": str(uuid.uuid4()),
                "occurred_at": occurred,
                "recorded_at": occurred,
            },
            **fields,
        }
        encoded = self._serde.encode(self.topic, EVENTS + name, value)
        self._pending.append((aggregate_id.encode(), encoded))
        return value

    def raw(self, key: str, value: bytes) -> None:
        """Queue bytes as they are (poison for the sinks)."""
        self._pending.append((key.encode(), value))

    def cut_last(self) -> None:
        """Cut the last queued event short after its header and first body byte: poison
        whose schema id still names its record type."""
        key, value = self._pending[-1]
        self._pending[-1] = (key, value[:6])

    def tick(self, seconds: float = 1.0) -> datetime:
        self.clock += timedelta(seconds=seconds)
        return self.clock

    def version(self, aggregate_id: str) -> int:
        return self._versions[aggregate_id]

    # -- the domain's events ------------------------------------------------------------

    def placed(
        self,
        order_id: str,
        customer_id: str,
        lines: list[dict[str, Any]],
        *,
        at: datetime | None = None,
        currency: str = "EUR",
    ) -> dict[str, Any]:
        total = sum(item["quantity"] * item["unit_price_cents"] for item in lines)
        fields = {
            "customer_id": customer_id,
            "lines": lines,
            "shipping_address": ADDRESS,
            "currency": currency,
            "total_cents": total,
        }
        return self.event(ORDER, order_id, "OrderPlaced", fields, at=at)

    def order(self, order_id: str, event: str, at: datetime | None = None, **fields: Any) -> None:
        self.event(ORDER, order_id, event, fields, at=at)

    def item(self, sku: str, event: str, at: datetime | None = None, **fields: Any) -> None:
        self.event(ITEM, sku, event, fields, at=at)

    # -- writing ------------------------------------------------------------------------

    def commit(self) -> int:
        """Write everything queued in one transaction; returns how many records."""
        pending, self._pending = self._pending, []
        if not pending:
            return 0
        self._producer.begin_transaction()
        for key, value in pending:
            while True:
                try:
                    self._producer.produce(self.topic, key=key, value=value)
                    break
                except BufferError:
                    self._producer.poll(0.1)
        self._producer.commit_transaction(60)
        return len(pending)

    def close(self) -> None:
        self._producer.flush(10)
