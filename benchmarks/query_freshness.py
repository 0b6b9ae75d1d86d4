"""Acceptance to read-your-write through the query service: how fresh a read after a command is.

With a worker and the inventory-levels sink running, each command goes through
the gateway (``POST /commands/AdjustStock``) and, right after its accepted
answer, the read of the same SKU waits for it: by ``?min_version=<version>`` or
by the answer's ``X-Consistency-Token``, alternately, so both see the same
conditions. Measured per command: the gateway's round trip (request to accepted
answer) and the freshness (accepted answer to the successful read). There is no
peer: this is the product's own freshness, set mostly by the sink's batch wait.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from cqrs.children import WORKER_READY, cqrs_process

MODES = ("min_version", "token")
READ_TIMEOUT_S = 20  # the read's own bound; a timeout answers 504 and fails the run


def percentile(values: list[float], share: float) -> float:
    """Nearest rank on the sorted values, as the other latency benchmarks take it."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * share))]


def summary_ms(seconds: list[float]) -> dict[str, float]:
    milliseconds = [value * 1000 for value in seconds]
    return {
        "count": len(milliseconds),
        "p50_ms": statistics.median(milliseconds),
        "p99_ms": percentile(milliseconds, 0.99),
        "max_ms": max(milliseconds),
    }


@contextmanager
def worker(env: dict[str, str], state: Path) -> Iterator[None]:
    """``cqrs worker`` under the run's prefix, its state and log in ``state``."""
    worker_env = {**env, "CQRS_PROCESSOR__DATADIR": str(state / "worker")}
    with cqrs_process(["worker"], state / "worker.log", [WORKER_READY], worker_env):
        yield


def command(client: httpx.Client, kind: str, sku: str, payload: dict[str, Any]) -> httpx.Response:
    answer = client.post(f"/commands/{kind}", json={"aggregate_id": sku, "payload": payload})
    if answer.status_code != 200:
        raise RuntimeError(f"{kind} {sku}: {answer.status_code} {answer.text}")
    return answer


def register(client: httpx.Client, skus: list[str]) -> None:
    for sku in skus:
        command(client, "RegisterItem", sku, {"name": f"Item {sku}"})


def read_after(client: httpx.Client, sku: str, answer: httpx.Response, mode: str) -> None:
    """The read that waits for the command of ``answer``; raises unless it shows it."""
    version = answer.json()["version"]
    params: dict[str, str] = {"timeout": str(READ_TIMEOUT_S)}
    headers: dict[str, str] = {}
    if mode == "min_version":
        params["min_version"] = str(version)
    else:
        headers["X-Consistency-Token"] = answer.headers["X-Consistency-Token"]
    read = client.get(f"/projections/inventory-levels/{sku}", params=params, headers=headers)
    if read.status_code != 200 or read.json()["version"] < version:
        raise RuntimeError(f"read of {sku} after version {version}: {read.status_code} {read.text}")


@dataclass
class Timings:
    gateway: list[float]
    fresh: dict[str, list[float]]


def adjust_and_read(client: httpx.Client, skus: list[str], commands: int) -> Timings:
    """``commands`` AdjustStock per mode, one at a time, modes alternating."""
    timings = Timings([], {mode: [] for mode in MODES})
    for index in range(commands * len(MODES)):
        sku, mode = skus[index % len(skus)], MODES[index % len(MODES)]
        sent = time.perf_counter()
        answer = command(client, "AdjustStock", sku, {"delta": 1, "reason": "RESTOCK"})
        accepted = time.perf_counter()
        read_after(client, sku, answer, mode)
        timings.gateway.append(accepted - sent)
        timings.fresh[mode].append(time.perf_counter() - accepted)
    return timings


def freshness_round(client: httpx.Client, skus: list[str], commands: int) -> dict[str, Any]:
    """One round against a running sink: a few warm-up commands, then the measured ones."""
    adjust_and_read(client, skus, 2)  # the sink has caught up and the connections are open
    timings = adjust_and_read(client, skus, commands)
    return {
        "gateway": summary_ms(timings.gateway),
        **{mode: summary_ms(values) for mode, values in timings.fresh.items()},
    }
