"""`cqrs registry` serves /livez, /readyz and /metrics beside its REST API."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from confluent_kafka.admin import AdminClient

from core.settings import Settings
from tests.integration.pipeline import wait_until


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def registry_with_endpoints(
    local_stack: Settings, unique_name: Callable[[str], str], tmp_path: Path
) -> Iterator[tuple[str, str]]:
    topic = unique_name("_schemas")
    api, observability = free_port(), free_port()
    env = {
        "CQRS_REGISTRY__URL": f"http://127.0.0.1:{api}",
        "CQRS_REGISTRY__SCHEMAS_TOPIC": topic,
        "CQRS_OBSERVABILITY__HOST": "127.0.0.1",
        "CQRS_OBSERVABILITY__PORT": str(observability),
    }
    with (tmp_path / "registry.log").open("ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "cqrs", "registry"],
            env={**os.environ, **env},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        yield f"http://127.0.0.1:{api}", f"http://127.0.0.1:{observability}"
    finally:
        process.terminate()
        process.wait(30)
        admin = AdminClient(local_stack.kafka.confluent_config())
        admin.delete_topics([topic])[topic].result(30)


def answer(url: str) -> str:
    try:
        response = httpx.get(url, timeout=3)
    except httpx.HTTPError:
        return ""
    return response.text if response.status_code == 200 else ""


def test_the_registry_is_ready_once_it_serves_its_api(
    registry_with_endpoints: tuple[str, str],
) -> None:
    api, endpoints = registry_with_endpoints
    assert wait_until(lambda: answer(f"{endpoints}/readyz"), what="registry /readyz") == "ok\n"
    assert httpx.get(f"{api}/config").status_code == 200
    assert httpx.get(f"{endpoints}/livez").status_code == 200
    metrics = httpx.get(f"{endpoints}/metrics").text
    assert "process_resident_memory_bytes" in metrics
    assert "# TYPE cqrs_dead_letters_total counter" in metrics
