"""`cqrs worker` serves /livez, /readyz and /metrics, with readiness from its state restore."""

from __future__ import annotations

import re
from collections.abc import Iterator

import httpx
import pytest
from confluent_kafka import Producer

from core.settings import Settings
from cqrs.client import CommandClient
from tests.integration.pipeline import Pipeline, WorkerProcess, wait_until

ENDPOINTS = re.compile(r"metrics and health endpoints on (http://\S+) ")


@pytest.fixture(scope="module")
def pipeline(local_stack: Settings, tmp_path_factory: pytest.TempPathFactory) -> Pipeline:
    return Pipeline.create(
        local_stack, tmp_path_factory.mktemp("logs"), tmp_path_factory.mktemp("data"), 2
    )


@pytest.fixture(scope="module")
def worker(pipeline: Pipeline) -> Iterator[WorkerProcess]:
    process = pipeline.process("worker", name="worker")
    process.start()
    yield process
    process.stop()


def endpoints_of(process: WorkerProcess) -> str:
    found = ENDPOINTS.search(process.output())
    assert found, f"no endpoints line in the worker's log:\n{process.tail()}"
    return found.group(1)


def sample(metrics_text: str, name: str, labels: str = "") -> float:
    pattern = re.escape(name + (f"{{{labels}}}" if labels else "")) + r" ([0-9.e+-]+)"
    found = re.search(pattern, metrics_text)
    return float(found.group(1)) if found else 0.0


def test_a_recovered_worker_is_live_and_ready(worker: WorkerProcess) -> None:
    url = endpoints_of(worker)
    assert httpx.get(f"{url}/livez").status_code == 200

    def ready_answer() -> str:
        response = httpx.get(f"{url}/readyz")
        return response.text if response.status_code == 200 else ""

    assert wait_until(ready_answer, what="the worker to report ready") == "ok\n"


def test_commands_and_transaction_commits_are_counted(
    worker: WorkerProcess, pipeline: Pipeline
) -> None:
    url = endpoints_of(worker)
    client = CommandClient(pipeline.settings)
    try:
        accepted = client.send_and_wait(
            "RegisterItem", "sku-observed", {"name": "Mug"}, timeout_s=60
        )
        rejected = client.send_and_wait(
            "AdjustStock",
            "sku-observed",
            {"delta": 1, "reason": "RESTOCK"},
            expected_version=7,
            timeout_s=60,
        )
    finally:
        client.close()
    assert (accepted.accepted, rejected.accepted) == (True, False)
    producer = Producer(pipeline.settings.kafka.confluent_config())
    producer.produce(pipeline.settings.kafka.topic_prefix + "commands", b"not avro", b"sku-x")
    producer.flush(10)

    def counted() -> str:
        text = httpx.get(f"{url}/metrics").text
        done = sample(text, "cqrs_commands_total", 'outcome="dead_lettered"') >= 1
        return text if done else ""

    text = wait_until(counted, what="the dead-lettered record to be counted")
    assert sample(text, "cqrs_commands_total", 'outcome="accepted"') == 1
    assert sample(text, "cqrs_commands_total", 'outcome="rejected"') == 1
    assert sample(text, "cqrs_dead_letters_total", 'component="command-processor"') == 1
    assert sample(text, "cqrs_transaction_commit_seconds_count") >= 1
    assert sample(text, "cqrs_transaction_commit_seconds_sum") > 0
