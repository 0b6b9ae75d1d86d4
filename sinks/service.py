"""Running sink processes: ``cqrs sink run <projection>`` (or ``--all``, for local runs).

A sink process creates the product's topics (or verifies them), registers the
schemas (failing fast on an incompatible change), serves ``/metrics``,
``/livez`` and ``/readyz`` on ``observability.port`` and runs its runner until
SIGTERM/SIGINT. With several projections in one process each runs in a thread
of its own; the process is live while every runner beats and ready while
every runner is ready.
"""

from __future__ import annotations

import gc
import logging
import signal
import threading
from collections.abc import Sequence
from types import FrameType

from core import tracing
from core.domain import load_domain
from core.observability import Health, beat_interval, start_observability_server
from core.settings import Settings
from schemas.catalog import SchemaCatalog
from schemas.registry_client import RegistryClient
from schemas.serde import AvroSerde
from schemas.tooling import register_all
from schemas.topic_admin import ensure_topics
from sinks import registry
from sinks.runner import SinkRunner

log = logging.getLogger("cqrs.sinks.service")
YOUNG_GC_THRESHOLD = 10_000  # allocations between collections of the youngest generation


def prepared_serde(settings: Settings) -> AvroSerde:
    """Topics created (or verified) and schemas registered; a serde that never registers."""
    ensure_topics(settings)
    domain = load_domain(settings.domain)
    catalog = SchemaCatalog.for_domain(domain)
    list(register_all(settings, catalog))
    return AvroSerde(
        RegistryClient(settings.registry), catalog, domain.upcasters, auto_register=False
    )


def build_runner(
    settings: Settings, projection: str, serde: AvroSerde, health: Health | None = None
) -> SinkRunner:
    sink = registry.projection(projection, settings).build_sink(settings, serde)
    return SinkRunner(sink, settings, serde, health=health)


def run_sinks(settings: Settings, projections: Sequence[str]) -> None:
    """Run the sinks of ``projections`` in this process until stopped; raises if one fails."""
    for name in projections:
        registry.projection(name, settings)  # unknown names fail before anything starts
    service = f"cqrs-sink-{projections[0]}" if len(projections) == 1 else "cqrs-sinks"
    tracing.configure(settings.observability, service)
    health = Health.for_settings(settings)
    server = start_observability_server(settings, health)
    try:
        serde = prepared_serde(settings)
        settle_garbage_collector()
        if len(projections) == 1:
            build_runner(settings, projections[0], serde, health).run()
        else:
            _run_together(settings, projections, serde, health)
    finally:
        server.close()


def settle_garbage_collector() -> None:
    """Tune the cyclic garbage collector for a process that decodes events all day.

    Everything alive after start-up (modules, schemas, clients) is moved out of the
    collector's sight (``gc.freeze``): left in, every full collection would walk it
    again. Decoding allocates a container or more per field, so the youngest
    generation is collected after 10,000 allocations instead of 700; a batch's
    objects are freed by reference counting anyway, and cycles are rare.
    """
    gc.collect()
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(YOUNG_GC_THRESHOLD, older, oldest)


def _run_together(
    settings: Settings, projections: Sequence[str], serde: AvroSerde, health: Health
) -> None:
    runners = [
        build_runner(settings, name, serde, Health.for_settings(settings)) for name in projections
    ]
    failures: list[BaseException] = []

    def run(runner: SinkRunner) -> None:
        try:
            runner.run(install_signal_handlers=False)
        except BaseException as error:
            failures.append(error)
            log.exception("sink %s failed", runner.projection)

    def stop_all(signum: int, _frame: FrameType | None) -> None:
        log.info("%s received, stopping every sink", signal.Signals(signum).name)
        for runner in runners:
            runner.stop()

    previous = {sig: signal.signal(sig, stop_all) for sig in (signal.SIGTERM, signal.SIGINT)}
    threads = [threading.Thread(target=run, args=(r,), name=r.projection) for r in runners]
    for thread in threads:
        thread.start()
    try:
        while any(thread.is_alive() for thread in threads):
            _combine(health, runners)
            if failures:
                stop_all(signal.SIGTERM, None)
            for thread in threads:
                thread.join(beat_interval(health))
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if failures:
        raise failures[0]


def _combine(health: Health, runners: Sequence[SinkRunner]) -> None:
    if all(runner.health.liveness().ok for runner in runners):
        health.beat()
    reasons = [
        f"{runner.projection}: {verdict.reason}"
        for runner in runners
        if not (verdict := runner.health.readiness()).ok
    ]
    health.set_ready(not reasons, "; ".join(reasons))
