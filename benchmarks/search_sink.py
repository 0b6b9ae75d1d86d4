"""Search sink throughput: a backlog of order events into the index, against plain bulk indexing.

Run with the local stack up:
``python -m benchmarks.search_sink [--events N] [--rounds R] [--spread]``.

A backlog of ``--events`` order events (default 200,000; three per order:
placed, confirmed soon after as the saga does, shipped or cancelled a third
of the log later; ``--spread`` puts the confirmations far away too, the worst
case for the sink) is written to a private ``events`` topic, Avro-encoded, in
Kafka transactions. Each round then measures, one after the other on fresh
indexes:

- **sink**: the live search sink (Kafka consumption, Avro decoding, folding,
  bulk writes with external versions, offset commits), run as deployed:
  ``cqrs sink run search-orders`` in a process of its own
  (``benchmarks.sink_process``), at steady state, from its first commit until
  its consumer group has committed the end of every partition; then the same
  with two replicas (two processes, one group);
- **bulk** and **parallel_bulk**: ``opensearchpy.helpers.bulk`` and
  ``helpers.parallel_bulk`` (2 threads) indexing the same documents, one per
  event (the order's state after that event, with its external version), with
  the same mapping, settings and chunk size, straight from memory.

Reported: events per second of each, the sink's ratio to the faster plain
bulk (target at least 0.7), and the rate of a full rebuild (a new index
generation from the whole log, then the alias switch).
"""

from __future__ import annotations

import argparse
import statistics
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient
from opensearchpy import OpenSearch, helpers

from aggregates.read_side.search_orders import (
    ORDER_MAPPINGS,
    OrderDocument,
    OrdersSearch,
    apply,
    order_change,
)
from benchmarks.common import delete_topics, report
from benchmarks.sink_process import sink_processes, steady_rate
from core.settings import Settings, load_settings
from cqrs.lag import ConsumerGroup, LagMonitor
from schemas.catalog import SchemaCatalog
from schemas.registry_client import RegistryClient
from schemas.serde import AvroSerde
from schemas.topic_admin import ensure_topics
from sinks.base import EventRecord
from sinks.rebuild import SilentProgress
from sinks.runner import sink_group
from sinks.search.mapping import index_settings
from sinks.search.rebuild import rebuild_search_index

PROJECTION = OrdersSearch.name

T0 = datetime(2026, 1, 1, tzinfo=UTC)
ADDRESS = {
    "name": "Grace Hopper",
    "street": "1 Harvard Yard",
    "city": "Cambridge",
    "postal_code": "02138",
    "country": "US",
}
STATUS_EVENTS = ("OrderConfirmed", "OrderShipped")
CHUNK = 2000  # documents per bulk request, as the sink's bulk_max_actions


def order_events(orders: int, *, spread: bool) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """(order id, event name, fields) of ``orders`` orders, three events each.

    As the saga produces them (default), each order is confirmed within a
    hundred records of its placement, and shipped (every tenth cancelled) in a
    later wave, a third of the log away. With ``spread``, confirmations also
    come in a wave of their own: the sink then never meets two events of one
    order in a batch and every event costs a document write (the worst case).
    """
    block = orders if spread else 50
    for first in range(0, orders, block):
        numbers = range(first, min(first + block, orders))
        for number in numbers:
            yield f"order-{number}", "OrderPlaced", _placement(number)
        for number in numbers:
            yield f"order-{number}", "OrderConfirmed", {}
    for number in range(orders):
        if number % 10 == 0:
            yield f"order-{number}", "OrderCancelled", {"reason": "customer request"}
        else:
            yield f"order-{number}", "OrderShipped", {"carrier": "UPS", "tracking_number": None}


def _placement(number: int) -> dict[str, Any]:
    lines: list[dict[str, Any]] = [
        {"sku": f"sku-{(number + i) % 500}", "quantity": 1 + i, "unit_price_cents": 250 + i}
        for i in range(1 + number % 3)
    ]
    return {
        "customer_id": f"customer-{number % 5000}",
        "lines": lines,
        "shipping_address": ADDRESS,
        "currency": "EUR",
        "total_cents": sum(x["quantity"] * x["unit_price_cents"] for x in lines),
    }


