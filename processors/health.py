"""Observability of a Faust worker: heartbeat, readiness from Faust's state, commit timing.

- **Liveness**: a small service started with the app (before table recovery,
  so a long restore is not mistaken for a hang) beats from the worker's event
  loop. A loop blocked by a handler stops the beats and ``/livez`` fails.
- **Readiness**: ready when no rebalance is under way and Faust reports the
  active table partitions recovered (``app.tables.actives_ready``, set by the
  recovery service once every assigned changelog is restored, cleared at the
  start of each rebalance). The reason names what is pending, e.g. the
  changelog records still to restore.
- **Commit timing**: a Faust sensor times each consumer commit, which under
  ``exactly_once`` is the transaction commit (offsets sent to the transaction,
  then committed); commits that had nothing to commit are not observed.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any, cast

import faust
from faust.tables.manager import TableManager
from mode import Service

from cqrs.metrics import TRANSACTION_COMMIT_SECONDS
from cqrs.observability import (
    Health,
    ObservabilityServer,
    beat_interval,
    start_observability_server,
)
from cqrs.settings import Settings


def observe_worker(app: faust.App, settings: Settings) -> ObservabilityServer:
    """Serve /metrics, /livez and /readyz for ``app``; call before the worker starts."""
    health = Health.for_settings(settings)
    attach_health(app, health)
    return start_observability_server(settings, health)


def attach_health(app: faust.App, health: Health) -> None:
    app.add_dependency(_Heartbeat(app, health))
    app.sensors.add(TransactionCommitSensor())


def readiness_of(app: faust.App) -> tuple[bool, str]:
    """Whether the worker's partitions are assigned and its tables recovered, and why not."""
    tables = cast(TableManager, app.tables)  # the concrete manager owns the recovery service
    if app.rebalancing:
        return False, f"consumer group {app.conf.id} is rebalancing"
    if not tables.actives_ready:
        recovery = tables.recovery
        if recovery.in_recovery:
            left = recovery.active_remaining_total()
            return False, f"restoring tables from their changelogs: {left} records left"
        return False, f"waiting for partitions of consumer group {app.conf.id}"
    return True, ""


class _Heartbeat(Service):
    def __init__(self, app: faust.App, health: Health, **kwargs: Any) -> None:
        self._app = app
        self._health = health
        super().__init__(**kwargs)

    @Service.task
    async def _beat(self) -> None:
        interval = beat_interval(self._health)
        while not self.should_stop:
            self._health.beat()
            self._health.set_ready(*readiness_of(self._app))
            await asyncio.sleep(interval)


class TransactionCommitSensor(faust.Sensor):
    """Observes ``cqrs_transaction_commit_seconds`` for commits that committed offsets."""

    def on_commit_initiated(self, consumer: Any) -> Any:
        return time.perf_counter(), _committed_offsets(consumer)

    def on_commit_completed(self, consumer: Any, state: Any) -> None:
        started, before = state
        after = _committed_offsets(consumer)
        if after is None or after != before:
            TRANSACTION_COMMIT_SECONDS.observe(time.perf_counter() - started)


def _committed_offsets(consumer: Any) -> dict[Any, Any] | None:
    # Faust keeps the last committed offset per partition here; an unchanged map
    # means the periodic commit found nothing to commit.
    committed = getattr(consumer, "_committed_offset", None)
    return dict(committed) if committed is not None else None
