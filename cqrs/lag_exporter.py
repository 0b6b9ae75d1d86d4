"""``cqrs lag serve``: measure consumer lag at an interval and publish it as gauges.

Each round sets ``cqrs_consumer_lag_records`` and ``cqrs_consumer_lag_seconds``
for every partition measured and removes the series of partitions no longer
reported (a deleted group or topic), so stale values never linger. A round
that fails (Kafka unreachable) counts ``cqrs_lag_collections_total{outcome=
"failed"}``, keeps the last values, and makes ``/readyz`` fail with the reason
until a round succeeds again. The loop beats between and within rounds; each
Kafka call has a timeout, so a hung round turns ``/livez`` red.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Sequence

from core.errors import LagError
from core.metrics import CONSUMER_LAG_RECORDS, CONSUMER_LAG_SECONDS, LAG_COLLECTIONS
from core.observability import Health, beat_interval
from core.settings import Settings
from cqrs.lag import ConsumerGroup, LagMonitor, PartitionLag, product_groups

log = logging.getLogger("cqrs.lag")
Labels = tuple[str, str, str]


class LagGauges:
    """The lag gauges, set from one measurement after another."""

    def __init__(self) -> None:
        self._published: set[Labels] = set()

    def publish(self, lags: Sequence[PartitionLag]) -> None:
        current: set[Labels] = set()
        dated: set[Labels] = set()
        for lag in lags:
            labels = (lag.group, lag.topic, str(lag.partition))
            current.add(labels)
            CONSUMER_LAG_RECORDS.labels(*labels).set(lag.records)
            if lag.seconds is not None:
                dated.add(labels)
                CONSUMER_LAG_SECONDS.labels(*labels).set(lag.seconds)
        for labels in self._published - current:
            CONSUMER_LAG_RECORDS.remove(*labels)
        for labels in self._published - dated:
            # Undatable this round (no record readable in time): no value beats a stale one.
            with contextlib.suppress(KeyError):  # older prometheus_client raise when unset
                CONSUMER_LAG_SECONDS.remove(*labels)
        self._published = current


class LagExporter:
    """Runs measurement rounds until ``stop`` is set."""

    def __init__(
        self,
        settings: Settings,
        health: Health,
        extra_groups: Sequence[ConsumerGroup] = (),
        monitor_factory: Callable[[Settings], LagMonitor] = LagMonitor,
    ) -> None:
        self._settings = settings
        self._health = health
        self._groups = [*product_groups(settings), *extra_groups]
        self._monitor_factory = monitor_factory
        self._gauges = LagGauges()

    def run(self, stop: threading.Event) -> None:
        monitor = self._monitor_factory(self._settings)
        interval = self._settings.observability.lag_interval_s
        try:
            while not stop.is_set():
                started = time.monotonic()
                self._round(monitor)
                self._wait(stop, started + interval)
        finally:
            monitor.close()

    def _round(self, monitor: LagMonitor) -> None:
        self._health.beat()
        try:
            lags = monitor.measure(self._groups)
        except LagError as error:
            LAG_COLLECTIONS.labels(outcome="failed").inc()
            self._health.set_ready(False, str(error))
            log.warning("consumer lag not measured: %s", error)
            return
        self._gauges.publish(lags)
        LAG_COLLECTIONS.labels(outcome="ok").inc()
        self._health.set_ready(True)
        self._health.beat()

    def _wait(self, stop: threading.Event, until: float) -> None:
        step = beat_interval(self._health)
        while not stop.is_set() and (left := until - time.monotonic()) > 0:
            stop.wait(min(step, left))
            self._health.beat()
