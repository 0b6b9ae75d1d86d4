"""The order-summary sink applying a backlog, against a raw COPY of the same rows.

Run with the local stack up: ``python -m benchmarks.postgres_sink [--events N]
[--rounds R]``. A backlog of N events (default 200,000: orders placed,
confirmed and shipped) is written once to a topic of its own. Each round then:

- **sink**: the real ``order-summary`` sink (runner, Avro decoding, folding,
  version-guarded upserts of order_summary and customer_orders, offsets in the
  same transaction, views published on the projection topic) applies the whole
  backlog into a fresh read-model schema, run as deployed: ``cqrs sink run`` in
  a process of its own (``benchmarks.sink_process``); events per second at
  steady state, from the first batch stored to the last. Also with views not
  published, and as two replicas (two processes, one consumer group);
- **copy**: ``COPY`` of one order_summary row per event (the row as it stands
  after that event, built before timing) into an unindexed table; rows per
  second;
- **decode + copy**: the least any sink of these Avro events must do, in this
  process with the sinks' garbage-collector settings: decode every event, then
  the same COPY. Its ratio to the copy is the most a sink written in Python
  can reach here, whatever its design.

Target: the sink at least 0.5 of the raw COPY. Afterwards the rebuild of the
projection is timed once (events per second replayed into a shadow table set).
"""

from __future__ import annotations

import argparse
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg  # noqa: TID251 - the baseline is a raw COPY through the driver
from confluent_kafka import Producer
from psycopg import sql  # noqa: TID251

from aggregates.read_side.model import orders
from aggregates.read_side.order_summary import row_values
from benchmarks.common import delete_topics, report
from benchmarks.sink_process import sink_processes, steady_rate
from core.settings import Settings, load_settings
from schemas.serde import AvroSerde
from schemas.topic_admin import ensure_topics
from sinks.rebuild import SilentProgress
from sinks.registry import projection
from sinks.service import prepared_serde, settle_garbage_collector

T0 = datetime(2026, 1, 1, tzinfo=UTC)
ADDRESS = {"name": "Ada", "street": "1 Loop", "city": "Paris", "postal_code": "1", "country": "FR"}
STEPS = ("OrderPlaced", "OrderConfirmed", "OrderShipped")


def event(number: int, step: int) -> tuple[str, dict[str, Any]]:
    order_id = f"order-{number:07d}"
    at = T0 + timedelta(seconds=number, milliseconds=step)
    metadata = {
        "event_id": str(uuid.uuid4()),
        "aggregate_type": "Order",
        "aggregate_id": order_id,
        "sequence": step + 1,
        "command_id": str(uuid.uuid4()),
        "correlation_id": order_id,
        "causation_id": str(uuid.uuid4()),
        "occurred_at": at,
        "recorded_at": at,
    }
    if step == 0:
        lines: list[dict[str, Any]] = [
            {"sku": f"sku-{(number + i) % 50}", "quantity": 1 + i, "unit_price_cents": 999}
            for i in range(2)
        ]
        return "OrderPlaced", {
            "metadata": metadata,
            "customer_id": f"customer-{number % 997}",
            "lines": lines,
            "shipping_address": ADDRESS,
            "currency": "EUR",
            "total_cents": sum(x["quantity"] * x["unit_price_cents"] for x in lines),
        }
    if step == 1:
        return "OrderConfirmed", {"metadata": metadata}
    return "OrderShipped", {"metadata": metadata, "carrier": "DHL", "tracking_number": None}


