"""Serde throughput: our Confluent-framed encode/decode against plain fastavro, same records.

Run with the local stack up (the serde registers its schema once):
``python -m benchmarks.serde [--records N] [--rounds R]``. Target: at least 0.8 of plain.
"""

from __future__ import annotations

import argparse
import io
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import fastavro

from benchmarks.common import interleaved, report
from core.settings import load_settings
from schemas.catalog import SchemaCatalog
from schemas.registry_client import RegistryClient
from schemas.serde import AvroSerde

RECORD = "cqrs.events.OrderPlaced"


def typical_event(number: int) -> dict[str, Any]:
    at = datetime(2026, 1, 1, tzinfo=UTC) + timedelta(seconds=number)
    return {
        "metadata": {
            "event_id": str(uuid.uuid4()),
            "aggregate_type": "Order",
            "aggregate_id": f"order-{number}",
            "sequence": 1,
            "command_id": str(uuid.uuid4()),
            "correlation_id": str(uuid.uuid4()),
            "causation_id": str(uuid.uuid4()),
            "occurred_at": at,
            "recorded_at": at,
        },
        "customer_id": f"customer-{number % 997}",
        "lines": [
            {"sku": f"sku-{(number + i) % 50}", "quantity": 1 + i, "unit_price_cents": 999}
            for i in range(3)
        ],
        "shipping_address": {
            "name": "Ada Lovelace",
            "street": "12 St James's Square",
            "city": "London",
            "postal_code": "SW1Y 4JH",
            "country": "GB",
        },
        "currency": "EUR",
        "total_cents": 5994,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--records", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()

    settings = load_settings()
    catalog = SchemaCatalog.for_settings(settings)
    serde = AvroSerde(RegistryClient(settings.registry), catalog)
    parsed = catalog.parsed(RECORD)
    topic = f"bench-{uuid.uuid4().hex[:8]}"
    events = [typical_event(n) for n in range(args.records)]
    ours_encoded = [serde.encode(topic, RECORD, e) for e in events]  # also warms the caches
    plain_encoded = [message[5:] for message in ours_encoded]
    serde.decode(ours_encoded[0])

    def plain_encode() -> int:
        for event in events:
            buffer = io.BytesIO()
            fastavro.schemaless_writer(buffer, parsed, event)
            buffer.getvalue()
        return len(events)

    def ours_encode() -> int:
        for event in events:
            serde.encode(topic, RECORD, event)
        return len(events)

    def plain_decode() -> int:
        for body in plain_encoded:
            fastavro.schemaless_reader(io.BytesIO(body), parsed, None)
        return len(plain_encoded)

    def ours_decode() -> int:
        for message in ours_encoded:
            serde.decode(message)
        return len(ours_encoded)

    rates = interleaved(
        {
            "fastavro encode": plain_encode,
            "serde encode": ours_encode,
            "fastavro decode": plain_decode,
            "serde decode": ours_decode,
        },
        args.rounds,
    )
    report(
        "serde",
        rates,
        {
            "encode ratio (serde/plain)": ("serde encode", "fastavro encode"),
            "decode ratio (serde/plain)": ("serde decode", "fastavro decode"),
        },
        {"records": args.records, "record_type": RECORD, "target_ratio": 0.8},
    )


if __name__ == "__main__":
    main()
