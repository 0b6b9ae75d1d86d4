"""The embedded registry keeps ids, versions and modes across a restart (state is in Kafka)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from confluent_kafka.admin import AdminClient

from core.settings import Settings


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class RegistryProcess:
    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.env, self.log = env, log
        self.url = env["CQRS_REGISTRY__URL"]
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> httpx.Client:
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "cqrs", "registry"],
                env={**os.environ, **self.env},
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        client = httpx.Client(base_url=self.url, timeout=5)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert self.process.poll() is None, self.log.read_text()[-2000:]
            try:
                if client.get("/config").status_code == 200:
                    return client
            except httpx.HTTPError:
                time.sleep(0.2)
        raise AssertionError(f"registry did not start:\n{self.log.read_text()[-2000:]}")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(30)


@pytest.fixture
def registry_process(
    local_stack: Settings, unique_name: Callable[[str], str], tmp_path: Path
) -> Iterator[RegistryProcess]:
    topic = unique_name("_schemas")
    process = RegistryProcess(
        {
            "CQRS_REGISTRY__URL": f"http://127.0.0.1:{_free_port()}",
            "CQRS_REGISTRY__SCHEMAS_TOPIC": topic,
            "CQRS_OBSERVABILITY__PORT": "0",
        },
        tmp_path / "registry.log",
    )
    yield process
    process.stop()
    admin = AdminClient(local_stack.kafka.confluent_config())
    admin.delete_topics([topic])[topic].result(30)


def schema(*fields: str) -> str:
    return json.dumps(
        {
            "type": "record",
            "name": "R",
            "namespace": "restart",
            "fields": [{"name": f, "type": "string", "default": ""} for f in fields],
        }
    )


def snapshot(http: httpx.Client) -> dict[str, object]:
    subjects = http.get("/subjects?deleted=true").json()
    return {
        "subjects": subjects,
        "versions": {s: http.get(f"/subjects/{s}/versions?deleted=true").json() for s in subjects},
        "ids": {
            s: [
                http.get(f"/subjects/{s}/versions/{v}?deleted=true").json()["id"]
                for v in http.get(f"/subjects/{s}/versions?deleted=true").json()
            ]
            for s in subjects
        },
        "live": http.get("/subjects").json(),
        "modes": {s: http.get(f"/config/{s}?defaultToGlobal=true").json() for s in subjects},
    }


def test_ids_versions_and_modes_survive_a_restart(registry_process: RegistryProcess) -> None:
    http = registry_process.start()
    http.put("/config/a", json={"compatibility": "FULL"})
    ids = [
        http.post("/subjects/a/versions", json={"schema": schema("x")}).json()["id"],
        http.post("/subjects/a/versions", json={"schema": schema("x", "y")}).json()["id"],
        http.post("/subjects/b/versions", json={"schema": schema("x")}).json()["id"],
        http.post("/subjects/c/versions", json={"schema": schema("z")}).json()["id"],
    ]
    http.delete("/subjects/c")
    before = snapshot(http)
    registry_process.stop()

    http = registry_process.start()

    assert ids == [1, 2, 1, 3]
    assert snapshot(http) == before
    assert http.get("/subjects").json() == ["a", "b"]
    assert http.post("/subjects/b/versions", json={"schema": schema("q")}).json()["id"] == 4
