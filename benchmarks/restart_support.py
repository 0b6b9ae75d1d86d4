"""One store and one size of the restart benchmark: its round, its worker, its restarts.

``Restarts`` owns a write-side round (``benchmarks.write_workload.Round``: fresh
topics under a prefix of its own, the product's schemas registered), an app id
under that prefix (it names the worker's group and changelog), a data directory
inside the round's temporary directory, and the one ``cqrs worker``
process of the round at a time, started with ``benchmarks.write_peers.child``.
Each start writes a log of its own, from which ``parse_log`` reads what the
restore did (``processors.changelog``'s "restored ..." and "loaded ... from local
state" lines) and when the worker was assigned and ready.

A timed restart stops the running worker (SIGKILL, or SIGTERM and its exit),
empties the data directory for a cold start, produces one AdjustStock command,
and starts the worker; its figure is the seconds from the start (just before
Popen) to a read_committed reader's receipt of that command's ACCEPTED result.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import time
from contextlib import ExitStack, suppress
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaException, TopicPartition

from benchmarks.common import delete_topics
from benchmarks.write_peers import child
from benchmarks.write_workload import Child, Round
from core.settings import Settings

CASES = ("sigkill", "clean", "cold")
STOP_TIMEOUT_S = 60.0
RESTORED = re.compile(r"restored (\S+)\[(\d+)\]: (\d+) records, (\d+) keys in ([\d.]+)s")
LOADED = re.compile(
    r"loaded (\S+)\[(\d+)\] from local state: (\d+) keys up to offset (\d+) in ([\d.]+)s"
)
STAMP = re.compile(r"^\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3})\]")
DROPPED = "cannot be completed from the changelog"


def _since(line: str, started: float) -> float | None:
    """Seconds from ``started`` (epoch) to the log line's own time stamp (ms resolution)."""
    found = STAMP.match(line)
    if found is None:
        return None
    return datetime.strptime(found.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp() - started


def parse_log(text: str, started: float) -> dict[str, Any]:
    """What one start's log says: changelog records read and the longest partition's
    restore seconds (partitions restore side by side), keys loaded from local state,
    and the seconds from the start to the first assignment and to readiness."""
    lines = text.splitlines()
    restores = [found for found in map(RESTORED.search, lines) if found]
    loads = [found for found in map(LOADED.search, lines) if found]
    assigned = next((line for line in lines if ": assigned " in line), "")
    ready = next((line for line in lines if "worker ready" in line), "")
    return {
        "records": sum(int(found.group(3)) for found in restores),
        "keys_restored": sum(int(found.group(4)) for found in restores),
        "partitions_restored": len(restores),
        "restore_s": max((float(found.group(5)) for found in restores), default=None),
        "keys_loaded": sum(int(found.group(3)) for found in loads),
        "partitions_loaded": len(loads),
        "load_s": sum(float(found.group(5)) for found in loads),
        "local_state_dropped": DROPPED in text,
        "assigned_s": _since(assigned, started),
        "ready_s": _since(ready, started),
        "log_lines": [found.string for found in [*loads, *restores]],
    }


class Restarts:
    """A round of one store and one size, and its worker started case after case; a context
    manager that stops every worker it started and removes the round's topics and files."""

    def __init__(self, base: Settings, store: str, size: int, keep: Path | None = None) -> None:
        self.store, self.size, self.keep = store, size, keep
        self.space = Round(base, skus=size)  # one RegisterItem per sku: size aggregates
        # The changelog (<app id>-aggregates-changelog) and the consumer group are named by
        # the app id, not the topic prefix: an app id under the prefix keeps them private
        # (and deleted with the round's topics).
        self.app_id = f"{self.space.prefix}command-processor"
        self.datadir = self.space.state / "data"
        self.logs = self.space.state / "logs"
        self.logs.mkdir()
        self.running: Child | None = None
        self._children = ExitStack()
        self._producer = self.space.producer()
        self._starts = 0
        self._next = 0

    def __enter__(self) -> Restarts:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        try:
            self._children.close()  # SIGTERM (SIGKILL after 30 s) to any worker still alive
        finally:
            try:
                delete_topics(self.space.settings)
                self._delete_group()
            finally:
                if self.keep is not None:  # every start's log, for a post-mortem
                    name = f"{self.store.split(':')[0]}-{self.size}-{self.space.run}"
                    shutil.copytree(self.logs, self.keep / name, dirs_exist_ok=True)
                shutil.rmtree(self.space.state, ignore_errors=True)

    def _delete_group(self) -> None:
        """The worker's consumer group, if it is there and empty (else it expires)."""
        for future in self.space.admin.delete_consumer_groups([self.app_id]).values():
            with suppress(KafkaException):  # never joined, or a killed member not timed out
                future.result(30)

    def _env(self) -> dict[str, str]:
        return {
            "CQRS_KAFKA__TOPIC_PREFIX": self.space.prefix,
            "CQRS_PROCESSOR__APP_ID": self.app_id,
            "CQRS_PROCESSOR__STORE": self.store,
            "CQRS_PROCESSOR__DATADIR": str(self.datadir),
            "CQRS_OBSERVABILITY__PORT": "0",  # free port: other processes may run
            "CQRS_OBSERVABILITY__LOG_FORMAT": "text",  # parse_log reads text lines
            "CQRS_LOG_LEVEL": "INFO",
        }

    def _start(self, label: str) -> tuple[Child, float]:
        """A worker started now; with the epoch time taken just before its Popen."""
        self._starts += 1
        log = self.logs / f"{self._starts:02d}-{label}.log"
        started = time.time()
        running = self._children.enter_context(
            child([sys.executable, "-m", "cqrs", "worker"], log, self._env())
        )
        self.running = running
        return running, started

    def _reader(self, beginning: bool) -> Consumer:
        """A read_committed reader of command-results, assigned (no group to join) at the
        start of each partition or at its current end."""
        consumer = self.space.consumer()
        topic = self.space.topic("command-results")
        partitions = consumer.list_topics(topic, timeout=15).topics[topic].partitions
        places = []
        for partition in sorted(partitions):
            offset = OFFSET_BEGINNING
            if not beginning:
                _, offset = consumer.get_watermark_offsets(
                    TopicPartition(topic, partition), timeout=15
                )
            places.append(TopicPartition(topic, partition, offset))
        consumer.assign(places)
        return consumer

    def _adjust(self) -> str:
        """One AdjustStock command on the topic (flushed); its command id."""
        sku = self.space.skus[self._next % len(self.space.skus)]
        self._next += 1
        command_id, value = self.space.adjust(sku)
        self._producer.produce(self.space.topic("commands"), key=sku, value=value)
        if self._producer.flush(30):
            raise RuntimeError("an AdjustStock command was not delivered in 30 s")
        return command_id

    def _read(
        self,
        consumer: Consumer,
        running: Child,
        count: int,
        timeout_s: float,
        ids: set[str] | None = None,
    ) -> dict[str, tuple[float, float]]:
        """command id -> (epoch received, epoch appended by the broker) of ``count`` ACCEPTED
        results (of ``ids`` only, when given); RuntimeError, with the log's tail, when the
        worker exits or the results are not all there in ``timeout_s``."""
        found: dict[str, tuple[float, float]] = {}
        deadline = time.monotonic() + timeout_s
        batch = 1 if ids is not None and len(ids) == 1 else 5000  # 1: returns on arrival
        while len(found) < count:
            if running.process.poll() is not None:
                raise RuntimeError(
                    f"worker exited with {running.process.returncode}:\n{running.tail()}"
                )
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"{count - len(found)} of {count} results missing after {timeout_s:.0f} s:"
                    f"\n{running.tail()}"
                )
            for message in consumer.consume(batch, 0.05):
                received = time.time()
                command_id = (message.key() or b"").decode()
                if message.error() or (ids is not None and command_id not in ids):
                    continue
                result = self.space.serde.decode(message.value() or b"").value
                if result["status"] != "ACCEPTED":
                    raise RuntimeError(f"{command_id}: {result['status']} {result['rejection']}")
                found.setdefault(command_id, (received, message.timestamp()[1] / 1000))
        return found

    def register(self) -> float:
        """Seconds from the worker's start to all ``size`` RegisterItem results, read
        committed (the changelog then holds every aggregate); the worker keeps running."""
        consumer = self._reader(beginning=True)
        try:
            self.space.produce_backlog(self.size)  # skus == size: RegisterItem commands only
            running, started = self._start("register")
            found = self._read(consumer, running, self.size, 120 + self.size / 500)
        finally:
            consumer.close()
        return max(received for received, _ in found.values()) - started

    def _answered(self, label: str, timeout_s: float) -> dict[str, Any]:
        consumer = self._reader(beginning=False)
        try:
            command_id = self._adjust()  # waiting on the topic as the worker starts
            running, started = self._start(label)
            found = self._read(consumer, running, 1, timeout_s, {command_id})
        finally:
            consumer.close()
        received, appended = found[command_id]
        log = running.log.read_text(errors="replace")
        return {"seconds": received - started, "appended_s": appended - started} | parse_log(
            log, started
        )

    def ensure_running(self) -> None:
        """A worker that has answered a command (started, untimed, if none is running)."""
        if self.running is None or self.running.process.poll() is not None:
            self._answered("warm", 120 + self.size / 5000)

    def stop(self, kill: bool = False) -> float:
        """Stop the running worker (SIGKILL, or SIGTERM and its exit); seconds it took."""
        running, self.running = self.running, None
        if running is None or running.process.poll() is not None:
            return 0.0
        started = time.monotonic()
        if kill:
            running.process.kill()
            running.process.wait()
            return time.monotonic() - started
        running.process.terminate()
        try:
            running.process.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            running.process.kill()
            running.process.wait()
            raise RuntimeError(
                f"worker ignored SIGTERM for {STOP_TIMEOUT_S:.0f} s:\n{running.tail()}"
            ) from None
        return time.monotonic() - started

    def restart(self, case: str) -> dict[str, Any]:
        """One timed restart: ``case`` is sigkill, clean or cold (see the module)."""
        self.ensure_running()
        stop_s = self.stop(kill=case == "sigkill")
        if case == "cold":
            shutil.rmtree(self.datadir)
        figures = self._answered(case, 90 + self.size / 5000)
        figures["stop_s"] = stop_s
        if case == "cold" and figures["restore_s"]:
            figures["restore_per_second"] = figures["records"] / figures["restore_s"]
        return figures
