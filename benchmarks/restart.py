"""Restart benchmark: how soon ``cqrs worker`` answers again after a kill, a stop, a cold start.

For each state store (``sqlite://``: state kept on local disk in the data
directory; ``memory://``: restored from the changelog at every start) and each
size N, a round of fresh topics under a prefix of its own, an app id under that
prefix (the worker's group and changelog are named by the app id, not by the
prefix) and a private data directory has N inventory aggregates registered (N
RegisterItem commands, Avro on the commands topic, all N results read committed,
so the changelog holds the state). Then, per case, the running worker is stopped
and started again:

- sigkill: SIGKILLed, then restarted (the group still counts the dead member
  until its session times out);
- clean: SIGTERMed and its exit awaited, then restarted;
- cold: stopped, its data directory deleted (no local state), restarted.

A case's figure is the seconds from the new worker's start (just before its
Popen, so the interpreter's own start counts) to a read_committed reader's
receipt of the ACCEPTED result of one AdjustStock command produced just before
that start. From each start's log (``processors.changelog``) come the changelog
records read and the restore's seconds (the longest partition's: they restore
side by side), hence the cold restore's records/s, and the seconds to the first
assignment and to readiness. Each round runs every store's sigkill, clean and
cold in turn (one worker alive at a time), so noise hits all alike; every
round's figure is kept. For memory:// all three cases restore the whole
changelog: they are the comparison.

    python -m benchmarks.restart [--sizes 10000 100000] [--rounds 2]
        [--stores sqlite:// memory://] [--keep-logs DIR]

``--keep-logs`` copies the log of every worker start (registration, warm-up and
each case, numbered in order) into ``DIR``.

Targets, each with pass/fail: sigkill ≤ 1.5 times clean and ≤ 10 s at 100,000
aggregates; clean ≤ 3 s; a cold restore ≥ 100,000 records/s.

Needs the local stack (``cqrs stack up``: Kafka and the schema registry). Results:
benchmarks/results/restart.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import confluent_kafka

from benchmarks.common import RESULTS
from benchmarks.restart_support import CASES, Restarts
from core.settings import Settings, load_settings

STORES = ("sqlite://", "memory://")
Runs = dict[str, dict[str, dict[str, list[dict[str, Any]]]]]  # store -> size -> case -> runs
# name, figure (store, size) -> value, "max" or "min", limit, the size it is set at
TARGETS: list[tuple[str, str, str, float, int | None]] = [
    ("sigkill / clean", "ratio", "max", 1.5, 100_000),
    ("sigkill seconds", "sigkill", "max", 10.0, 100_000),
    ("clean seconds", "clean", "max", 3.0, None),
    ("cold restore records/s", "cold_restore_per_second", "min", 100_000.0, None),
]


def progress(store: str, size: int, number: int, case: str, run: dict[str, Any]) -> str:
    rate = run.get("restore_per_second")
    restore = (
        f"{run['records']:,} records in {run['restore_s']}s" if run["partitions_restored"] else ""
    )
    loaded = ""
    if run["partitions_loaded"]:
        loaded = f"{run['keys_loaded']:,} keys loaded locally in {run['load_s']:.2f}s"
    return (
        f"round {number}, {store} N={size:,} {case}: {run['seconds']:.2f} s "
        f"(stop {run['stop_s']:.2f} s, assigned at {run['assigned_s'] or 0:.2f} s, ready at "
        f"{run['ready_s'] or 0:.2f} s) {', '.join(p for p in (restore, loaded) if p)}"
        + (f", {rate:,.0f} records/s" if rate else "")
    )


def measure(
    base: Settings, sizes: list[int], stores: list[str], rounds: int, keep: Path | None = None
) -> tuple[Runs, dict[str, dict[str, float]], list[str]]:
    """Every round of every case; registration seconds per store and size; failures."""
    runs: Runs = {s: {str(n): {c: [] for c in CASES} for n in sizes} for s in stores}
    registered: dict[str, dict[str, float]] = {store: {} for store in stores}
    failures: list[str] = []
    for size in sizes:
        with ExitStack() as rounds_of_size:
            restarts: dict[str, Restarts] = {}
            for store in stores:
                print(
                    f"{store} N={size:,}: registering {size:,} aggregates...", end=" ", flush=True
                )
                restarts[store] = rounds_of_size.enter_context(Restarts(base, store, size, keep))
                seconds = restarts[store].register()
                registered[store][str(size)] = seconds
                print(f"{seconds:.1f} s ({size / seconds:,.0f}/s)", flush=True)
                restarts[store].stop()  # the next store's registration runs alone
            for number in range(1, rounds + 1):
                for store, restart in restarts.items():
                    for case in CASES:
                        try:
                            run = restart.restart(case)
                        except RuntimeError as error:
                            failures.append(f"round {number}, {store} N={size} {case}: {error}")
                            print(
                                f"round {number}, {store} N={size:,} {case}: FAILED: {error}",
                                flush=True,
                            )
                            continue
                        runs[store][str(size)][case].append({"round": number, **run})
                        print(progress(store, size, number, case, run), flush=True)
                    restart.stop()  # one worker alive at a time
    return runs, registered, failures


def _median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def summarise(runs: Runs) -> dict[str, dict[str, dict[str, Any]]]:
    """Per store and size: each case's median seconds and restore figures, the cold
    restore's records/s, and sigkill / clean (of the medians, and round by round)."""
    summary: dict[str, dict[str, dict[str, Any]]] = {}
    for store, by_size in runs.items():
        for size, by_case in by_size.items():
            figures: dict[str, Any] = {}
            for case, done in by_case.items():
                figures[case] = _median([run["seconds"] for run in done])
                figures[f"{case}_records"] = _median([run["records"] for run in done])
                figures[f"{case}_keys_loaded"] = _median([run["keys_loaded"] for run in done])
                restores = [run["restore_s"] for run in done if run["restore_s"] is not None]
                figures[f"{case}_restore_s"] = _median(restores)
            rates = [
                run["restore_per_second"] for run in by_case["cold"] if "restore_per_second" in run
            ]
            figures["cold_restore_per_second"] = _median(rates)
            sigkill, clean = figures["sigkill"], figures["clean"]
            figures["ratio"] = sigkill / clean if sigkill and clean else None
            paired = zip(by_case["sigkill"], by_case["clean"], strict=False)
            figures["ratio_per_round"] = [k["seconds"] / c["seconds"] for k, c in paired]
            summary.setdefault(store, {})[size] = figures
    return summary


