"""Build and run a worker process: topics, registry schemas, the Faust app and its agents."""

from __future__ import annotations

import faust

from cqrs.settings import Settings
from processors.app import create_app
from processors.command_agent import register_command_agent
from processors.command_processing import CommandProcessor
from processors.topic_admin import ensure_topics, topic_names
from schemas.catalog import SchemaCatalog
from schemas.registry_client import RegistryClient
from schemas.serde import AvroSerde
from schemas.tooling import register_all


def build_command_worker(settings: Settings) -> faust.App:
    """The command processor app, with its topics created and schemas registered."""
    ensure_topics(settings)
    catalog = SchemaCatalog()
    list(register_all(settings, catalog))  # fail fast on an incompatible schema change
    serde = AvroSerde(RegistryClient(settings.registry), catalog, auto_register=False)
    processor = CommandProcessor(
        serde, topic_names(settings), dedup_window=settings.processor.dedup_window
    )
    app = create_app(settings)
    register_command_agent(app, processor, topic_names(settings))
    return app


def run(app: faust.App, log_level: str) -> None:
    faust.Worker(app, loglevel=log_level.lower()).execute_from_commandline()
