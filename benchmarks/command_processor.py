"""Write-side benchmark: the command processor against a raw passthrough, and its latency.

(a) Throughput: a backlog of commands is drained by one ``cqrs worker`` with
    exactly-once on, with it off (at-least-once), and by a raw confluent-kafka
    consume→produce passthrough of the same records on the same broker —
    interleaved rounds, each on fresh topics. Figures are ratios to the raw rate.
    One more exactly-once case sends the backlog to 2 aggregates instead of 200,
    so their histories outgrow the idempotency window.
(b) Latency: commands offered at fixed rates (default 500/s, 300/s and 150/s); command→result
    p50/p99 as seen by a read_committed client, exactly-once on and off.

    python -m benchmarks.command_processor [--commands 5000] [--rounds 3] [--rate 500 300 150]

Needs the local stack (``cqrs stack up``). Results: benchmarks/results/command_processor.json.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

from confluent_kafka import Consumer, Producer

from benchmarks.common import delete_topics, report
from cqrs.children import WORKER_READY, cqrs_process
from cqrs.settings import Settings, load_settings
from processors.topic_admin import ensure_topics
from schemas.catalog import SchemaCatalog
from schemas.registry_client import RegistryClient
from schemas.serde import AvroSerde
from schemas.tooling import register_all

SKUS = 200
BUSY_SKUS = 2  # few aggregates with long histories: their idempotency windows fill up
T = TypeVar("T")


class Namespace:
    """Fresh topics, app id and state directory for one measurement."""

    def __init__(self, base: Settings, guarantee: str, skus: int = SKUS) -> None:
        run = uuid.uuid4().hex[:8]
        self.prefix = f"bench-{run}-"
        self.state = Path(tempfile.mkdtemp(prefix="cqrs-bench-"))
        self.env = {
            "CQRS_KAFKA__TOPIC_PREFIX": self.prefix,
            "CQRS_PROCESSOR__APP_ID": f"bench-{run}",
            "CQRS_PROCESSOR__DATADIR": str(self.state),
            "CQRS_PROCESSOR__PROCESSING_GUARANTEE": guarantee,
            "CQRS_OBSERVABILITY__PORT": "0",
        }
        self.settings = base.model_copy(
            update={"kafka": base.kafka.model_copy(update={"topic_prefix": self.prefix})}
        )
        ensure_topics(self.settings)
        list(register_all(self.settings, SchemaCatalog()))
        self.serde = AvroSerde(RegistryClient(self.settings.registry), SchemaCatalog())
        self.skus = [f"sku-{index:04d}" for index in range(skus)]

    def topic(self, name: str) -> str:
        return self.prefix + name

    def remove(self) -> None:
        """Delete the measurement's topics (changelogs included) and state directory: left
        behind, every run's topics would pile up on the broker's disk."""
        delete_topics(self.settings)
        shutil.rmtree(self.state, ignore_errors=True)

    def command(self, sku: str, name: str, payload: dict[str, Any]) -> tuple[str, bytes]:
        command_id = str(uuid.uuid4())
        metadata = {
            "command_id": command_id,
            "aggregate_id": sku,
            "issued_at": time.time_ns() // 1_000_000,
        }
        value = self.serde.encode(
            self.topic("commands"), f"cqrs.commands.{name}", {"metadata": metadata, **payload}
        )
        return command_id, value

    def producer(self) -> Producer:
        return Producer(
            {
                **self.settings.kafka.confluent_config(),
                "partitioner": "murmur2_random",
                "linger.ms": 5,
            }
        )

    def produce_backlog(self, count: int) -> None:
        producer = self.producer()
        for sku in self.skus:
            producer.produce(self.topic("commands"), key=sku, value=self.register(sku))
        for index in range(count - len(self.skus)):
            sku = self.skus[index % len(self.skus)]
            producer.produce(self.topic("commands"), key=sku, value=self.adjust(sku)[1])
            producer.poll(0)
        producer.flush(60)

    def register(self, sku: str) -> bytes:
        return self.command(sku, "RegisterItem", {"name": sku})[1]

    def adjust(self, sku: str) -> tuple[str, bytes]:
        return self.command(sku, "AdjustStock", {"delta": 1, "reason": "RESTOCK"})

    def consumer(self, group: str | None = None) -> Consumer:
        return Consumer(
            {
                **self.settings.kafka.confluent_config(),
                "group.id": group or uuid.uuid4().hex,
                "auto.offset.reset": "earliest",
                "isolation.level": "read_committed",
                "enable.auto.commit": False,
            }
        )


@contextmanager
def worker(space: Namespace) -> Iterator[None]:
    with cqrs_process(["worker"], space.state / "worker.log", [WORKER_READY], space.env):
        yield


def drain_rate(space: Namespace, count: int) -> float:
    """Commands/s of one worker draining ``count`` commands, from first to last result."""
    space.produce_backlog(count)
    consumer = space.consumer()
    consumer.subscribe([space.topic("command-results")])
    stamps: list[float] = []
    with worker(space):
        deadline = time.monotonic() + 900
        while len(stamps) < count and time.monotonic() < deadline:
            for message in consumer.consume(500, 1.0):
                if not message.error():
                    stamps.append(message.timestamp()[1] / 1000)
    consumer.close()
    if len(stamps) < count:
        raise RuntimeError(f"only {len(stamps)} of {count} results arrived")
    return (count - 1) / (max(stamps) - min(stamps))


def passthrough_rate(space: Namespace, count: int) -> float:
    """Commands/s of a raw confluent-kafka consume→produce loop over the same kind of backlog."""
    space.produce_backlog(count)
    consumer = space.consumer()
    consumer.subscribe([space.topic("commands")])
    producer = space.producer()
    copied, started = 0, 0.0
    while copied < count:
        for message in consumer.consume(500, 1.0):
            if message.error():
                continue
            started = started or time.perf_counter()
            producer.produce(space.topic("events"), key=message.key(), value=message.value())
            copied += 1
        producer.poll(0)
    producer.flush(60)
    consumer.close()
    return count / (time.perf_counter() - started)


def latencies(space: Namespace, per_second: float, seconds: float) -> dict[str, float]:
    """Command→result latency percentiles (ms) at a fixed offered rate."""
    sent: dict[str, float] = {}
    received: dict[str, float] = {}
    producer = space.producer()
    for sku in space.skus:
        producer.produce(space.topic("commands"), key=sku, value=space.register(sku))
    producer.flush(30)
    results = space.consumer()
    results.subscribe([space.topic("command-results")])
    stop = threading.Event()

    def listen() -> None:
        # consume() returns when it has its count or its timeout is up: a long timeout
        # would add up to that much to every latency measured.
        while not stop.is_set():
            for message in results.consume(500, 0.002):
                if not message.error() and message.key():
                    received.setdefault((message.key() or b"").decode(), time.perf_counter())

    listener = threading.Thread(target=listen, daemon=True)
    with worker(space):
        listener.start()
        time.sleep(3)  # warm: the registrations are answered, the listener is assigned
        started, count = time.perf_counter(), int(per_second * seconds)
        for index in range(count):
            sku = space.skus[index % len(space.skus)]
            command_id, value = space.adjust(sku)
            while time.perf_counter() < started + index / per_second:
                time.sleep(0.0005)
            producer.produce(space.topic("commands"), key=sku, value=value)
            sent[command_id] = time.perf_counter()
            producer.poll(0)
        producer.flush(30)
        deadline = time.monotonic() + 120
        while not set(sent) <= set(received) and time.monotonic() < deadline:
            time.sleep(0.2)
        stop.set()
        listener.join(5)
    results.close()
    delays = sorted((received[c] - sent[c]) * 1000 for c in sent if c in received)
    if not delays:
        raise RuntimeError("no results arrived")
    return {
        "offered_per_second": per_second,
        "answered": len(delays) / len(sent),
        "p50_ms": statistics.median(delays),
        "p99_ms": delays[min(len(delays) - 1, int(len(delays) * 0.99))],
    }


def in_namespace(
    base: Settings, guarantee: str, measure: Callable[[Namespace], T], skus: int = SKUS
) -> T:
    """``measure`` in a fresh namespace, removed afterwards (also on failure)."""
    space = Namespace(base, guarantee, skus)
    try:
        return measure(space)
    finally:
        space.remove()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--commands", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--rate",
        type=float,
        nargs="+",
        default=[500.0, 300.0, 150.0],
        help="offered rates for the latency runs (the default adds two below 500/s)",
    )
    parser.add_argument("--seconds", type=float, default=15)
    options = parser.parse_args()
    base = load_settings()
    count = options.commands
    cases: dict[str, Callable[[], float]] = {
        "raw passthrough": partial(
            in_namespace, base, "exactly_once", partial(passthrough_rate, count=count)
        ),
        "worker exactly-once": partial(
            in_namespace, base, "exactly_once", partial(drain_rate, count=count)
        ),
        "worker at-least-once": partial(
            in_namespace, base, "at_least_once", partial(drain_rate, count=count)
        ),
        f"worker exactly-once, {BUSY_SKUS} aggregates": partial(
            in_namespace, base, "exactly_once", partial(drain_rate, count=count), BUSY_SKUS
        ),
    }
    rates: dict[str, list[float]] = {name: [] for name in cases}
    for number in range(1, options.rounds + 1):
        for name, measure in cases.items():
            rates[name].append(measure())
        summary = ", ".join(f"{name} {values[-1]:,.0f}/s" for name, values in rates.items())
        print(f"round {number}/{options.rounds}: {summary}", flush=True)
    latency: dict[str, list[dict[str, float]]] = {}
    for guarantee in ("exactly_once", "at_least_once"):
        for rate in options.rate:
            print(f"latency at {rate:.0f}/s offered, {guarantee}...", flush=True)
            latency_at = partial(latencies, per_second=rate, seconds=options.seconds)
            measured = in_namespace(base, guarantee, latency_at)
            latency.setdefault(guarantee, []).append(measured)
            print(f"  {measured}", flush=True)
    report(
        "command_processor",
        rates,
        {
            "exactly-once / raw": ("worker exactly-once", "raw passthrough"),
            "at-least-once / raw": ("worker at-least-once", "raw passthrough"),
            "exactly-once / at-least-once": ("worker exactly-once", "worker at-least-once"),
            f"{BUSY_SKUS} aggregates / {SKUS}": (
                f"worker exactly-once, {BUSY_SKUS} aggregates",
                "worker exactly-once",
            ),
        },
        {
            "commands": options.commands,
            "commit_interval_s": base.processor.commit_interval_s,
            "latency": latency,
        },
    )


if __name__ == "__main__":
    main()
