"""Memory and CPU of the real processes, to size the chart's requests and limits.

Runs on the local stack, with a private schema registry and a private topic
prefix, consumer group and state directory:

1. ``cqrs registry`` on a free port with its own schema topic;
2. a backlog of commands (RegisterItem + AdjustStock per SKU) on fresh topics;
3. ``cqrs worker`` (its memory store, as in production) against that registry,
   sampled with psutil from start-up until its consumer group has no lag, then
   while idle, then through a graceful stop (SIGTERM).

Reported: peak and idle RSS, CPU cores used while draining the backlog, the
drain rate in commands/s (the basis of KEDA's lagThreshold), time to ready and
time to stop (the basis of terminationGracePeriodSeconds). The baseline is a
bare Python interpreter measured in the same run, so the figures read as "this
much on top of Python". Everything it created is deleted at the end.

    python -m benchmarks.process_footprint [--commands 4000]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psutil
from confluent_kafka import TopicPartition
from confluent_kafka.admin import AdminClient

from benchmarks.common import RESULTS
from core.settings import Settings, load_settings
from cqrs.client import CommandClient
from schemas.tooling import register_all
from schemas.topic_admin import ensure_topics

CQRS = str(Path(sys.executable).with_name("cqrs"))
MIB = 1024 * 1024


@dataclass
class Samples:
    """RSS (bytes) and cumulative CPU seconds of one process, over time."""

    process: psutil.Process
    points: list[tuple[float, int, float]] = field(default_factory=list)

    def take(self) -> None:
        with self.process.oneshot():
            cpu = self.process.cpu_times()
            self.points.append(
                (time.monotonic(), self.process.memory_info().rss, cpu.user + cpu.system)
            )

    def peak_rss(self) -> int:
        return max(rss for _, rss, _ in self.points)

    def last_rss(self) -> int:
        return self.points[-1][1]

    def cpu_cores_between(self, start: float, end: float) -> float:
        inside = [(t, cpu) for t, _, cpu in self.points if start <= t <= end]
        (t0, c0), (t1, c1) = inside[0], inside[-1]
        return (c1 - c0) / (t1 - t0) if t1 > t0 else 0.0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_until(
    condition: Callable[[], bool], timeout_s: float, what: str, tick: Callable[[], None]
) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} did not happen within {timeout_s:.0f}s")
        tick()
        time.sleep(0.25)


def http_ok(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def group_lag(settings: Settings, group: str, topic: str) -> int:
    admin = AdminClient(settings.kafka.confluent_config())
    partitions = admin.list_topics(topic, timeout=10).topics[topic].partitions
    wanted = [TopicPartition(topic, p) for p in partitions]
    from confluent_kafka import Consumer, ConsumerGroupTopicPartitions

    request = [ConsumerGroupTopicPartitions(group, wanted)]
    committed = (
        admin.list_consumer_group_offsets(request)[group].result(timeout=10).topic_partitions
    )
    consumer = Consumer(
        {**settings.kafka.confluent_config(), "group.id": f"lag-probe-{uuid.uuid4()}"}
    )
    try:
        lag = 0
        for tp in committed:
            _, high = consumer.get_watermark_offsets(
                TopicPartition(topic, tp.partition), timeout=10
            )
            lag += high - (tp.offset if tp.offset >= 0 else 0)
        return lag
    finally:
        consumer.close()


def bare_python_rss() -> int:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(3)"])
    try:
        time.sleep(1.5)
        return int(psutil.Process(child.pid).memory_info().rss)
    finally:
        child.terminate()
        child.wait()


def start(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen([CQRS, *args], env=env, stdout=out, stderr=subprocess.STDOUT)


def stop(child: subprocess.Popen[bytes], samples: Samples | None = None) -> float:
    """SIGTERM and wait; returns the seconds it took to exit."""
    began = time.monotonic()
    child.send_signal(signal.SIGTERM)
    while child.poll() is None:
        if samples is not None:
            try:
                samples.take()
            except psutil.NoSuchProcess:
                break
        if time.monotonic() - began > 120:
            child.kill()
        time.sleep(0.1)
    child.wait()
    return time.monotonic() - began


def measure(stack: Settings, commands: int, workdir: Path) -> dict[str, Any]:
    tag = uuid.uuid4().hex[:8]
    prefix = f"footprint-{tag}."
    registry_port, registry_metrics, worker_metrics = free_port(), free_port(), free_port()
    env_common = {
        **os.environ,
        "CQRS_KAFKA__TOPIC_PREFIX": prefix,
        "CQRS_REGISTRY__URL": f"http://127.0.0.1:{registry_port}",
        "CQRS_REGISTRY__SCHEMAS_TOPIC": f"_schemas-footprint-{tag}",
        "CQRS_LOG_LEVEL": "WARNING",
    }
    settings = stack.model_copy(
        update={
            "kafka": stack.kafka.model_copy(update={"topic_prefix": prefix}),
            "registry": stack.registry.model_copy(
                update={
                    "url": env_common["CQRS_REGISTRY__URL"],
                    "schemas_topic": env_common["CQRS_REGISTRY__SCHEMAS_TOPIC"],
                }
            ),
        }
    )
    result: dict[str, Any] = {"commands": commands}
    registry = start(
        ["registry"],
        {**env_common, "CQRS_OBSERVABILITY__PORT": str(registry_metrics)},
        workdir / "registry.log",
    )
    registry_samples = Samples(psutil.Process(registry.pid))
    worker: subprocess.Popen[bytes] | None = None
    try:
        wait_until(
            lambda: http_ok(f"{env_common['CQRS_REGISTRY__URL']}/subjects"),
            60,
            "registry start",
            registry_samples.take,
        )
        ensure_topics(settings)
        list(register_all(settings))
        client = CommandClient(settings)
        print(f"producing {commands} commands ...", flush=True)
        try:
            for number in range(commands // 2):
                sku = f"sku-{number}"
                client.send("RegisterItem", sku, {"name": f"Item {number}"})
                client.send("AdjustStock", sku, {"delta": 10, "reason": "RESTOCK"})
                registry_samples.take()
        finally:
            client.close()
        app_id = f"footprint-processor-{tag}"
        worker_env = {
            **env_common,
            "CQRS_PROCESSOR__APP_ID": app_id,
            "CQRS_PROCESSOR__STORE": "memory://",
            "CQRS_PROCESSOR__DATADIR": str(workdir / "state"),
            "CQRS_OBSERVABILITY__PORT": str(worker_metrics),
        }
        print("starting the worker on the backlog ...", flush=True)
        began = time.monotonic()
        worker = start(["worker"], worker_env, workdir / "worker.log")
        samples = Samples(psutil.Process(worker.pid))
        wait_until(
            lambda: http_ok(f"http://127.0.0.1:{worker_metrics}/readyz"),
            180,
            "worker ready",
            samples.take,
        )
        ready_at = time.monotonic()
        wait_until(
            lambda: group_lag(settings, app_id, prefix + "commands") == 0,
            600,
            "backlog drained",
            samples.take,
        )
        drained_at = time.monotonic()
        idle_end = time.monotonic() + 10
        wait_until(lambda: time.monotonic() > idle_end, 20, "idle period", samples.take)
        result["worker"] = {
            "seconds_to_ready": round(ready_at - began, 1),
            "drain_commands_per_s": round(commands / (drained_at - ready_at), 1),
            "cpu_cores_while_draining": round(samples.cpu_cores_between(ready_at, drained_at), 2),
            "peak_rss_mib": round(samples.peak_rss() / MIB, 1),
            "idle_rss_mib": round(samples.last_rss() / MIB, 1),
            "seconds_to_stop": round(stop(worker, samples), 1),
        }
        worker = None
        registry_samples.take()
        result["registry"] = {
            "peak_rss_mib": round(registry_samples.peak_rss() / MIB, 1),
            "idle_rss_mib": round(registry_samples.last_rss() / MIB, 1),
            "seconds_to_stop": round(stop(registry), 1),
        }
    finally:
        for child in (worker, registry):
            if child is not None and child.poll() is None:
                stop(child)
        cleanup(settings, prefix, tag)
    return result


def cleanup(settings: Settings, prefix: str, tag: str) -> None:
    admin = AdminClient(settings.kafka.confluent_config())
    mine = [
        name
        for name in admin.list_topics(timeout=10).topics
        if name.startswith(prefix) or tag in name
    ]
    if mine:
        for future in admin.delete_topics(mine).values():
            future.result(timeout=30)
    groups = [
        g.group_id
        for g in admin.list_consumer_groups().result(timeout=10).valid
        if tag in g.group_id
    ]
    if groups:
        for future in admin.delete_consumer_groups(groups).values():
            future.result(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--commands", type=int, default=4000)
    options = parser.parse_args()
    baseline = bare_python_rss()
    with tempfile.TemporaryDirectory(prefix="cqrs-footprint-") as workdir:
        result = measure(load_settings(), options.commands, Path(workdir))
    result |= {
        "benchmark": "process_footprint",
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpus": psutil.cpu_count(),
        "bare_python_rss_mib": round(baseline / MIB, 1),
    }
    for role in ("worker", "registry"):
        result[role]["rss_ratio_to_bare_python"] = round(
            result[role]["peak_rss_mib"] * MIB / baseline, 1
        )
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / "process_footprint.json"
    path.write_text(json.dumps(result, indent=2))
    print(f"\n{'process':<10}{'measure':<28}{'value':>10}")
    for role in ("worker", "registry"):
        for key, value in result[role].items():
            print(f"{role:<10}{key:<28}{value:>10}")
    print(f"{'python':<10}{'bare interpreter RSS MiB':<28}{result['bare_python_rss_mib']:>10}")
    print(f"results: {path}")


if __name__ == "__main__":
    main()
