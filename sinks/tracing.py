"""A sink's write of a batch as one span, linked to the decisions of its events.

One span per applied batch, not per event: a batch is one store write, and a
span per event would cost more than the write of the event at the sink's
rates. The span links to each distinct context the batch's events carry (the
events of one command share their decision's context, so the links are per
command, at most ``MAX_LINKS``); a batch whose events all come from one
decision is also that decision's child, so a single command's trace runs from
the client to the read model. Batches of events the projection ignores (no
entry written) make no span.

The runner calls ``note`` for each event it hands the sink, ``cut`` when it
closes a batch, and writes inside ``writing()``; a failed write puts its
events' contexts back in front of the next batch's, as the sink does with the
events themselves.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from opentelemetry.trace import Link, SpanKind, Tracer

from core import tracing

MAX_LINKS = 128  # the SDK's default span link limit: more would be dropped anyway
Contexts = dict[str | bytes, str | bytes | None]  # traceparent -> tracestate, in order


class BatchTracing:
    def __init__(self, tracer: Tracer, projection: str, topic: str, group: str) -> None:
        self._tracer = tracer
        self._name = f"cqrs.sink.write {projection}"
        self._attributes = {
            tracing.MESSAGING_SYSTEM: "kafka",
            tracing.MESSAGING_DESTINATION: topic,
            tracing.MESSAGING_OPERATION_TYPE: "process",
            tracing.MESSAGING_OPERATION_NAME: "write",
            tracing.MESSAGING_CONSUMER_GROUP: group,
            tracing.PROJECTION: projection,
        }
        # The batch being consumed: touched by the consuming thread only.
        self._pending: Contexts = {}
        self._pending_events = 0
        # Closed batches not yet written: the writer thread takes them.
        self._lock = threading.Lock()
        self._ready: Contexts = {}
        self._ready_events = 0

    def note(self, headers: tracing.KafkaHeaders | None) -> None:
        """An event handed to the sink; its trace context, if it has one, is remembered."""
        self._pending_events += 1
        if not headers:
            return
        parent: str | bytes | None = None
        state: str | bytes | None = None
        for name, value in tracing.pairs(headers):
            if name == "traceparent":
                parent = value
            elif name == "tracestate":
                state = value
        if parent is not None and len(self._pending) < MAX_LINKS:
            self._pending.setdefault(parent, state)

    def cut(self) -> None:
        """The batch under way is closed: its contexts go with the next write."""
        with self._lock:
            for parent, state in self._pending.items():
                if len(self._ready) < MAX_LINKS:
                    self._ready.setdefault(parent, state)
            self._ready_events += self._pending_events
        self._pending, self._pending_events = {}, 0

    @contextmanager
    def writing(self) -> Iterator[None]:
        """The span of one write of the closed batches (none when they hold no event)."""
        with self._lock:
            taken, events = self._ready, self._ready_events
            self._ready, self._ready_events = {}, 0
        if not events:
            yield
            return
        links = [link for link in map(_link, taken.items()) if link is not None]
        parent = tracing.context_from(_headers(*next(iter(taken.items())))) if taken else None
        try:
            with self._tracer.start_as_current_span(
                self._name,
                context=parent if len(links) == 1 else None,
                kind=SpanKind.CONSUMER,
                links=links,
                attributes={
                    **self._attributes,
                    tracing.MESSAGING_BATCH_COUNT: events,
                    "cqrs.linked_decisions": len(links),
                },
            ):
                yield
        except BaseException:
            with self._lock:  # retried with what came since: the contexts go first
                self._ready = {**taken, **self._ready}
                self._ready_events += events
            raise


def _headers(parent: str | bytes, state: str | bytes | None) -> tracing.KafkaHeaders:
    return [("traceparent", parent), ("tracestate", state)]


def _link(item: tuple[str | bytes, str | bytes | None]) -> Link | None:
    return tracing.link_from(_headers(*item))
