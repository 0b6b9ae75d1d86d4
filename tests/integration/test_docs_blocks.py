"""The documents' runnable blocks, run on the real stack as they are written.

Each test takes its block from the document (tests/doc_blocks.py), so an edit
to a block is run as edited. ``cqrs X`` runs as ``python -m cqrs X`` with the
module's own topic prefix, read-model schema and index prefix; a block's
``cqrs worker &`` or long-running sink is the module's background process.
Python blocks run as written, their topic and group names prefixed.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from core.settings import Settings
from cqrs.cli import EXIT_REJECTED
from cqrs.client import CommandClient
from tests.doc_blocks import ROOT, Block, block, shell_commands
from tests.integration.pipeline import Pipeline, WorkerProcess, answers_ok, wait_until
from tests.integration.query_support import ADDRESS, drop_indices, free_port
from tests.integration.sink_support import drop_read_models

WIDE = {"COLUMNS": "200"}  # rich tables keep their headers whole


@pytest.fixture(scope="module")
def pipeline(local_stack: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pipeline]:
    created = Pipeline.create(
        local_stack, tmp_path_factory.mktemp("logs"), tmp_path_factory.mktemp("state")
    )
    run = uuid.uuid4().hex[:8]
    env = {
        **created.env,
        **WIDE,
        "CQRS_SINKS__POSTGRES_SCHEMA": f"rm_{run}",
        "CQRS_SEARCH__INDEX_PREFIX": f"d{run}",
        "CQRS_SEARCH__REPLICAS": "0",
    }
    settings = created.settings.model_copy(
        update={
            "sinks": created.settings.sinks.model_copy(update={"postgres_schema": f"rm_{run}"}),
            "search": created.settings.search.model_copy(
                update={"index_prefix": f"d{run}", "replicas": 0}
            ),
        }
    )
    pipeline = Pipeline(settings, env, created.logs)
    with pipeline.running("worker"):
        yield pipeline
    drop_read_models(settings)
    drop_indices(settings)


@pytest.fixture(scope="module")
def sink(pipeline: Pipeline) -> Iterator[WorkerProcess]:
    """read-side.md's ``cqrs sink run order-summary`` (long-running)."""
    process = pipeline.process(
        "sink", "run", "order-summary", name="sink", ready="sink order-summary assigned"
    )
    process.start()
    yield process
    process.stop()


def _cli(pipeline: Pipeline, command: str, expect: int = 0) -> subprocess.CompletedProcess[str]:
    words = shlex.split(command)
    assert words[0] == "cqrs", command
    done = pipeline.cli(*words[1:])
    assert done.returncode == expect, f"{command}\n{done.stdout}\n{done.stderr[-3000:]}"
    return done


def _prefixed(pipeline: Pipeline, source: str, *names: str) -> str:
    """The block's code with the module's prefix on these topic, subject and group names."""
    prefix = pipeline.settings.kafka.topic_prefix
    for name in names:
        source = source.replace(f'"{name}', f'"{prefix}{name}')
    return source


