"""Run the embedded registry: replay the schema topic, then serve HTTP where the URL points."""

from __future__ import annotations

import logging

import uvicorn

from cqrs.settings import Settings, host_and_port
from schemas.registry.app import build_app
from schemas.registry.store import KafkaSchemaLog

log = logging.getLogger("cqrs.registry")


def serve(settings: Settings) -> None:
    schema_log = KafkaSchemaLog(settings)
    schema_log.open()
    state = schema_log.state
    log.info(
        "replayed %s: %d subjects, %d schemas",
        settings.registry.schemas_topic,
        len(state.subjects),
        len(state.schemas),
    )
    host, port = host_and_port(settings.registry.url)
    try:
        uvicorn.run(
            build_app(schema_log),
            host=host,
            port=port,
            log_level=settings.log_level.lower(),
            access_log=False,
        )
    finally:
        schema_log.close()
