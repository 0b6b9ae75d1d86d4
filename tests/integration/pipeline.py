"""Helpers for tests that run the product's own processes against the real stack.

``Pipeline`` gives one test module its own topic prefix and app ids, so its
workers, topics and consumer groups never meet another module's. Worker
processes are the real ``python -m cqrs ...`` commands, started as
subprocesses with the pipeline's environment.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from confluent_kafka import Consumer

from core.domain import load_domain
from core.settings import Settings
from cqrs.children import WORKER_READY
from schemas.catalog import SchemaCatalog
from schemas.registry_client import RegistryClient
from schemas.serde import AvroSerde

Record = tuple[bytes, bytes, list[tuple[str, bytes]]]  # key, value, headers
T = TypeVar("T")


@dataclass(frozen=True)
class Pipeline:
    """An isolated namespace of the product on the shared stack."""

    settings: Settings
    env: dict[str, str]
    logs: Path

    @classmethod
    def create(
        cls,
        stack: Settings,
        logs: Path,
        datadir: Path,
        partitions: int = 3,
        bootstrap: str | None = None,
        replication_factor: int = 1,
        domain: str = "aggregates.shop:domain",
    ) -> Pipeline:
        """``bootstrap`` points the pipeline at another Kafka cluster than the stack's (the
        stack's registry still serves the schemas)."""
        run = uuid.uuid4().hex[:8]
        prefix = f"p{run}-"
        servers = bootstrap or stack.kafka.bootstrap_servers
        env = {
            "CQRS_DOMAIN": domain,
            "CQRS_KAFKA__BOOTSTRAP_SERVERS": servers,
            "CQRS_PROCESSOR__REPLICATION_FACTOR": str(replication_factor),
            "CQRS_KAFKA__TOPIC_PREFIX": prefix,
            "CQRS_PROCESSOR__APP_ID": f"p{run}-commands",
            "CQRS_PROCESSOR__PROCESS_MANAGER_APP_ID": f"p{run}-{{name}}",
            "CQRS_PROCESSOR__PARTITIONS": str(partitions),
            "CQRS_PROCESSOR__DATADIR": str(datadir),
            # Several processes share this host: each serves /metrics on a free port.
            "CQRS_OBSERVABILITY__PORT": "0",
        }
        settings = stack.model_copy(
            update={
                "domain": domain,
                "kafka": stack.kafka.model_copy(
                    update={"topic_prefix": prefix, "bootstrap_servers": servers}
                ),
                "processor": stack.processor.model_copy(
                    update={
                        "replication_factor": replication_factor,
                        "app_id": env["CQRS_PROCESSOR__APP_ID"],
                        "process_manager_app_id": env["CQRS_PROCESSOR__PROCESS_MANAGER_APP_ID"],
                        "partitions": partitions,
                        "datadir": datadir,
                    }
                ),
            }
        )
        return cls(settings, env, logs)

    @contextmanager
    def running(self, *commands: str) -> Iterator[Pipeline]:
        """The pipeline with these workers (``worker``, ``saga``, ``worker --aggregate X``)
        running, then stopped."""
        workers = [
            self.process(*command.split(), name=command.replace(" ", "")) for command in commands
        ]
        try:
            for worker in workers:
                worker.start()
            yield self
        finally:
            for worker in reversed(workers):
                worker.stop()

    def process(self, *command: str, name: str, ready: str = WORKER_READY) -> WorkerProcess:
        return WorkerProcess(list(command), self.env, self.logs / f"{name}.log", ready)

    def cli(self, *arguments: str, timeout_s: float = 120) -> subprocess.CompletedProcess[str]:
        """A one-shot ``cqrs`` command against this pipeline, run to its end."""
        return subprocess.run(
            [sys.executable, "-m", "cqrs", *arguments],
            env={**os.environ, **self.env},
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
        )

    def serde(self) -> AvroSerde:
        domain = load_domain(self.settings.domain)
        catalog = SchemaCatalog.for_domain(domain)
        return AvroSerde(RegistryClient(self.settings.registry), catalog, domain.upcasters)

    def read(self, topic: str, idle_s: float = 2.0) -> list[Record]:
        return read_topic(self.settings, self.settings.kafka.topic_prefix + topic, idle_s)

    def events(self, aggregate_id: str | None = None) -> list[dict[str, Any]]:
        """Decoded events (of one aggregate, or all), in log order per partition."""
        serde = self.serde()
        decoded = [
            serde.decode(value)
            for topic in load_domain(self.settings.domain).event_topics
            for key, value, _ in self.read(topic)
            if aggregate_id is None or key == aggregate_id.encode()
        ]
        return [{"type": d.full_name.rsplit(".", 1)[-1], **d.value} for d in decoded]


class WorkerProcess:
    """One product process (``python -m cqrs <command>``) with its output in a log file."""

    def __init__(self, command: list[str], env: dict[str, str], log: Path, ready: str) -> None:
        self.command, self.env, self.log, self.ready = command, env, log, ready
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout_s: float = 120) -> None:
        offset = self.log.stat().st_size if self.log.exists() else 0
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "cqrs", *self.command],
                env={**os.environ, **self.env},
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout_s
        while self.ready not in self.output(offset):
            assert self.process.poll() is None, f"{self.command} exited:\n{self.tail()}"
            assert time.monotonic() < deadline, f"{self.command} not ready:\n{self.tail()}"
            time.sleep(0.3)

    def output(self, offset: int = 0) -> str:
        with self.log.open("rb") as log:
            log.seek(offset)
            return log.read().decode(errors="replace")

    def tail(self) -> str:
        return self.output()[-4000:]

    def kill(self) -> None:
        """SIGKILL: no shutdown hooks, no final commit — a crash."""
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(30)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(60)
            except subprocess.TimeoutExpired:
                self.kill()


def read_topic(settings: Settings, topic: str, idle_s: float = 2.0) -> list[Record]:
    """Every committed record of ``topic``, read until nothing arrives for ``idle_s``."""
    consumer = Consumer(
        {
            **settings.kafka.confluent_config(),
            "group.id": uuid.uuid4().hex,
            "auto.offset.reset": "earliest",
            "isolation.level": "read_committed",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe([topic])
    records: list[Record] = []
    last = time.monotonic()
    try:
        while time.monotonic() - last < idle_s:
            message = consumer.poll(0.3)
            if message is None or message.error():
                continue
            headers = [
                (str(header[0]), header[1] if isinstance(header[1], bytes) else b"")
                for header in message.headers() or []
            ]
            records.append((message.key() or b"", message.value() or b"", headers))
            last = time.monotonic()
    finally:
        consumer.close()
    return records


def answers_ok(url: str) -> bool:
    """Whether ``url`` answers 200 now; a server not listening yet is a no, not an error."""
    import httpx

    try:
        return httpx.get(url, timeout=5).status_code == 200
    except httpx.TransportError:
        return False


def wait_until(condition: Callable[[], T], timeout_s: float = 60, what: str = "condition") -> T:
    """Poll ``condition()`` until it returns something truthy; that value is returned."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = condition()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out after {timeout_s:.0f}s waiting for {what}"
        time.sleep(0.5)
