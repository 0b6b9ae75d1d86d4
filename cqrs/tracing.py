"""Spans of the public API: the client's send of each command, the gateway's request.

The send span is a producer span whose context rides in the command record's
``traceparent`` header: the worker's decision becomes its child. The gateway's
server span continues the trace an HTTP caller started (its ``traceparent``),
and the client's send span, made inside it, is its child. Built only when
tracing is on (``core.tracing.tracer()`` is not None).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from opentelemetry.trace import SpanKind, Tracer

from core import tracing


class SendTracing:
    def __init__(self, tracer: Tracer) -> None:
        self._tracer = tracer

    @contextmanager
    def send(
        self, full_name: str, metadata: Mapping[str, Any], topic: str
    ) -> Iterator[list[tuple[str, str | bytes | None]]]:
        """A span around producing one command; yields the headers the record carries."""
        command_id, aggregate_id = metadata["command_id"], metadata["aggregate_id"]
        with self._tracer.start_as_current_span(
            f"cqrs.client.send {full_name.rpartition('.')[2]}",
            kind=SpanKind.PRODUCER,
            attributes={
                tracing.MESSAGING_SYSTEM: "kafka",
                tracing.MESSAGING_DESTINATION: topic,
                tracing.MESSAGING_OPERATION_TYPE: "send",
                tracing.MESSAGING_OPERATION_NAME: "send",
                tracing.KAFKA_KEY: aggregate_id,
                tracing.COMMAND_TYPE: full_name,
                tracing.COMMAND_ID: command_id,
                tracing.AGGREGATE_ID: aggregate_id,
                # The worker takes the command id for a command that names no correlation.
                tracing.CORRELATION_ID: metadata.get("correlation_id") or command_id,
                tracing.CAUSATION_ID: metadata.get("causation_id") or "",
            },
        ) as span:
            yield tracing.headers_for(span)


class GatewayTracing:
    def __init__(self, tracer: Tracer) -> None:
        self._tracer = tracer

    @contextmanager
    def request(self, command: str, http_headers: Mapping[str, str]) -> Iterator[None]:
        """A server span for ``POST /commands/<command>``, continuing the caller's trace."""
        parent = tracing.context_from(
            [(name, http_headers[name]) for name in tracing.TRACE_HEADERS if name in http_headers]
        )
        with self._tracer.start_as_current_span(
            f"POST /commands/{command}",
            context=parent,
            kind=SpanKind.SERVER,
            attributes={
                "http.request.method": "POST",
                "http.route": "/commands/{command}",
                tracing.COMMAND_TYPE: command,
            },
        ):
            yield
