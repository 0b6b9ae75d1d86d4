"""One trace from the client through the worker's decision to a sink's write.

The worker and the sink are the real ``cqrs worker`` and ``cqrs sink run``
processes with ``CQRS_OBSERVABILITY__TRACING=file``: both append their spans
to one JSON-lines file. The client runs in this process with an in-memory
exporter. The trace crosses two Kafka topics in ``traceparent`` headers.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from core.settings import Settings
from cqrs.client import CommandClient
from tests.integration.pipeline import Pipeline, wait_until
from tests.integration.sink_support import drop_read_models

PROJECTION = "inventory-levels"
SINK = f"cqrs-sink-{PROJECTION}"  # the sink process's service name


@pytest.fixture(scope="module")
def traced(
    local_stack: Settings, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Pipeline, Path]]:
    created = Pipeline.create(
        local_stack, tmp_path_factory.mktemp("logs"), tmp_path_factory.mktemp("state")
    )
    traces = tmp_path_factory.mktemp("traces") / "traces.jsonl"
    schema = f"rm_{uuid.uuid4().hex[:8]}"
    env = {
        **created.env,
        "CQRS_SINKS__POSTGRES_SCHEMA": schema,
        "CQRS_OBSERVABILITY__TRACING": "file",
        "CQRS_OBSERVABILITY__TRACES_FILE": str(traces),
        "OTEL_BSP_SCHEDULE_DELAY": "100",  # exported within 0.1 s rather than 5 s
    }
    settings = created.settings.model_copy(
        update={"sinks": created.settings.sinks.model_copy(update={"postgres_schema": schema})}
    )
    pipeline = Pipeline(settings, env, created.logs)
    worker = pipeline.process("worker", name="worker")
    sink = pipeline.process("sink", "run", PROJECTION, name="sink", ready="consuming")
    worker.start()
    sink.start()
    try:
        yield pipeline, traces
    finally:
        sink.stop()
        worker.stop()
        drop_read_models(settings)


def spans_of(traces: Path, trace_id: str) -> list[dict[str, Any]]:
    if not traces.exists():
        return []
    found = [json.loads(line) for line in traces.read_text().splitlines()]
    return [span for span in found if span["trace_id"] == trace_id]


def test_one_trace_links_the_send_the_decision_and_the_sink_write(
    traced: tuple[Pipeline, Path], spans: InMemorySpanExporter
) -> None:
    pipeline, traces = traced
    sku, correlation = f"sku-{uuid.uuid4().hex[:6]}", f"corr-{uuid.uuid4().hex[:6]}"
    with CommandClient(pipeline.settings) as client:
        result = client.send_and_wait(
            "RegisterItem", sku, {"name": "Mug"}, correlation_id=correlation
        )
        assert result.accepted
        assert client.wait_for_projection(PROJECTION, sku, 1, timeout_s=60) >= 1

    (send,) = spans.get_finished_spans()
    assert send.name == "cqrs.client.send RegisterItem"
    trace_id = f"{send.context.trace_id:032x}"

    def decision_and_write() -> list[dict[str, Any]]:
        found = spans_of(traces, trace_id)
        return found if {s["service"] for s in found} >= {"cqrs-worker", SINK} else []

    written = wait_until(decision_and_write, 30, "the worker's and the sink's spans")
    (decide,) = [s for s in written if s["service"] == "cqrs-worker"]
    (write,) = [s for s in written if s["service"] == SINK]

    assert decide["name"] == "cqrs.worker.decide RegisterItem"
    assert decide["kind"] == "CONSUMER"
    assert decide["parent_span_id"] == f"{send.context.span_id:016x}"
    assert decide["attributes"]["cqrs.correlation_id"] == correlation
    assert decide["attributes"]["cqrs.command_id"] == result.command_id
    assert decide["attributes"]["cqrs.aggregate_id"] == sku
    assert decide["attributes"]["cqrs.result"] == "accepted"
    assert decide["attributes"]["cqrs.version"] == 1
    assert decide["attributes"]["messaging.system"] == "kafka"

    assert write["name"] == f"cqrs.sink.write {PROJECTION}"
    assert write["parent_span_id"] == decide["span_id"]  # the batch held this command only
    assert {"trace_id": trace_id, "span_id": decide["span_id"]} in write["links"]
    assert write["attributes"]["messaging.batch.message_count"] >= 1
