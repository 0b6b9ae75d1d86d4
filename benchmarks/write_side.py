"""Write-side benchmark: ``cqrs worker`` against peers doing the same work, and its latency.

(a) Drain: a backlog of commands (default 20,000 on 200 aggregates: one RegisterItem
    each, then AdjustStock) is drained exactly-once, per command: decode the Avro
    command, read the aggregate's state, decide, write the event (keyed by aggregate
    id), the CommandResult (keyed by command id) and the new state with its
    changelog, committing every ``processor.commit_interval_s``. Each round runs, on
    fresh topics of the product's partition count and on the same broker: the worker
    exactly-once, quix-streams (exactly-once, RocksDB), a plain confluent-kafka
    transactional loop (the practical limit in Python), Kafka Streams
    (exactly_once_v2, RocksDB) and the worker at-least-once; with ``--sqlite`` also
    the worker exactly-once with its state on disk. A rate is commands/s
    from the first output to the last, and counts only once the outputs are verified
    (``benchmarks.write_workload``). Figures are ratios to the worker exactly-once.
(b) Latency: the worker's command→result p50/p99/max at fixed offered rates (default
    500/s and 1,000/s), exactly-once and at-least-once, over several runs.

    python -m benchmarks.write_side [--commands 20000] [--rounds 3]
        [--peers quix plain kstreams] [--sqlite] [--rate 500 1000] [--latency-runs 10]
        [--seconds 15]

Needs the local stack (``cqrs stack up``), a JDK 17+ and Maven (Kafka Streams), and
PyPI for the quix virtualenv made on first use. Results: benchmarks/results/write_side.json.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from functools import partial
from typing import Any, TypeVar

import confluent_kafka

from benchmarks import kstreams
from benchmarks.common import report
from benchmarks.write_latency import latencies, summary
from benchmarks.write_peers import (
    PEERS,
    WORKER_AT_LEAST_ONCE,
    WORKER_EXACTLY_ONCE,
    WORKER_ON_DISK,
    processors,
    quix_version,
)
from benchmarks.write_workload import SKUS, Processor, Round, drain
from core.settings import Settings, load_settings

T = TypeVar("T")
GUARANTEES = ("exactly_once", "at_least_once")


def in_round(base: Settings, measure: Callable[[Round], T]) -> T:
    """``measure`` on a fresh round, removed afterwards (also on failure)."""
    space = Round(base)
    try:
        return measure(space)
    finally:
        space.remove()


def drains(
    base: Settings, cases: dict[str, Processor], count: int, rounds: int
) -> tuple[dict[str, list[float]], dict[str, list[str]]]:
    """Every case once per round, in order; a case whose outputs fail verification gets no
    rate for that round, and its error is kept."""
    rates: dict[str, list[float]] = {name: [] for name in cases}
    failures: dict[str, list[str]] = {}
    for number in range(1, rounds + 1):
        for name, processor in cases.items():
            print(f"round {number}/{rounds}: {name} draining {count:,}...", end=" ", flush=True)
            try:
                rate = in_round(base, partial(drain, count=count, processor=processor, name=name))
            except RuntimeError as error:
                print(f"FAILED: {error}", flush=True)
                failures.setdefault(name, []).append(f"round {number}: {error}")
                continue
            rates[name].append(rate)
            print(f"{rate:,.0f}/s", flush=True)
    return rates, failures


def ratio_labels(cases: list[str]) -> dict[str, tuple[str, str]]:
    """Each peer against the worker both ways, and what exactly-once costs the worker."""
    labels: dict[str, tuple[str, str]] = {}
    for peer in (case for case in cases if case in PEERS):
        labels[f"{peer} / worker"] = (peer, WORKER_EXACTLY_ONCE)
        labels[f"worker / {peer}"] = (WORKER_EXACTLY_ONCE, peer)
    if WORKER_ON_DISK in cases:
        labels["worker sqlite / worker memory"] = (WORKER_ON_DISK, WORKER_EXACTLY_ONCE)
        for peer in (case for case in cases if case in PEERS):
            labels[f"worker sqlite / {peer}"] = (WORKER_ON_DISK, peer)
    if WORKER_AT_LEAST_ONCE in cases:
        labels["worker exactly-once / at-least-once"] = (WORKER_EXACTLY_ONCE, WORKER_AT_LEAST_ONCE)
    return labels


def per_round(
    rates: dict[str, list[float]], labels: dict[str, tuple[str, str]], failed: bool
) -> dict[str, list[float]]:
    """Each ratio within each round (only when every round of every case succeeded: a failed
    round would pair rates of different rounds)."""
    if failed:
        return {}
    return {
        label: [a / b for a, b in zip(rates[ours], rates[base], strict=True)]
        for label, (ours, base) in labels.items()
    }


def latency_runs(
    base: Settings, rates: list[float], runs: int, seconds: float, guarantees: list[str]
) -> dict[str, dict[str, list[dict[str, Any]]]]:
    """``runs`` runs at each rate and guarantee, interleaved run by run."""
    measured: dict[str, dict[str, list[dict[str, Any]]]] = {g: {} for g in guarantees}
    for number in range(1, runs + 1):
        for guarantee in guarantees:
            for per_second in rates:
                measure = partial(
                    latencies, guarantee=guarantee, per_second=per_second, seconds=seconds
                )
                run = in_round(base, measure)
                measured[guarantee].setdefault(f"{per_second:g}", []).append(run)
                print(
                    f"latency run {number}/{runs}, worker {guarantee} at {per_second:,.0f}/s: "
                    f"p50 {run['p50_ms']:.0f} / p99 {run['p99_ms']:.0f} / max "
                    f"{run['max_ms']:.0f} ms, {run['answered']:.1%} answered",
                    flush=True,
                )
    return measured


def print_latency(summaries: dict[str, dict[str, dict[str, float]]]) -> None:
    print(f"\n{'latency (worker)':<34}{'p50 med':>9}{'p99 med':>9}{'p99 max':>9}{'max':>9}")
    for guarantee, by_rate in summaries.items():
        for per_second, figures in by_rate.items():
            label = f"{guarantee} at {float(per_second):,.0f}/s ({figures['runs']:.0f} runs)"
            print(
                f"{label:<34}{figures['p50_ms_median']:>9.0f}{figures['p99_ms_median']:>9.0f}"
                f"{figures['p99_ms_worst']:>9.0f}{figures['max_ms_worst']:>9.0f}"
            )


def options() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--commands", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--peers", nargs="*", choices=sorted(PEERS.values()), default=list(PEERS.values())
    )
    parser.add_argument(
        "--sqlite", action="store_true", help="also the worker with state on disk (sqlite://)"
    )
    parser.add_argument("--rate", type=float, nargs="*", default=[500.0, 1000.0])
    parser.add_argument("--latency-runs", type=int, default=10, help="0 skips the latency part")
    parser.add_argument("--seconds", type=float, default=15, help="length of a latency run")
    parser.add_argument(
        "--latency-guarantee", nargs="+", choices=GUARANTEES, default=list(GUARANTEES)
    )
    return parser.parse_args()


def main() -> None:
    chosen = options()
    base = load_settings()
    cases = processors(chosen.peers, chosen.sqlite)
    if "kstreams" in chosen.peers:
        kstreams.build(base)  # before the rounds: a first build must not be timed as a round
    versions = {
        "confluent-kafka": confluent_kafka.__version__,
        "librdkafka": confluent_kafka.libversion()[0],
        "kafka-streams": kstreams.ARTIFACTS[0].rsplit(":", 1)[1],
        "quixstreams": quix_version() if "quix" in chosen.peers else None,
    }
    rates, failures = drains(base, cases, chosen.commands, chosen.rounds)
    latency: dict[str, dict[str, list[dict[str, Any]]]] = {}
    if chosen.latency_runs and chosen.rate:
        latency = latency_runs(
            base, chosen.rate, chosen.latency_runs, chosen.seconds, chosen.latency_guarantee
        )
    measured = {name: values for name, values in rates.items() if values}
    labels = ratio_labels(list(measured))
    summaries = {g: {r: summary(runs) for r, runs in by.items()} for g, by in latency.items()}
    report(
        "write_side",
        measured,
        labels,
        {
            "commands": chosen.commands,
            "aggregates": SKUS,
            "partitions": base.processor.partitions,
            "commit_interval_s": base.processor.commit_interval_s,
            "worker_store": "memory:// (and sqlite:// where named)",
            "versions": versions,
            "ratios_per_round": per_round(measured, labels, bool(failures)),
            "failures": failures,
            "latency_summary": summaries,
            "latency_runs": latency,
        },
    )
    print_latency(summaries)
    if failures:
        print(f"\nFAILED rounds: {sum(len(f) for f in failures.values())} (see the JSON)")


if __name__ == "__main__":
    main()
