"""The pipeline's Prometheus metrics, defined once so every process exposes the same names.

All live in prometheus_client's default registry, which ``/metrics`` of the
observability server (``core.observability``) serves together with the
client's process and platform collectors.

| metric | type | labels |
|---|---|---|
| ``cqrs_events_applied_total`` | counter | projection |
| ``cqrs_sink_batches_total`` | counter | projection |
| ``cqrs_sink_errors_total`` | counter | projection, kind (retryable, fatal) |
| ``cqrs_dead_letters_total`` | counter | component |
| ``cqrs_sink_batch_seconds`` | histogram | projection |
| ``cqrs_projection_position`` | gauge | projection, partition (last applied offset) |
| ``cqrs_consumer_lag_records`` | gauge | group, topic, partition |
| ``cqrs_consumer_lag_seconds`` | gauge | group, topic, partition |
| ``cqrs_lag_collections_total`` | counter | outcome (ok, failed) |
| ``cqrs_commands_total`` | counter | outcome (accepted, rejected, repeated, dead_lettered) |
| ``cqrs_transaction_commit_seconds`` | histogram | |
"""

from __future__ import annotations

from typing import Literal

from prometheus_client import Counter, Gauge, Histogram, disable_created_metrics

# ``*_created`` series double the output for no operational use here.
disable_created_metrics()  # type: ignore[no-untyped-call]

# Sink batches and transaction commits take milliseconds to seconds; retries with
# backoff can stretch a batch to minutes.
_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)

EVENTS_APPLIED = Counter(
    "cqrs_events_applied_total",
    "Events a projection has written to its read store.",
    ["projection"],
)
SINK_BATCHES = Counter(
    "cqrs_sink_batches_total",
    "Batches a projection has written to its read store.",
    ["projection"],
)
SINK_ERRORS = Counter(
    "cqrs_sink_errors_total",
    "Failed writes of a projection, by whether retrying can help (retryable) or not (fatal).",
    ["projection", "kind"],
)
DEAD_LETTERS = Counter(
    "cqrs_dead_letters_total",
    "Records a component copied to a dead-letter topic.",
    ["component"],
)
SINK_BATCH_SECONDS = Histogram(
    "cqrs_sink_batch_seconds",
    "Time to write one batch to the read store, retries included.",
    ["projection"],
    buckets=_LATENCY_BUCKETS,
)
PROJECTION_POSITION = Gauge(
    "cqrs_projection_position",
    "Offset of the last event a projection applied, per partition of the events topic.",
    ["projection", "partition"],
)
CONSUMER_LAG_RECORDS = Gauge(
    "cqrs_consumer_lag_records",
    "Records between a consumer group's committed offset and the end of the partition.",
    ["group", "topic", "partition"],
)
CONSUMER_LAG_SECONDS = Gauge(
    "cqrs_consumer_lag_seconds",
    "Age of the oldest record a consumer group has not processed yet; 0 when caught up.",
    ["group", "topic", "partition"],
)
LAG_COLLECTIONS = Counter(
    "cqrs_lag_collections_total",
    "Consumer lag measurements by the lag exporter, by outcome.",
    ["outcome"],
)
COMMANDS = Counter(
    "cqrs_commands_total",
    "Commands the command processor handled, by outcome.",
    ["outcome"],
)
TRANSACTION_COMMIT_SECONDS = Histogram(
    "cqrs_transaction_commit_seconds",
    "Time to commit one exactly-once transaction (outputs and consumed offsets).",
    buckets=_LATENCY_BUCKETS,
)

STANDBY_LAG_RECORDS = Gauge(
    "cqrs_standby_lag_records",
    "Records between a warm standby's position and the end of its changelog partition.",
    ["topic", "partition"],
)
STANDBY_READY = Gauge(
    "cqrs_standby_ready",
    "1 when a warm standby is within 1,000 records of its changelog partition's end.",
    ["topic", "partition"],
)

CommandOutcome = Literal["accepted", "rejected", "repeated", "dead_lettered"]
SinkErrorKind = Literal["retryable", "fatal"]


def count_command(outcome: CommandOutcome) -> None:
    # Called for every command: the labelled child is looked up once per outcome.
    counter = _COMMAND_COUNTERS.get(outcome)
    if counter is None:
        counter = _COMMAND_COUNTERS[outcome] = COMMANDS.labels(outcome=outcome)
    counter.inc()


_COMMAND_COUNTERS: dict[str, Counter] = {}


def count_dead_letter(component: str) -> None:
    DEAD_LETTERS.labels(component=component).inc()