def backlog(count: int) -> list[tuple[str, str, dict[str, Any]]]:
    """(key, record name, value) in log order: each order's events in sequence."""
    events = []
    for number in range(count // len(STEPS) + 1):
        for step in range(len(STEPS)):
            name, value = event(number, step)
            events.append((value["metadata"]["aggregate_id"], name, value))
    return events[:count]


def encode(
    settings: Settings, serde: AvroSerde, events: list[tuple[str, str, dict[str, Any]]]
) -> list[tuple[bytes, bytes]]:
    """(key, Confluent-framed value) of every event, as the command processor writes them."""
    topic = settings.kafka.topic_prefix + "events"
    return [
        (key.encode(), serde.encode(topic, "cqrs.events." + name, value))
        for key, name, value in events
    ]


def produce(settings: Settings, records: list[tuple[bytes, bytes]]) -> None:
    topic = settings.kafka.topic_prefix + "events"
    producer = Producer(
        {
            **settings.kafka.confluent_config(),
            "enable.idempotence": True,
            "partitioner": "murmur2_random",
            "linger.ms": 50,
            "compression.type": "lz4",
            "queue.buffering.max.messages": 1_000_000,
        }
    )
    for key, value in records:
        while True:
            try:
                producer.produce(topic, key=key, value=value)
                break
            except BufferError:
                producer.poll(0.1)
    assert producer.flush(120) == 0, "backlog not fully written"


def rows_per_event(events: list[tuple[str, str, dict[str, Any]]]) -> list[tuple[Any, ...]]:
    """The order_summary row after each event, as the sink computes them."""
    from sinks.base import EventRecord

    state: dict[str, orders.OrderRow] = {}
    rows = []
    for _, name, value in events:
        change = orders.convert(EventRecord("cqrs.events." + name, value))
        assert change is not None
        before = state.get(change.order_id)
        new_rows, patches = orders.fold([change])
        written = orders.apply(before, (new_rows or patches)[0])
        assert written is not None
        state[change.order_id] = written
        rows.append(row_values(written))
    return rows


Timed = tuple[int, float]  # items, seconds


def copy_rows(settings: Settings, rows: list[tuple[Any, ...]]) -> Timed:
    """COPY the rows into a fresh unindexed table; the table's creation is not timed."""
    table = sql.Identifier(f"bench_copy_{uuid.uuid4().hex[:8]}")
    with psycopg.connect(settings.postgres.conninfo()) as conn:
        conn.execute(
            sql.SQL(
                "CREATE TABLE {} (order_id text, customer_id text, status text, lines jsonb,"
                " currency text, total_cents bigint, item_count integer, status_reason text,"
                " placed_at timestamptz, confirmed_at timestamptz, rejected_at timestamptz,"
                " cancelled_at timestamptz, shipped_at timestamptz, updated_at timestamptz,"
                " version bigint)"
            ).format(table)
        )
        conn.commit()
        try:
            started = time.perf_counter()
            with (
                conn.cursor() as cur,
                cur.copy(sql.SQL("COPY {} FROM STDIN").format(table)) as copy,
            ):
                for row in rows:
                    copy.write_row(row)
            conn.commit()
            return len(rows), time.perf_counter() - started
        finally:
            conn.execute(sql.SQL("DROP TABLE {}").format(table))
            conn.commit()


def decode_and_copy(
    settings: Settings, serde: AvroSerde, values: list[bytes], rows: list[tuple[Any, ...]]
) -> Timed:
    """Decode every event, then COPY one row per event: the floor of a Python sink."""
    started = time.perf_counter()
    for value in values:
        serde.decode(value)
    decoding = time.perf_counter() - started
    items, copying = copy_rows(settings, rows)
    return items, decoding + copying


def with_schema(settings: Settings, schema: str, publish: bool = True) -> Settings:
    return settings.model_copy(
        update={
            "sinks": settings.sinks.model_copy(
                update={"postgres_schema": schema, "publish_views": publish}
            )
        }
    )


def stored_total(conn: psycopg.Connection[tuple[object, ...]], settings: Settings) -> int:
    base = settings.sinks.postgres_schema
    row = conn.execute(
        sql.SQL("SELECT coalesce(sum(next_offset), 0) FROM {}").format(
            sql.Identifier(f"{base}__order_summary_1", "projection_offsets")
        )
    ).fetchone()
    return int(str(row[0])) if row else 0


def wait_applied(settings: Settings, count: int, poll_s: float) -> None:
    with psycopg.connect(settings.postgres.conninfo(), autocommit=True) as conn:
        while stored_total(conn, settings) < count:
            time.sleep(poll_s)


def sink_env(settings: Settings, schema: str, publish: bool) -> dict[str, str]:
    """The environment of a sink process writing into ``schema``."""
    return {
        "CQRS_KAFKA__TOPIC_PREFIX": settings.kafka.topic_prefix,
        "CQRS_PROCESSOR__PARTITIONS": str(settings.processor.partitions),
        "CQRS_SINKS__POSTGRES_SCHEMA": schema,
        "CQRS_SINKS__PUBLISH_VIEWS": "true" if publish else "false",
    }


def apply_backlog(settings: Settings, count: int, publish: bool, replicas: int = 1) -> Timed:
    """The order-summary sink from an empty schema to the last event, in its own process(es);
    the rate at steady state, expressed as (items, seconds)."""
    schema = f"bench_{uuid.uuid4().hex[:8]}"
    target = with_schema(settings, schema, publish)
    projection("order-summary", target).migrate(target)
    env = sink_env(settings, schema, publish)
    try:
        with (
            psycopg.connect(settings.postgres.conninfo(), autocommit=True) as conn,
            sink_processes("order-summary", env, replicas),
        ):
            rate = steady_rate(lambda: stored_total(conn, target), count)
        return count, count / rate
    finally:
        drop_schemas(target)


def drop_schemas(settings: Settings) -> None:
    base = settings.sinks.postgres_schema
    with psycopg.connect(settings.postgres.conninfo(), autocommit=True) as conn:
        for (name,) in conn.execute(
            "SELECT nspname FROM pg_namespace WHERE nspname = %s OR nspname LIKE %s",
            (base, base + "\\_\\_%"),
        ).fetchall():
            conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(name)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--partitions", type=int, default=6)
    args = parser.parse_args()

    stack = load_settings()
    run = uuid.uuid4().hex[:8]
    settings = stack.model_copy(
        update={
            "kafka": stack.kafka.model_copy(update={"topic_prefix": f"bench-{run}-"}),
            "processor": stack.processor.model_copy(update={"partitions": args.partitions}),
        }
    )
    ensure_topics(settings)
    try:
        serde = prepared_serde(settings)
        events = backlog(args.events)
        print(f"writing a backlog of {len(events):,} events …", flush=True)
        records = encode(settings, serde, events)
        produce(settings, records)
        rows = rows_per_event(events)
        values = [value for _, value in records]
        settle_garbage_collector()  # as in the sink processes: the backlog out of its sight

        cases: dict[str, Callable[[], Timed]] = {
            "sink (publishing views)": lambda: apply_backlog(settings, len(events), True),
            "sink (tables only)": lambda: apply_backlog(settings, len(events), False),
            "sink, 2 replicas": lambda: apply_backlog(settings, len(events), True, replicas=2),
            "raw COPY": lambda: copy_rows(settings, rows),
            "decode + COPY": lambda: decode_and_copy(settings, serde, values, rows),
        }
        rates: dict[str, list[float]] = {name: [] for name in cases}
        for number in range(1, args.rounds + 1):
            for name, case in cases.items():
                items, seconds = case()
                rates[name].append(items / seconds)
            summary = ", ".join(f"{name} {values[-1]:,.0f}/s" for name, values in rates.items())
            print(f"round {number}/{args.rounds}: {summary}", flush=True)

        rebuild_rate = measure_rebuild(settings, serde, len(events))
        report(
            "postgres_sink",
            rates,
            {
                "sink / raw COPY": ("sink (publishing views)", "raw COPY"),
                "tables only / raw COPY": ("sink (tables only)", "raw COPY"),
                "2 replicas / raw COPY": ("sink, 2 replicas", "raw COPY"),
                "decode + COPY / raw COPY": ("decode + COPY", "raw COPY"),
                "sink / decode + COPY": ("sink (publishing views)", "decode + COPY"),
            },
            {
                "events": len(events),
                "partitions": args.partitions,
                "rebuild_events_per_second": rebuild_rate,
            },
        )
        print(f"{'rebuild (events/s)':<28}{rebuild_rate:>14,.0f}")
    finally:
        delete_topics(settings)  # also when interrupted: benchmark topics fill the broker's disk


def measure_rebuild(settings: Settings, serde: AvroSerde, count: int) -> float:
    """Apply the backlog live once, then rebuild it side by side; events per second replayed."""
    schema = f"bench_{uuid.uuid4().hex[:8]}"
    target = with_schema(settings, schema, publish=False)
    entry = projection("order-summary", target)
    entry.migrate(target)
    with sink_processes("order-summary", sink_env(settings, schema, publish=False)):
        wait_applied(target, count, 0.2)
    try:
        result = entry.rebuild(target, serde, SilentProgress())
        return result.rate
    finally:
        drop_schemas(target)


if __name__ == "__main__":
    main()
