"""Tracing: trace context through Kafka headers, the worker's decision span, a sink's
batch span, the file exporter, and nothing at all while tracing is off."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from confluent_kafka import Message
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, format_span_id, format_trace_id
from pydantic import ValidationError

from core import tracing
from core.domain import Observation
from core.settings import ObservabilitySettings
from core.trace_file import JsonLinesSpanExporter
from cqrs.tracing import SendTracing
from processors.command_processing import Envelope, IncomingCommand, Outcome
from processors.command_task import CommandTask
from processors.process_manager import Observed
from processors.state import StateReader
from processors.tracing import ReactionTracing
from sinks.tracing import BatchTracing

TOPICS = {
    "commands": "commands",
    "events": "events",
    "command-results": "command-results",
    "commands-dlq": "commands-dlq",
}


class StubProcessor:
    """Decides every command the same way: two events, accepted, version 2."""

    def read(self, value: bytes | None) -> IncomingCommand:
        envelope = Envelope("cmd-1", "o-1", "corr-1", "cause-1", None, datetime.now(UTC), "test")
        kind: Any = SimpleNamespace(name="Order")
        return IncomingCommand("cqrs.commands.PlaceOrder", kind, object(), envelope, b"Order:o-1")

    def check_placement(self, incoming: IncomingCommand, key: bytes | None, partition: int) -> None:
        pass

    def process(self, incoming: IncomingCommand, table: Any) -> Outcome:
        events = [(b"o-1", b"e1"), (b"o-1", b"e2")]
        return Outcome(events, b"cmd-1", b"result", "accepted", [], version=2)


def command_task() -> CommandTask:
    return CommandTask(StubProcessor(), TOPICS, "app")  # type: ignore[arg-type]


def command_message(headers: list[tuple[str, str | bytes | None]] | None) -> Message:
    return Message(topic="commands", partition=0, offset=7, key=b"o-1", value=b"x", headers=headers)


def state() -> StateReader:
    return StateReader({}, {})


def test_trace_context_crosses_kafka_headers(spans: InMemorySpanExporter) -> None:
    tracer = tracing.tracer()
    assert tracer is not None
    with tracer.start_as_current_span("parent") as parent:
        headers = tracing.headers_for(parent)
    assert [name for name, _ in headers] == ["traceparent"]
    context = tracing.context_from(headers)
    with tracer.start_span("child", context=context) as child:
        pass
    child_parent = spans.get_finished_spans()[-1].parent
    assert child_parent is not None
    assert child_parent.span_id == parent.get_span_context().span_id
    assert child.get_span_context().trace_id == parent.get_span_context().trace_id


@pytest.mark.parametrize(
    "headers",
    [None, [], [("other", b"x")], [("traceparent", b"not-a-traceparent")]],
)
def test_records_without_a_valid_context_link_nowhere(headers: Any) -> None:
    assert tracing.link_from(headers) is None


def test_tracing_off_makes_no_span_and_adds_no_header(spans: InMemorySpanExporter) -> None:
    tracing.install(None)
    task = command_task()
    traceparent = b"00-" + b"1" * 32 + b"-" + b"2" * 16 + b"-01"
    step = task.process(command_message([("traceparent", traceparent)]), state())
    assert [output.headers for output in step.outputs] == [None, None, None]
    assert spans.get_finished_spans() == ()
    settings = ObservabilitySettings()
    assert settings.tracing == "off"
    assert tracing.configure(settings, "cqrs-test") is False
    assert tracing.tracer() is None


def test_the_decision_is_a_child_of_the_send_and_its_records_carry_it(
    spans: InMemorySpanExporter,
) -> None:
    tracer = tracing.tracer()
    assert tracer is not None
    metadata = {"command_id": "cmd-1", "aggregate_id": "o-1", "correlation_id": None}
    with SendTracing(tracer).send("cqrs.commands.PlaceOrder", metadata, "commands") as headers:
        pass
    step = command_task().process(command_message(headers), state())

    send, decide = spans.get_finished_spans()
    assert send.name == "cqrs.client.send PlaceOrder" and send.kind is SpanKind.PRODUCER
    assert send.attributes is not None
    assert send.attributes["cqrs.correlation_id"] == "cmd-1"  # none given: the command id
    assert decide.name == "cqrs.worker.decide PlaceOrder" and decide.kind is SpanKind.CONSUMER
    assert decide.parent is not None and decide.parent.span_id == send.context.span_id
    assert decide.context.trace_id == send.context.trace_id
    assert decide.attributes == {
        "messaging.system": "kafka",
        "messaging.destination.name": "commands",
        "messaging.operation.type": "process",
        "messaging.operation.name": "decide",
        "messaging.destination.partition.id": "0",
        "messaging.kafka.offset": 7,
        "messaging.kafka.message.key": "o-1",
        "cqrs.command_type": "cqrs.commands.PlaceOrder",
        "cqrs.aggregate_type": "Order",
        "cqrs.aggregate_id": "o-1",
        "cqrs.command_id": "cmd-1",
        "cqrs.correlation_id": "corr-1",
        "cqrs.causation_id": "cause-1",
        "cqrs.result": "accepted",
        "cqrs.events": 2,
        "cqrs.version": 2,
    }
    context = decide.context
    trace_id, span_id = format_trace_id(context.trace_id), format_span_id(context.span_id)
    decision = f"00-{trace_id}-{span_id}-{context.trace_flags:02x}"
    for output in step.outputs:  # two events and the result
        assert output.headers == [("traceparent", decision.encode())]


def batch_span_of(batch: BatchTracing, events: list[Any], spans: InMemorySpanExporter) -> Any:
    for headers in events:
        batch.note(headers)
    batch.cut()
    with batch.writing():
        pass
    return spans.get_finished_spans()[-1]


def decision_headers(name: str) -> list[tuple[str, str | bytes | None]]:
    tracer = tracing.tracer()
    assert tracer is not None
    with tracer.start_as_current_span(name) as span:
        return tracing.headers_for(span)


def test_a_batch_span_links_each_decision_once(spans: InMemorySpanExporter) -> None:
    tracer = tracing.tracer()
    assert tracer is not None
    first, second = decision_headers("first"), decision_headers("second")
    batch = BatchTracing(tracer, "order-summary", "events", "group")
    span = batch_span_of(batch, [first, first, second, None], spans)

    assert span.name == "cqrs.sink.write order-summary"
    assert span.parent is None  # two traces in the batch: linked, not parented
    decisions = {s.context.span_id for s in spans.get_finished_spans()[:2]}
    assert {link.context.span_id for link in span.links} == decisions
    assert span.attributes["messaging.batch.message_count"] == 4


def test_a_batch_of_one_decision_continues_its_trace(spans: InMemorySpanExporter) -> None:
    tracer = tracing.tracer()
    assert tracer is not None
    only = decision_headers("only")
    span = batch_span_of(BatchTracing(tracer, "p", "events", "g"), [only, only], spans)
    decision = spans.get_finished_spans()[0]
    assert span.parent is not None and span.parent.span_id == decision.context.span_id
    assert span.context.trace_id == decision.context.trace_id


def test_a_failed_write_keeps_its_links_for_the_retry(spans: InMemorySpanExporter) -> None:
    tracer = tracing.tracer()
    assert tracer is not None
    batch = BatchTracing(tracer, "p", "events", "g")
    batch.note(decision_headers("decision"))
    batch.cut()
    with pytest.raises(ConnectionError), batch.writing():
        raise ConnectionError("store down")
    failed = spans.get_finished_spans()[-1]
    assert failed.status.status_code.name == "ERROR"
    batch.cut()
    with batch.writing():
        pass
    retried = spans.get_finished_spans()[-1]
    assert [link.context.span_id for link in retried.links] == [
        link.context.span_id for link in failed.links
    ]
    assert len(retried.links) == 1


def test_a_batch_without_events_makes_no_span(spans: InMemorySpanExporter) -> None:
    tracer = tracing.tracer()
    assert tracer is not None
    batch = BatchTracing(tracer, "p", "events", "g")
    batch.cut()
    with batch.writing():
        pass
    assert spans.get_finished_spans() == ()


def test_the_inbox_keeps_only_the_trace_headers() -> None:
    message = command_message([("traceparent", b"tp"), ("tracestate", b"ts"), ("other", b"x")])
    assert ReactionTracing.forwarded(message) == [("traceparent", b"tp"), ("tracestate", b"ts")]
    assert ReactionTracing.forwarded(command_message(None)) is None


class OrderPlaced:
    pass


def test_a_reaction_is_a_child_of_its_event_and_its_commands_carry_it(
    spans: InMemorySpanExporter,
) -> None:
    tracer = tracing.tracer()
    assert tracer is not None
    event = decision_headers("decision")
    seen = Observation(OrderPlaced(), "Order", "o-1", "e-1", datetime.now(UTC))
    reactions = ReactionTracing(tracer, "fulfilment", "fulfilment-inbox")
    headers = reactions.traced(command_message(event), Observed("o-1", "corr-1", seen), list)

    decision, react = spans.get_finished_spans()
    assert react.name == "cqrs.process_manager.react OrderPlaced"
    assert react.parent is not None and react.parent.span_id == decision.context.span_id
    assert react.attributes is not None
    assert react.attributes["cqrs.causation_id"] == "e-1"
    assert react.attributes["cqrs.correlation_id"] == "corr-1"
    link = tracing.link_from(headers)  # the issued commands name the reaction as parent
    assert link is not None and link.context.span_id == react.context.span_id


def test_the_file_exporter_writes_a_json_line_per_span(tmp_path: Path) -> None:
    path = tmp_path / "traces.jsonl"
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(JsonLinesSpanExporter(path)))
    tracer = provider.get_tracer("test")
    outer_span = tracer.start_as_current_span("outer", attributes={"cqrs.command_id": "c"})
    with outer_span, tracer.start_as_current_span("inner"):
        pass
    inner, outer = (json.loads(line) for line in path.read_text().splitlines())
    assert (inner["name"], outer["name"]) == ("inner", "outer")
    assert inner["trace_id"] == outer["trace_id"] and len(inner["trace_id"]) == 32
    assert inner["parent_span_id"] == outer["span_id"] and outer["parent_span_id"] is None
    assert outer["attributes"] == {"cqrs.command_id": "c"}


def test_file_tracing_needs_a_file() -> None:
    with pytest.raises(ValidationError, match="tracing = file needs traces_file"):
        ObservabilitySettings(tracing="file")
    assert ObservabilitySettings(tracing="file", traces_file=Path("t.jsonl")).traces_file
