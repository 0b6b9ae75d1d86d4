"""Exactly-once under Kafka failures, counted: brokers and leaders SIGKILLed mid-stream.

The fault tests' scenarios (``tests/integration/broker_faults.py``), repeated as
often as asked: the only broker of a private single-node cluster SIGKILLed and
restarted, and on a private three-node cluster the leaders of a commands and an
events partition and the worker's transaction coordinator killed in turn. Each
run counts unanswered and over-answered commands, retries answered with other
bytes, duplicate event ids, aggregates with gaps, and worker exits: every
figure must be 0.

    python -m benchmarks.broker_faults [--kills 5] [--runs 1] [--scenario single leaders]
        [--kafka-version 4.3.1] [--keep-failed DIR]

``--kafka-version`` runs the private clusters on another Kafka release (its jars are
resolved from Maven Central on first use). ``--keep-failed`` copies the home of
every run with a fault (the brokers' data and logs, the worker's log) into ``DIR``
for a post-mortem, e.g. with ``kafka-dump-log``.

Needs the local stack (its registry serves the schemas; its jars start the private
clusters). Results: benchmarks/results/broker_faults.json.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks.common import RESULTS
from core.settings import Settings, load_settings
from tests.integration.broker_faults import FaultOutcome, leaders_killed, only_broker_killed
from tests.integration.kafka_cluster import private_kafka

Scenario = Callable[[Settings, Any, Path, int], FaultOutcome]
SCENARIOS: dict[str, tuple[int, Scenario]] = {
    "single": (1, only_broker_killed),
    "leaders": (3, leaders_killed),
}


def run(settings: Settings, name: str, kills: int, keep: Path | None = None) -> dict[str, Any]:
    brokers, scenario = SCENARIOS[name]
    with tempfile.TemporaryDirectory(prefix=f"cqrs-faults-{name}-") as home:
        with private_kafka(Path(home), brokers=brokers, base=settings) as cluster:
            outcome = scenario(settings, cluster, Path(home), kills)
        kept = None
        if keep is not None and (outcome.report.faults or outcome.worker_exited):
            kept = keep / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}"
            shutil.copytree(home, kept, symlinks=True)
            print(f"kept the failed run's home in {kept}", flush=True)
        return {
            "kept": str(kept) if kept else None,
            "scenario": name,
            "kafka_version": settings.stack.kafka_version,
            "kills": outcome.faults,
            "worker_exited": outcome.worker_exited,
            "markers_skipped": outcome.markers_skipped,
            **dataclasses.asdict(outcome.report),
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--kills", type=int, default=5, help="kills per run")
    parser.add_argument("--runs", type=int, default=1, help="runs per scenario")
    parser.add_argument(
        "--scenario", nargs="+", choices=sorted(SCENARIOS), default=["single", "leaders"]
    )
    parser.add_argument("--kafka-version", help="Kafka release of the private clusters")
    parser.add_argument(
        "--keep-failed", type=Path, metavar="DIR", help="copy the home of failed runs here"
    )
    args = parser.parse_args()
    settings = load_settings()
    if args.kafka_version:
        stack = settings.stack.model_copy(update={"kafka_version": args.kafka_version})
        settings = settings.model_copy(update={"stack": stack})
    results = []
    for index in range(args.runs):
        for name in args.scenario:
            print(f"run {index + 1}/{args.runs}: {name}, {args.kills} kills …", flush=True)
            result = run(settings, name, args.kills, args.keep_failed)
            results.append(result)
            print(json.dumps({k: v for k, v in result.items() if k != "kills"}), flush=True)
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / "broker_faults.json"
    path.write_text(json.dumps({"benchmark": "broker_faults", "runs": results}, indent=2))
    counted = [
        "unanswered",
        "over_answered",
        "mismatched_retries",
        "duplicate_events",
        "out_of_sequence",
        "events_not_commands",
    ]
    print(
        f"\n{'scenario':<10}{'kills':>6}{'commands':>10}{'faults':>8}{'exited':>8}"
        f"{'markers skipped':>17}"
    )
    for result in results:
        faults = sum(result[key] for key in counted)
        print(
            f"{result['scenario']:<10}{len(result['kills']):>6}{result['commands']:>10}"
            f"{faults:>8}{result['worker_exited']!s:>8}{result['markers_skipped']:>17}"
        )
    print(f"results: {path}")


if __name__ == "__main__":
    main()