def verdicts(summary: dict[str, dict[str, dict[str, Any]]]) -> list[dict[str, Any]]:
    """Every target at every store and size; ``binding`` where the target is set (a target
    set at 100,000 aggregates is only indicative at other sizes)."""
    found = []
    for store, by_size in summary.items():
        for size, figures in by_size.items():
            for name, figure, sense, limit, at in TARGETS:
                value = figures.get(figure)
                passed = (
                    None
                    if value is None
                    else (value <= limit if sense == "max" else value >= limit)
                )
                found.append(
                    {
                        "target": f"{name} {'≤' if sense == 'max' else '≥'} {limit:g}",
                        "store": store,
                        "size": int(size),
                        "value": value,
                        "pass": passed,
                        "binding": at is None or int(size) == at,
                    }
                )
    return found


def show(summary: dict[str, dict[str, dict[str, Any]]], targets: list[dict[str, Any]]) -> None:
    def number(value: float | None, form: str) -> str:
        return "-" if value is None else format(value, form)

    print(
        f"\n{'store':<11}{'N':>9} {'case':<8}{'median s':>9}{'records':>10}{'restore s':>10}"
        f"{'records/s':>11}"
    )
    for store, by_size in summary.items():
        for size, figures in by_size.items():
            for case in CASES:
                rate = figures["cold_restore_per_second"] if case == "cold" else None
                print(
                    f"{store:<11}{int(size):>9,} {case:<8}{number(figures[case], '.2f'):>9}"
                    f"{number(figures[f'{case}_records'], ',.0f'):>10}"
                    f"{number(figures[f'{case}_restore_s'], '.2f'):>10}{number(rate, ',.0f'):>11}"
                )
            print(f"{store:<11}{int(size):>9,} sigkill / clean {number(figures['ratio'], '.2f')}")
    print()
    for verdict in targets:
        state = {True: "PASS", False: "FAIL", None: "n/a"}[verdict["pass"]]
        note = "" if verdict["binding"] else " (indicative: set at 100,000)"
        print(
            f"{state:<5}{verdict['target']:<34}{verdict['store']:<11}{verdict['size']:>9,}"
            f"  {number(verdict['value'], ',.2f')}{note}"
        )


def options() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--stores", nargs="+", choices=STORES, default=list(STORES))
    parser.add_argument(
        "--keep-logs", type=Path, metavar="DIR", help="copy every worker start's log into DIR"
    )
    return parser.parse_args()


def main() -> None:
    chosen = options()
    base = load_settings()
    runs, registered, failures = measure(
        base, chosen.sizes, chosen.stores, chosen.rounds, chosen.keep_logs
    )
    summary = summarise(runs)
    targets = verdicts(summary)
    processor = base.processor
    result = {
        "benchmark": "restart",
        "python": platform.python_version(),
        "machine": platform.machine(),
        "librdkafka": confluent_kafka.libversion()[0],
        "sizes": chosen.sizes,
        "rounds": chosen.rounds,
        "stores": chosen.stores,
        "partitions": processor.partitions,
        "commit_interval_s": processor.commit_interval_s,
        # With static membership a restarted worker takes its partitions back under its
        # name; without it the dead member stays in the group until its session expires.
        "group": {
            "session_timeout_s": processor.session_timeout_s,
            "heartbeat_interval_s": min(3.0, processor.session_timeout_s / 4),
            "static_membership": processor.static_membership,
        },
        "transaction_timeout_s": processor.transaction_timeout_s,
        "registration_s": registered,
        "medians": summary,
        "targets": targets,
        "failures": failures,
        "runs": runs,
    }
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / "restart.json"
    path.write_text(json.dumps(result, indent=2))
    show(summary, targets)
    print(f"results: {path}")
    if failures:
        print(f"\nFAILED cases: {len(failures)} (see the JSON)")


if __name__ == "__main__":
    main()
