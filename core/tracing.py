"""OpenTelemetry tracing of commands: optional, off by default, set up in one place.

``configure`` runs once per process (the first caller names the service:
``cqrs-worker``, ``cqrs-process-manager-<name>``, ``cqrs-sink-<projection>``,
``cqrs-query``, ``cqrs-client``). With ``observability.tracing = off`` it does
nothing, ``tracer()`` answers ``None`` and the traced code paths keep that
``None`` in an attribute: the per-record cost of tracing off is one attribute
check. When on, a ``TracerProvider`` of the SDK (the ``tracing`` extra) sends
spans through a ``BatchSpanProcessor`` to OTLP over HTTP, the console or a
JSON-lines file; the SDK itself honours ``OTEL_SERVICE_NAME``,
``OTEL_RESOURCE_ATTRIBUTES``, ``OTEL_TRACES_SAMPLER`` (``_ARG``),
``OTEL_EXPORTER_OTLP_ENDPOINT`` and ``OTEL_BSP_*``.

Context crosses Kafka in W3C trace-context headers (``traceparent``,
``tracestate``), the same format as HTTP's.
"""

from __future__ import annotations

import atexit
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import Link, Span, Tracer
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from core.errors import ConfigurationError

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter

    from core.settings import ObservabilitySettings

TRACE_HEADERS = frozenset({"traceparent", "tracestate"})
SCOPE = "cqrs-pipeline"

# OpenTelemetry's messaging semantic conventions, and the product's own attributes.
MESSAGING_SYSTEM = "messaging.system"
MESSAGING_DESTINATION = "messaging.destination.name"
MESSAGING_OPERATION_TYPE = "messaging.operation.type"
MESSAGING_OPERATION_NAME = "messaging.operation.name"
MESSAGING_BATCH_COUNT = "messaging.batch.message_count"
MESSAGING_CONSUMER_GROUP = "messaging.consumer.group.name"
KAFKA_KEY = "messaging.kafka.message.key"
KAFKA_PARTITION = "messaging.destination.partition.id"
KAFKA_OFFSET = "messaging.kafka.offset"
CORRELATION_ID = "cqrs.correlation_id"
CAUSATION_ID = "cqrs.causation_id"
COMMAND_ID = "cqrs.command_id"
COMMAND_TYPE = "cqrs.command_type"
AGGREGATE_ID = "cqrs.aggregate_id"
AGGREGATE_TYPE = "cqrs.aggregate_type"
EVENT_ID = "cqrs.event_id"
RESULT = "cqrs.result"
VERSION = "cqrs.version"
PROJECTION = "cqrs.projection"

# A record's headers as confluent-kafka gives them (a list of pairs; a dict is accepted too).
HeaderValue = str | bytes | None
KafkaHeaders = Sequence[tuple[str, HeaderValue]] | Mapping[str, HeaderValue]

_W3C = TraceContextTextMapPropagator()


class _Setup:
    """This process's provider and tracer (None while tracing is off)."""

    provider: TracerProvider | None = None
    tracer: Tracer | None = None


_setup = _Setup()


def configure(settings: ObservabilitySettings, service: str) -> bool:
    """Set tracing up for this process as ``service`` if the settings ask for it (once:
    later calls keep the first set-up). True when tracing is on."""
    if _setup.provider is not None or settings.tracing == "off":
        return _setup.provider is not None
    try:
        from opentelemetry.sdk.resources import OTELResourceDetector, Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
    except ImportError:
        raise ConfigurationError(
            f"observability.tracing = {settings.tracing} needs the OpenTelemetry SDK: "
            "pip install 'cqrs-pipeline[tracing]'"
        ) from None
    # The service named here unless OTEL_SERVICE_NAME (or OTEL_RESOURCE_ATTRIBUTES) says.
    resource = Resource.create({"service.name": service}).merge(OTELResourceDetector().detect())
    provider = TracerProvider(resource=resource)
    provider.add_span_processor(BatchSpanProcessor(_exporter(settings)))
    install(provider)
    trace.set_tracer_provider(provider)  # for the domain's own spans, if it makes any
    atexit.register(provider.shutdown)  # the batch still queued is sent at exit
    return True


def _exporter(settings: ObservabilitySettings) -> SpanExporter:
    try:
        if settings.tracing == "otlp":
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            return OTLPSpanExporter()  # OTEL_EXPORTER_OTLP_(TRACES_)ENDPOINT, headers, ...
    except ImportError:
        raise ConfigurationError(
            "observability.tracing = otlp needs the OTLP exporter: "
            "pip install 'cqrs-pipeline[tracing]'"
        ) from None
    if settings.tracing == "console":
        from opentelemetry.sdk.trace.export import ConsoleSpanExporter

        return ConsoleSpanExporter()
    from core.trace_file import JsonLinesSpanExporter

    assert settings.traces_file is not None  # the settings' validator
    return JsonLinesSpanExporter(settings.traces_file)


def install(provider: TracerProvider | None) -> None:
    """Use ``provider`` for this process's spans (None: tracing off). For tests, and
    for ``configure``."""
    _setup.provider = provider
    _setup.tracer = None if provider is None else provider.get_tracer(SCOPE)


def tracer() -> Tracer | None:
    """The product's tracer, or None when tracing is off (the caller then traces nothing)."""
    return _setup.tracer


def pairs(headers: KafkaHeaders) -> Iterable[tuple[str, HeaderValue]]:
    return headers.items() if isinstance(headers, Mapping) else headers


def context_from(headers: KafkaHeaders | None) -> Context | None:
    """The trace context a record's headers carry, if any."""
    if not headers:
        return None
    carrier = {
        name: value.decode() if isinstance(value, bytes) else value
        for name, value in pairs(headers)
        if name in TRACE_HEADERS and value is not None
    }
    if "traceparent" not in carrier:
        return None
    return _W3C.extract(carrier)


def link_from(headers: KafkaHeaders | None) -> Link | None:
    """A link to the span a record's headers name (for a span covering many records)."""
    context = context_from(headers)
    if context is None:
        return None
    span_context = trace.get_current_span(context).get_span_context()
    return Link(span_context) if span_context.is_valid else None


def headers_for(span: Span) -> list[tuple[str, str | bytes | None]]:
    """W3C trace-context headers naming ``span`` as the parent of what a record leads to."""
    carrier: dict[str, str] = {}
    _W3C.inject(carrier, trace.set_span_in_context(span))
    return [(name, value.encode()) for name, value in carrier.items()]
