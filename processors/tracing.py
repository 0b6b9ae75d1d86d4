"""Spans of the write side: a worker's decision per command, a process manager's reaction.

Each span is a consumer span, a child of the context the consumed record's
headers carry (the client's send span, or the event that caused a process
manager's reaction). The records it leads to (events and the command result,
or the commands a process manager issues) carry the span's own context, so the
sinks and the next decision continue the same trace. Only built when tracing
is on (``core.tracing.tracer()`` is not None): the tasks keep ``None`` and
check it once per record otherwise.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from confluent_kafka import Message
from opentelemetry.trace import Span, SpanKind, Status, StatusCode, Tracer

from core import tracing
from core.errors import InputRejectedError
from processors.command_processing import IncomingCommand, Outcome
from processors.process_manager import Observed
from processors.task import Headers

T = TypeVar("T")


class DecisionTrace:
    """The span of one command's decision, filled in as the decision goes."""

    def __init__(self, span: Span) -> None:
        self.span = span

    def decided(self, incoming: IncomingCommand, outcome: Outcome) -> Headers:
        """Attributes of a decided command; the headers of the records it leads to."""
        span, envelope = self.span, incoming.envelope
        span.update_name(f"cqrs.worker.decide {incoming.avro_name.rpartition('.')[2]}")
        span.set_attributes(
            {
                tracing.COMMAND_TYPE: incoming.avro_name,
                tracing.AGGREGATE_TYPE: incoming.kind.name,
                tracing.AGGREGATE_ID: envelope.aggregate_id,
                tracing.COMMAND_ID: envelope.command_id,
                tracing.CORRELATION_ID: envelope.correlation_id,
                tracing.CAUSATION_ID: envelope.causation_id or "",
                tracing.RESULT: outcome.status,
                "cqrs.events": len(outcome.events),
            }
        )
        if outcome.version is not None:
            span.set_attribute(tracing.VERSION, outcome.version)
        if outcome.invalid is not None:
            span.set_attribute("cqrs.rejection_code", outcome.invalid.code)
        return tracing.headers_for(span)

    def input_rejected(self, error: InputRejectedError) -> Headers:
        """A record that is not a decidable command: dead-lettered (and answered)."""
        span = self.span
        span.set_attributes({tracing.RESULT: "dead_lettered", "cqrs.rejection_code": error.code})
        if error.command_id:
            span.set_attribute(tracing.COMMAND_ID, error.command_id)
        if error.aggregate_id:
            span.set_attribute(tracing.AGGREGATE_ID, error.aggregate_id)
        span.set_status(Status(StatusCode.ERROR, error.code))
        return tracing.headers_for(span)


class DecisionTracing:
    """Wraps a worker's decision of each command in a span (``CommandTask``)."""

    def __init__(self, tracer: Tracer, commands_topic: str) -> None:
        self._tracer = tracer
        self._topic = commands_topic

    def traced(self, message: Message, decide: Callable[[DecisionTrace], T]) -> T:
        key = message.key()
        attributes: dict[str, str | int] = {
            tracing.MESSAGING_SYSTEM: "kafka",
            tracing.MESSAGING_DESTINATION: self._topic,
            tracing.MESSAGING_OPERATION_TYPE: "process",
            tracing.MESSAGING_OPERATION_NAME: "decide",
            tracing.KAFKA_PARTITION: str(message.partition()),
            tracing.KAFKA_OFFSET: message.offset() or 0,
        }
        if key is not None:
            attributes[tracing.KAFKA_KEY] = key.decode(errors="replace")
        with self._tracer.start_as_current_span(
            "cqrs.worker.decide",
            context=tracing.context_from(message.headers()),
            kind=SpanKind.CONSUMER,
            attributes=attributes,
        ) as span:
            return decide(DecisionTrace(span))


class ReactionTracing:
    """A process manager's spans: the inbox keeps the event's context, and each reaction
    is a child of it whose context the issued commands carry."""

    def __init__(self, tracer: Tracer, manager: str, inbox_topic: str) -> None:
        self._tracer = tracer
        self._manager = manager
        self._inbox = inbox_topic

    @staticmethod
    def forwarded(message: Message) -> Headers | None:
        """The trace headers of an event forwarded to the inbox (the rest are not kept)."""
        found = message.headers()
        if not found:
            return None
        kept = [
            (name, value) for name, value in tracing.pairs(found) if name in tracing.TRACE_HEADERS
        ]
        return kept or None

    def traced(self, message: Message, observed: Observed, react: Callable[[Headers], T]) -> T:
        seen = observed.seen
        with self._tracer.start_as_current_span(
            f"cqrs.process_manager.react {type(seen.event).__name__}",
            context=tracing.context_from(message.headers()),
            kind=SpanKind.CONSUMER,
            attributes={
                tracing.MESSAGING_SYSTEM: "kafka",
                tracing.MESSAGING_DESTINATION: self._inbox,
                tracing.MESSAGING_OPERATION_TYPE: "process",
                tracing.MESSAGING_OPERATION_NAME: "react",
                tracing.KAFKA_KEY: observed.key,
                "cqrs.process_manager": self._manager,
                tracing.AGGREGATE_TYPE: seen.aggregate_type,
                tracing.AGGREGATE_ID: seen.aggregate_id,
                tracing.EVENT_ID: seen.event_id,
                tracing.CORRELATION_ID: observed.correlation_id,
                tracing.CAUSATION_ID: seen.event_id,
            },
        ) as span:
            return react(tracing.headers_for(span))