def write_backlog(
    settings: Settings, serde: AvroSerde, events: int, *, spread: bool
) -> list[EventRecord]:
    """Produce the backlog in transactions; returns the events as the sink will decode them."""
    topic = settings.kafka.topic_prefix + "events"
    producer = Producer(
        {
            **settings.kafka.confluent_config(),
            "transactional.id": f"bench-search-{uuid.uuid4().hex}",
            "partitioner": "murmur2_random",
            "linger.ms": 20,
            "batch.num.messages": 10000,
            "compression.type": "lz4",
            "queue.buffering.max.messages": 500000,
        }
    )
    producer.init_transactions(30)
    versions: dict[str, int] = {}
    records: list[EventRecord] = []
    producer.begin_transaction()
    for count, (order_id, name, fields) in enumerate(
        order_events(events // 3, spread=spread), start=1
    ):
        versions[order_id] = versions.get(order_id, 0) + 1
        at = T0 + timedelta(seconds=count)
        value = {
            "metadata": {
                "event_id": str(uuid.uuid4()),
                "aggregate_type": "Order",
                "aggregate_id": order_id,
                "sequence": versions[order_id],
                "command_id": str(uuid.uuid4()),
                "correlation_id": order_id,
                "causation_id": str(uuid.uuid4()),
                "occurred_at": at,
                "recorded_at": at,
            },
            **fields,
        }
        encoded = serde.encode(topic, "cqrs.events." + name, value)
        records.append(EventRecord("cqrs.events." + name, value))
        while True:
            try:
                producer.produce(topic, key=order_id.encode(), value=encoded)
                break
            except BufferError:
                producer.poll(0.1)
        if count % 10_000 == 0:
            producer.commit_transaction(60)
            producer.begin_transaction()
    producer.commit_transaction(60)
    return records


def per_event_documents(records: list[EventRecord]) -> list[OrderDocument]:
    """The order's document after each event: what a naive sink would write per event."""
    current: dict[str, OrderDocument] = {}
    documents = []
    for record in records:
        change = order_change(record)
        assert change is not None
        document = apply(current.get(change.order_id), change)
        current[change.order_id] = document
        documents.append(document)
    return documents


def plain_bulk(
    client: OpenSearch, settings: Settings, index: str, documents: list[OrderDocument], threads: int
) -> float:
    """Events per second of indexing ``documents`` with the plain helpers (1 = helpers.bulk)."""
    client.indices.create(
        index=index, body={"settings": index_settings(settings.search), "mappings": ORDER_MAPPINGS}
    )
    actions = (
        {
            "_index": index,
            "_id": document.order_id,
            "_version": document.version,
            "_version_type": "external",
            "_source": document.to_source(),
        }
        for document in documents
    )
    started = time.perf_counter()
    if threads == 1:
        helpers.bulk(client, actions, chunk_size=CHUNK, raise_on_error=False, stats_only=True)
    else:
        for _ in helpers.parallel_bulk(
            client, actions, thread_count=threads, chunk_size=CHUNK, raise_on_error=False
        ):
            pass
    elapsed = time.perf_counter() - started
    client.indices.delete(index=index)
    return len(documents) / elapsed


def live_sink(settings: Settings, events: int, replicas: int = 1) -> float:
    """Events per second of the sink run as deployed (``benchmarks.sink_process``), at
    steady state, until its group has committed the end of every partition."""
    topic = settings.kafka.topic_prefix + "events"
    partitions = [TopicPartition(topic, n) for n in range(settings.processor.partitions)]
    reader = Consumer(
        {
            **settings.kafka.confluent_config(),
            "group.id": sink_group(settings, PROJECTION),
            "enable.auto.commit": False,
        }
    )
    group = ConsumerGroup(sink_group(settings, PROJECTION), (topic,))
    monitor = LagMonitor(settings, exact_limit=0)
    env = {
        "CQRS_KAFKA__TOPIC_PREFIX": settings.kafka.topic_prefix,
        "CQRS_PROCESSOR__PARTITIONS": str(settings.processor.partitions),
        "CQRS_SEARCH__INDEX_PREFIX": settings.search.index_prefix,
        "CQRS_SEARCH__REPLICAS": str(settings.search.replicas),
    }
    try:
        # Offsets, not events: transaction markers take offsets too. The two rates differ
        # by the ratio of events to offsets, applied at the end.
        end = sum(reader.get_watermark_offsets(tp, timeout=15)[1] for tp in partitions)

        def committed() -> int:
            found = reader.committed(partitions, timeout=15)
            return sum(max(tp.offset, 0) for tp in found)

        def caught_up(_: int) -> bool:  # a trailing transaction marker is no lag
            lags = monitor.measure([group])
            return bool(lags) and all(lag.records == 0 for lag in lags)

        with sink_processes(PROJECTION, env, replicas):
            offsets_per_second = steady_rate(committed, end, caught_up, poll_s=0.25)
    finally:
        reader.close()
        monitor.close()
    return offsets_per_second * events / end


def round_settings(base: Settings, round_number: int, label: str = "") -> Settings:
    """Same topic and group, a fresh index per run (the group is deleted between runs)."""
    index_prefix = f"{base.search.index_prefix}-r{round_number}{label}"
    return base.model_copy(
        update={"search": base.search.model_copy(update={"index_prefix": index_prefix})}
    )


def forget_group(settings: Settings) -> None:
    admin = AdminClient(settings.kafka.confluent_config())
    for future in admin.delete_consumer_groups([sink_group(settings, PROJECTION)]).values():
        future.result(30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument(
        "--spread",
        action="store_true",
        help="worst case: no two events of an order in one batch (no coalescing)",
    )
    arguments = parser.parse_args()
    stack = load_settings()
    run = uuid.uuid4().hex[:6]
    settings = stack.model_copy(
        update={
            "kafka": stack.kafka.model_copy(update={"topic_prefix": f"bench{run}-"}),
            "search": stack.search.model_copy(
                update={"index_prefix": f"bench{run}", "replicas": 0}
            ),
            "processor": stack.processor.model_copy(update={"partitions": 6}),
        }
    )
    ensure_topics(settings)
    serde = AvroSerde(RegistryClient(settings.registry), SchemaCatalog.for_settings(settings))
    client = OpenSearch(hosts=[settings.search.url], timeout=120)
    try:
        started = time.perf_counter()
        records = write_backlog(settings, serde, arguments.events, spread=arguments.spread)
        print(
            f"backlog: {len(records):,} events in {time.perf_counter() - started:.1f}s", flush=True
        )
        documents = per_event_documents(records)
        rates: dict[str, list[float]] = {
            "sink": [],
            "sink, 2 replicas": [],
            "bulk": [],
            "parallel_bulk": [],
        }
        for number in range(1, arguments.rounds + 1):
            current = round_settings(settings, number)
            rates["bulk"].append(
                plain_bulk(client, current, f"bench{run}-bulk-{number}", documents, 1)
            )
            rates["parallel_bulk"].append(
                plain_bulk(client, current, f"bench{run}-pbulk-{number}", documents, 2)
            )
            rates["sink"].append(live_sink(current, len(records)))
            forget_group(current)
            replicated = round_settings(settings, number, "x2")
            rates["sink, 2 replicas"].append(live_sink(replicated, len(records), replicas=2))
            forget_group(replicated)
            summary = ", ".join(f"{k} {v[-1]:,.0f}/s" for k, v in rates.items())
            print(f"round {number}/{arguments.rounds}: {summary}", flush=True)
        rebuilt = rebuild_search_index(
            round_settings(settings, 1), OrdersSearch(), serde, SilentProgress()
        )
        print(f"rebuild: {rebuilt.replayed:,} events in {rebuilt.seconds:.1f}s", flush=True)
        best_plain = (
            "bulk"
            if statistics.median(rates["bulk"]) >= statistics.median(rates["parallel_bulk"])
            else "parallel_bulk"
        )
        report(
            "search_sink_spread" if arguments.spread else "search_sink",
            rates,
            {
                "sink / faster plain bulk": ("sink", best_plain),
                "sink / helpers.bulk": ("sink", "bulk"),
                "2 replicas / faster plain bulk": ("sink, 2 replicas", best_plain),
            },
            {
                "events": len(records),
                "scenario": "spread" if arguments.spread else "saga",
                "orders": len(records) // 3,
                "rebuild_events_per_second": rebuilt.rate,
                "rebuild_seconds": rebuilt.seconds,
                "target_ratio": 0.7,
            },
        )
    finally:
        for name in client.indices.get(index=f"bench{run}*", params={"expand_wildcards": "all"}):
            client.indices.delete(index=name)
        client.close()
        delete_topics(settings)


if __name__ == "__main__":
    main()
