"""Build and run a worker process: topics, registry schemas, the task and its loop."""

from __future__ import annotations

import logging
import signal
from pathlib import Path

from core import tracing
from core.domain import Domain, Writer, load_domain
from core.errors import ConfigurationError
from core.observability import Health, start_observability_server
from core.settings import Settings
from processors.command_processing import CommandProcessor
from processors.command_task import CommandTask
from processors.instance import claim_transactional_id
from processors.local_store import LocalStore
from processors.messages import MessageTypes
from processors.process_manager import ProcessManagerProcessor
from processors.process_manager_task import ProcessManagerTask
from processors.standby import StandbyFollower
from processors.task import Task
from processors.transactional_loop import LoopSettings, TransactionalLoop
from schemas.catalog import SchemaCatalog
from schemas.registry_client import RegistryClient
from schemas.serde import AvroSerde
from schemas.tooling import register_all
from schemas.topic_admin import (
    delete_retention_s,
    ensure_changelog,
    ensure_topics,
    partition_count,
    topic_id,
    topic_names,
    writer_topic_names,
)

log = logging.getLogger("cqrs.worker")
STORES = ("memory://", "sqlite://")


def _prepared_serde(settings: Settings, domain: Domain) -> AvroSerde:
    """Topics created and schemas registered (failing fast on an incompatible change)."""
    ensure_topics(settings)
    catalog = SchemaCatalog.for_domain(domain)
    list(register_all(settings, catalog))
    return AvroSerde(
        RegistryClient(settings.registry), catalog, domain.upcasters, auto_register=False
    )


def command_task(settings: Settings, writer: Writer) -> CommandTask:
    """A command processor of the domain (the one of its shared topic pair, or of one
    aggregate type's pair): one writer per aggregate instance, exactly-once."""
    tracing.configure(settings.observability, f"cqrs-worker{writer.suffix}")
    domain = load_domain(settings.domain)
    serde = _prepared_serde(settings, domain)
    commands = partition_count(settings, writer.commands)
    topics = writer_topic_names(settings, writer)
    processor = CommandProcessor(
        serde,
        MessageTypes(domain, writer.aggregates),
        topics,
        dedup_window=settings.processor.dedup_window,
        command_partitions=commands,
    )
    return CommandTask(processor, topics, writer.app_id(settings.processor.app_id))


def process_manager_task(settings: Settings, name: str) -> ProcessManagerTask:
    """A process manager of the domain: events in, commands out, exactly-once."""
    tracing.configure(settings.observability, f"cqrs-process-manager-{name}")
    domain = load_domain(settings.domain)
    manager = domain.process_manager(name)
    serde = _prepared_serde(settings, domain)
    topics = topic_names(settings)
    commands = {a.name: topics[domain.writer_of(a.name).commands] for a in domain.aggregates}
    events = [topics[topic] for topic in domain.observed_topics(manager)]
    processor = ProcessManagerProcessor(serde, MessageTypes(domain), manager, commands)
    return ProcessManagerTask(
        processor,
        topics,
        settings.processor.process_manager_group(name),
        events=events,
        commands=sorted(set(commands.values())),
    )


def run(task: Task, settings: Settings, group_id: str) -> None:
    """Run ``task`` in this process until SIGTERM or SIGINT, serving /metrics and health."""
    processor = settings.processor
    if processor.store not in STORES:
        raise ConfigurationError(
            f"CQRS_PROCESSOR__STORE={processor.store!r} is not a store this worker has; use "
            "sqlite:// (state on local disk, the changelog's tail read after a restart) or "
            "memory:// (state restored from the whole changelog when partitions are assigned)"
        )
    if processor.standby_replicas and processor.store != "sqlite://":
        raise ConfigurationError(
            f"CQRS_PROCESSOR__STANDBY_REPLICAS={processor.standby_replicas}: standby copies of "
            "state are kept in the local store; set CQRS_PROCESSOR__STORE=sqlite:// (or 0)"
        )
    if processor.standby_replicas and not processor.static_membership:
        raise ConfigurationError(
            f"CQRS_PROCESSOR__STANDBY_REPLICAS={processor.standby_replicas}: standbys are "
            "placed by the workers' static names; set CQRS_PROCESSOR__STATIC_MEMBERSHIP=true"
        )
    if task.state is not None:
        ensure_changelog(settings, task.state.changelog, task.state.source_topic)
    datadir = Path(processor.datadir) / group_id
    datadir.mkdir(parents=True, exist_ok=True)
    claim = claim_transactional_id(group_id, datadir)
    store = None
    retention = 86_400.0
    if task.state is not None and processor.store == "sqlite://":
        store = LocalStore(datadir / f"state-{claim.slot}.sqlite")
        store.bind(topic_id(settings, task.state.changelog))
        retention = delete_retention_s(settings, task.state.changelog)
        log.info("local state in %s", store.path)
    standby = None
    if store is not None and task.state is not None and processor.standby_replicas:
        standby = StandbyFollower(
            task.state.changelog,
            task.state.source_topic,
            group_id,
            claim.transactional_id,
            processor.standby_replicas,
            settings.kafka.confluent_config(),
            store,
            retention,
        )
    health = Health.for_settings(settings)
    loop = TransactionalLoop(
        task,
        LoopSettings(
            kafka=settings.kafka.confluent_config(),
            group_id=group_id,
            transactional_id=claim.transactional_id,
            exactly_once=processor.processing_guarantee == "exactly_once",
            commit_interval_s=processor.commit_interval_s,
            early_commit_s=processor.early_commit_s,
            transaction_timeout_s=processor.transaction_timeout_s,
            session_timeout_s=processor.session_timeout_s,
            group_instance_id=claim.transactional_id if processor.static_membership else None,
            delete_retention_s=retention,
        ),
        health,
        store,
        standby,
    )
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: loop.stop())
    with start_observability_server(settings, health):
        log.info(
            "%s: group %s, transactional id %s",
            task.name,
            group_id,
            claim.transactional_id,
        )
        try:
            loop.run()
        finally:
            if store is not None:
                store.close()
            claim.release()