def _run_python(pipeline: Pipeline, source: str, timeout_s: float = 60) -> str:
    done = subprocess.run(
        [sys.executable, "-c", source],
        env={**os.environ, **pipeline.env},
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def _result(pipeline: Pipeline, command_id: str) -> dict[str, Any]:
    def answer() -> dict[str, Any]:
        for key, value, _ in pipeline.read("command-results"):
            if key == command_id.encode():
                return dict(pipeline.serde().decode(value).value)
        return {}

    return wait_until(answer, timeout_s=30, what=f"the result of {command_id}")


def test_the_schema_commands_run(pipeline: Pipeline) -> None:
    shown = block(
        "docs/contracts.md",
        "cqrs schemas list",
    )
    listed, registered, checked = (_cli(pipeline, c) for c in shell_commands(shown))
    offline = _cli(pipeline, "cqrs schemas list --offline --json")
    subject = f"{pipeline.settings.kafka.topic_prefix}commands-cqrs.commands.RegisterItem"
    assert subject in listed.stdout and subject in offline.stdout
    assert registered.returncode == checked.returncode == 0


def test_the_send_commands_answer_as_shown(pipeline: Pipeline) -> None:
    shown = block("docs/write-side.md", "cqrs worker &")
    expected = [
        (found[1], found[2])
        if (found := re.search(r"# (REJECTED): (\w+)", line))
        else ("ACCEPTED", None)
        for line in shown.text.splitlines()[1:]
    ]
    worker, *sends = shell_commands(shown)
    assert worker == "cqrs worker &"  # the module's worker
    for command, (status, code) in zip(sends, expected, strict=True):
        done = _cli(pipeline, command, expect=EXIT_REJECTED if status == "REJECTED" else 0)
        result = json.loads(done.stdout)
        assert (result["status"], result.get("rejection_code")) == (status, code), command


def test_the_external_producer_is_answered(pipeline: Pipeline) -> None:
    shown = block("docs/write-side.md", "from datetime import UTC, datetime")
    _run_python(pipeline, _prefixed(pipeline, shown.text, "commands"))
    result = _result(pipeline, "3f0c9a4e-0001")
    # Decided by the worker: accepted, or refused when sku-1 was registered by the block above.
    assert result["aggregate_id"] == "sku-1"
    rejection = result["rejection"] or {}
    assert (result["status"], rejection.get("code")) in {
        ("ACCEPTED", None),
        ("REJECTED", "ITEM_ALREADY_REGISTERED"),
    }, result


def test_lag_prints_the_columns_shown(pipeline: Pipeline) -> None:
    shown = block("docs/observability.md", "$ cqrs lag")
    [command] = shell_commands(shown)
    header = next(line for line in shown.text.splitlines() if "group" in line)
    columns = re.findall(r"\w[\w ]*\w", header)
    printed = _cli(pipeline, command).stdout
    printed_header = next(line for line in printed.splitlines() if "group" in line)
    assert re.findall(r"\w[\w ]*\w", printed_header) == columns, printed
    assert pipeline.settings.processor.app_id in printed


def test_the_projection_commands_run(pipeline: Pipeline, sink: WorkerProcess) -> None:
    listed, migrated, running, rebuilt = shell_commands(
        block(
            "docs/read-side.md",
            "cqrs projections list",
        )
    )
    assert running == "cqrs sink run order-summary"  # the module's sink
    assert "order-summary" in _cli(pipeline, listed).stdout
    _cli(pipeline, migrated)
    _cli(pipeline, rebuilt)
    assert sink.process is not None and sink.process.poll() is None, sink.tail()


def test_the_read_your_writes_example_waits(pipeline: Pipeline, sink: WorkerProcess) -> None:
    shown = block(
        "docs/read-side.md", 'result = client.send_and_wait("PlaceOrder", order_id, payload)'
    )
    order_id = f"order-{uuid.uuid4().hex[:6]}"
    payload = {
        "customer_id": "c-2",
        "lines": [{"sku": "sku-1", "quantity": 1, "unit_price_cents": 1250}],
        "shipping_address": ADDRESS,
    }
    with CommandClient(pipeline.settings) as client:
        namespace: dict[str, Any] = {"client": client, "order_id": order_id, "payload": payload}
        exec(shown.text, namespace)
    assert namespace["result"].accepted and namespace["result"].version == 1


DRIVER = """
import json, os, sys, threading, time
namespace = {}
threading.Thread(target=exec, args=(sys.stdin.read(), namespace), daemon=True).start()
deadline = time.monotonic() + 40
while time.monotonic() < deadline and not namespace.get("orders"):
    time.sleep(0.2)
print(json.dumps({k.decode(): v["version"] for k, v in dict(namespace.get("orders", {})).items()}))
sys.stdout.flush()
os._exit(0)  # the block's loop never ends: it is a service
"""


def test_the_downstream_consumer_reads_the_views(pipeline: Pipeline, sink: WorkerProcess) -> None:
    shown = block("docs/read-side.md", "from confluent_kafka import Consumer")
    source = _prefixed(pipeline, shown.text, "order-summary", "order-dashboard")
    done = subprocess.run(
        [sys.executable, "-c", DRIVER],
        input=source,
        env={**os.environ, **pipeline.env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    views = json.loads(done.stdout)
    assert "order-1" in views and views["order-1"] >= 1, done.stdout


def _http(shown: Block) -> tuple[str, str, dict[str, str], str]:
    head, _, body = shown.text.partition("\n{")
    request, *headers = head.splitlines()
    method, path = request.split(" ", 1)
    fields = dict(line.split(": ", 1) for line in headers)
    return method, path, fields, ("{" + body).strip() if body else ""


def test_the_query_requests_answer(
    pipeline: Pipeline, sink: WorkerProcess, tmp_path_factory: pytest.TempPathFactory
) -> None:
    port = free_port()
    server = pipeline.process(
        "query", "serve", "--port", str(port), name="query", ready="query service on"
    )
    server.start()
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: answers_ok(f"{base}/readyz"), 60, "query service ready")
        method, path, _, _ = _http(
            block(
                "docs/query.md",
                "GET /projections/order-summary?",
            )
        )
        listed = httpx.request(method, base + path, timeout=30)
        assert listed.status_code == 200 and "items" in listed.json(), listed.text

        method, path, headers, body = _http(block("docs/query.md", "POST /commands/AdjustStock"))
        command = json.loads(body)
        with CommandClient(pipeline.settings) as client:  # MUG-01 at the version the body expects
            client.send_and_wait("RegisterItem", command["aggregate_id"], {"name": "Mug"})
            for _ in range(command["expected_version"] - 1):
                client.send_and_wait(
                    "AdjustStock", command["aggregate_id"], {"delta": 1, "reason": "RESTOCK"}
                )
        headers["Idempotency-Key"] = str(uuid.uuid4())  # the block's is elided
        sent = httpx.request(method, base + path, headers=headers, content=body, timeout=60)
        assert sent.status_code == 200, sent.text
        assert (sent.json()["status"], sent.json()["version"]) == (
            "ACCEPTED",
            command["expected_version"] + 1,
        )
    finally:
        server.stop()


def test_the_library_domain_runs_as_shown(
    local_stack: Settings, tmp_path_factory: pytest.TempPathFactory
) -> None:
    export, register, *workers, send = shell_commands(
        block(
            "docs/domain.md",
            "export CQRS_DOMAIN=library",
        )
    )
    domain = export.removeprefix("export CQRS_DOMAIN=")
    created = Pipeline.create(
        local_stack,
        tmp_path_factory.mktemp("logs"),
        tmp_path_factory.mktemp("state"),
        domain=domain,
    )
    importable = os.pathsep.join([str(ROOT / "tests"), str(ROOT)])  # `library` is tests/library
    library = Pipeline(created.settings, {**created.env, "PYTHONPATH": importable}, created.logs)
    _cli(library, register)
    # One command processor per aggregate type, in the background as the block shows.
    assert workers == [
        "cqrs worker --aggregate Book &",
        "cqrs worker --aggregate Member &",
    ]
    commands = [line.removeprefix("cqrs ").removesuffix(" &") for line in workers]
    with library.running(*commands):
        result = json.loads(_cli(library, send).stdout)
    assert (result["status"], result["version"]) == ("ACCEPTED", 1)
