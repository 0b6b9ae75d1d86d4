"""Build and run a worker process: topics, registry schemas, the Faust app and its agents."""

from __future__ import annotations

import faust

from cqrs.settings import Settings
from processors.app import create_app
from processors.command_agent import register_command_agent
from processors.command_processing import CommandProcessor
from processors.fulfilment_agent import register_fulfilment_agents
from processors.fulfilment_processing import FulfilmentProcessor
from processors.local_state import discard_unless_cleanly_stopped, mark_cleanly_stopped
from processors.topic_admin import ensure_topics, partition_count, topic_names
from processors.transactions import stopped_cleanly
from schemas.catalog import SchemaCatalog
from schemas.registry_client import RegistryClient
from schemas.serde import AvroSerde
from schemas.tooling import register_all


def _prepared_serde(settings: Settings) -> AvroSerde:
    """Topics created and schemas registered (failing fast on an incompatible change)."""
    ensure_topics(settings)
    catalog = SchemaCatalog()
    list(register_all(settings, catalog))
    return AvroSerde(RegistryClient(settings.registry), catalog, auto_register=False)


def build_command_worker(settings: Settings) -> faust.App:
    """The command processor app: one writer per aggregate, exactly-once."""
    serde = _prepared_serde(settings)
    processor = CommandProcessor(
        serde,
        topic_names(settings),
        dedup_window=settings.processor.dedup_window,
        command_partitions=partition_count(settings, "commands"),
    )
    app = create_app(settings)
    register_command_agent(app, processor, topic_names(settings))
    return app


def build_fulfilment_worker(settings: Settings) -> faust.App:
    """The order fulfilment process manager: events in, commands out, exactly-once."""
    serde = _prepared_serde(settings)
    topics = topic_names(settings)
    processor = FulfilmentProcessor(serde, topics["commands"])
    app = create_app(settings, settings.processor.saga_app_id)
    register_fulfilment_agents(app, processor, topics)
    return app


def run(app: faust.App, log_level: str) -> None:
    discard_unless_cleanly_stopped(app)
    try:
        faust.Worker(app, loglevel=log_level.lower()).execute_from_commandline()
    except SystemExit as exit_:
        if exit_.code in {None, 0} and stopped_cleanly(app):
            mark_cleanly_stopped(app)
        raise
