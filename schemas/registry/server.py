"""Run the embedded registry: replay the schema topic, then serve HTTP where the URL points."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

import uvicorn

from core.observability import Health, start_observability_server
from core.settings import Settings, host_and_port
from schemas.registry.app import build_app
from schemas.registry.store import KafkaSchemaLog

log = logging.getLogger("cqrs.registry")


def serve(settings: Settings) -> None:
    health = Health.for_settings(settings)
    health.set_ready(False, f"replaying {settings.registry.schemas_topic}")
    observability = start_observability_server(settings, health)
    schema_log = KafkaSchemaLog(settings)
    schema_log.open()
    health.set_ready(False, "starting the HTTP server")
    state = schema_log.state
    log.info(
        "replayed %s: %d subjects, %d schemas",
        settings.registry.schemas_topic,
        len(state.subjects),
        len(state.schemas),
    )
    host, port = host_and_port(settings.registry.url)
    try:
        config = uvicorn.Config(
            build_app(schema_log),
            host=host,
            port=port,
            log_level=settings.log_level.lower(),
            access_log=False,
            # uvicorn calls this from its main loop: a stuck loop stops the beats.
            callback_notify=_beats(health),
            timeout_notify=1,
        )
        uvicorn.Server(config).run()
    finally:
        schema_log.close()
        observability.close()


def _beats(health: Health) -> Callable[[], Awaitable[None]]:
    async def beat() -> None:
        health.beat()
        health.set_ready(True)  # the loop runs, so the API is being served

    return beat
