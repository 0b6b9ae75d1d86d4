"""Command→result latency of ``cqrs worker`` at a fixed offered rate.

The aggregates are registered first; then AdjustStock commands are sent at the
offered rate for a fixed time, and a read_committed client notes when each
command's result arrives. Percentiles are of the delays between sending a
command and reading its result, in milliseconds.
"""

from __future__ import annotations

import statistics
import threading
import time
from typing import Any

from benchmarks.write_peers import worker
from benchmarks.write_workload import Round


def latencies(space: Round, guarantee: str, per_second: float, seconds: float) -> dict[str, Any]:
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
    with worker(space, guarantee):
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
        "max_ms": delays[-1],
    }


def summary(runs: list[dict[str, Any]]) -> dict[str, float]:
    """Over the runs at one rate: median p50 and p99, the worst p99 and the worst delay."""
    return {
        "runs": len(runs),
        "p50_ms_median": statistics.median(run["p50_ms"] for run in runs),
        "p99_ms_median": statistics.median(run["p99_ms"] for run in runs),
        "p99_ms_worst": max(run["p99_ms"] for run in runs),
        "max_ms_worst": max(run["max_ms"] for run in runs),
        "answered_lowest": min(run["answered"] for run in runs),
    }
