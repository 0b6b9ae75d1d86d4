"""The query service on the real stack for tests: a worker, sinks and ``cqrs query serve``.

Each test module that uses these fixtures gets its own topic prefix, read-model
schema and index prefix (``Pipeline``), three API keys (read, command+read,
admin+all) and its own query service process on a free port.
"""

from __future__ import annotations

import json
import socket
import uuid
from collections.abc import Iterator

import httpx
import pytest

from core.settings import Settings
from tests.integration.pipeline import Pipeline, WorkerProcess, answers_ok, wait_until
from tests.integration.sink_support import drop_read_models

READ_KEY = "read-key-0123456789abcdef"
COMMAND_KEY = "command-key-0123456789abcdef"
ADMIN_KEY = "admin-key-0123456789abcdef"
ADDRESS = {"name": "Ada", "street": "1 Loop", "city": "Paris", "postal_code": "1", "country": "FR"}
PROBLEM = "application/problem+json"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="module")
def pipeline(local_stack: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pipeline]:
    created = Pipeline.create(
        local_stack, tmp_path_factory.mktemp("logs"), tmp_path_factory.mktemp("state")
    )
    run = uuid.uuid4().hex[:8]
    schema = f"rm_{run}"
    keys = [
        {"name": "reader", "key": READ_KEY, "scopes": ["read"]},
        {"name": "writer", "key": COMMAND_KEY, "scopes": ["command", "read"]},
        {"name": "operator", "key": ADMIN_KEY, "scopes": ["admin", "read", "command"]},
    ]
    env = {
        **created.env,
        "CQRS_SINKS__POSTGRES_SCHEMA": schema,
        "CQRS_SEARCH__INDEX_PREFIX": f"q{run}",
        "CQRS_SEARCH__REPLICAS": "0",
        "CQRS_QUERY__API_KEYS": json.dumps(keys),
        "CQRS_QUERY__MAX_WAIT_S": "20",
    }
    settings = created.settings.model_copy(
        update={
            "sinks": created.settings.sinks.model_copy(update={"postgres_schema": schema}),
            "search": created.settings.search.model_copy(
                update={"index_prefix": f"q{run}", "replicas": 0}
            ),
        }
    )
    pipeline = Pipeline(settings, env, created.logs)
    worker = pipeline.process("worker", name="worker")
    worker.start()
    yield pipeline
    worker.stop()
    drop_read_models(settings)
    drop_indices(settings)


def drop_indices(settings: Settings) -> None:
    """Delete the test's index generations (named one by one: wildcards may be refused)."""
    url = settings.search.url
    prefix = settings.search.index_prefix
    listed = httpx.get(f"{url}/_cat/indices/{prefix}-*", params={"format": "json"}, timeout=30)
    for index in listed.json() if listed.status_code == 200 else []:
        httpx.delete(f"{url}/{index['index']}", timeout=30)


@pytest.fixture(scope="module")
def sinks(pipeline: Pipeline) -> Iterator[WorkerProcess]:
    process = pipeline.process(
        "sink",
        "run",
        "order-summary",
        "inventory-levels",
        "search-orders",
        name="sinks",
        ready="consuming",
    )
    process.start()
    yield process
    process.stop()


@pytest.fixture(scope="module")
def api(pipeline: Pipeline, sinks: WorkerProcess) -> Iterator[httpx.Client]:
    port = free_port()
    server = pipeline.process(
        "query", "serve", "--port", str(port), name="query", ready="query service on"
    )
    server.start()
    base = f"http://127.0.0.1:{port}"
    wait_until(lambda: answers_ok(f"{base}/readyz"), 60, "query service ready")
    with httpx.Client(base_url=base, timeout=60) as client:
        yield client
    server.stop()
