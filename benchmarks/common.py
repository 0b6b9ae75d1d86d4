"""Shared benchmark plumbing: interleaved rounds, medians, JSON results and a short table."""

from __future__ import annotations

import json
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from confluent_kafka.admin import AdminClient

from core.settings import Settings

RESULTS = Path(__file__).parent / "results"


def rate(work: Callable[[], int]) -> float:
    """Items per second of one call of ``work`` (which returns how many items it did)."""
    started = time.perf_counter()
    items = work()
    return items / (time.perf_counter() - started)


def interleaved(cases: dict[str, Callable[[], int]], rounds: int) -> dict[str, list[float]]:
    """Run every case once per round, alternating, so machine noise hits all of them alike."""
    rates: dict[str, list[float]] = {name: [] for name in cases}
    for number in range(1, rounds + 1):
        for name, work in cases.items():
            rates[name].append(rate(work))
        summary = ", ".join(f"{name} {values[-1]:,.0f}/s" for name, values in rates.items())
        print(f"round {number}/{rounds}: {summary}", flush=True)
    return rates


def report(
    name: str,
    rates: dict[str, list[float]],
    ratios: dict[str, tuple[str, str]],
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    medians = {case: statistics.median(values) for case, values in rates.items()}
    result = {
        "benchmark": name,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "median_per_second": medians,
        "rounds": rates,
        "ratios": {label: medians[ours] / medians[base] for label, (ours, base) in ratios.items()},
        **(extra or {}),
    }
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(result, indent=2))
    width = max(28, *(len(label) + 2 for label in [*medians, *result["ratios"]]))
    print(f"\n{'case':<{width}}{'median/s':>14}")
    for case, value in medians.items():
        print(f"{case:<{width}}{value:>14,.0f}")
    for label, value in result["ratios"].items():
        print(f"{label:<{width}}{value:>14.3g}")  # 3 significant digits: ratios can be tiny
    print(f"results: {path}")
    return result


def delete_topics(settings: Settings) -> None:
    """Delete every topic under the settings' topic prefix; left behind, each run's topics
    would pile up on the broker's disk."""
    prefix = settings.kafka.topic_prefix
    admin = AdminClient(settings.kafka.confluent_config())
    mine = [name for name in admin.list_topics(timeout=15).topics if name.startswith(prefix)]
    for future in admin.delete_topics(mine).values() if mine else []:
        future.result(60)
