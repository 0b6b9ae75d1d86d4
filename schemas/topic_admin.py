"""Create the product's topics with explicit configs (auto-creation is off on purpose).

With ``kafka.topic_creation = "verify"`` the topics belong to someone else (on
Kubernetes: Strimzi ``KafkaTopic`` resources generated from ``schemas/topics.py``)
and a process only checks that every topic exists with the expected partition
count, failing at start-up with the list of what is wrong instead of creating
anything with guessed replication settings.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import TypeVar

from confluent_kafka import KafkaError, KafkaException, TopicCollection
from confluent_kafka.admin import AdminClient
from confluent_kafka.admin._config import ConfigResource
from confluent_kafka.admin._metadata import TopicMetadata
from confluent_kafka.admin._resource import ResourceType
from confluent_kafka.cimpl import NewTopic

from core.domain import Writer
from core.errors import ConfigurationError
from core.kafka_logs import served
from core.settings import Settings
from schemas.topics import TopicSpec, settings_topic_specs

_T = TypeVar("_T")


def topic_names(settings: Settings) -> dict[str, str]:
    """Logical name → actual topic name (with the configured prefix)."""
    return {
        spec.name: settings.kafka.topic_prefix + spec.name
        for spec in settings_topic_specs(settings)
    }


def writer_topic_names(settings: Settings, writer: Writer) -> dict[str, str]:
    """``topic_names`` as one writer's task sees them: ``commands`` and ``events`` are the
    topics of its pair (the same as ever under the shared layout)."""
    names = topic_names(settings)
    return {**names, "commands": names[writer.commands], "events": names[writer.events]}


def ensure_topics(settings: Settings, specs: list[TopicSpec] | None = None) -> list[str]:
    """Create missing topics; returns the names created. Existing topics are left as they are.

    In ``verify`` mode nothing is created: a missing or differently partitioned
    topic raises ``ConfigurationError``.
    """
    admin = served(AdminClient(settings.kafka.confluent_config()))
    existing = admin.list_topics(timeout=15).topics
    if settings.kafka.topic_creation == "verify":
        verify_topics(settings, specs or settings_topic_specs(settings), existing)
        return []
    wanted = [
        NewTopic(
            settings.kafka.topic_prefix + spec.name,
            settings.processor.partitions,
            settings.processor.replication_factor,
            config=dict(spec.config),
        )
        for spec in (specs or settings_topic_specs(settings))
        if settings.kafka.topic_prefix + spec.name not in existing
    ]
    if not wanted:
        return []
    for future in admin.create_topics(wanted).values():
        try:
            future.result(timeout=30)
        except KafkaException as error:
            if error.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise
    created = [topic.topic for topic in wanted]
    _await_visible(admin, created)
    return created


def _await_visible(admin: AdminClient, names: list[str], timeout_s: float = 30) -> None:
    """Creation is acknowledged by the controller; wait until brokers' metadata shows it too,
    so whoever runs next (a worker, a check) sees every topic with its partitions."""
    deadline = time.monotonic() + timeout_s
    while True:
        topics = admin.list_topics(timeout=15).topics
        pending = [
            n for n in names if n not in topics or topics[n].error or not topics[n].partitions
        ]
        if not pending:
            return
        if time.monotonic() > deadline:
            raise KafkaException(f"created topics not visible after {timeout_s:.0f}s: {pending}")
        time.sleep(0.2)


def verify_topics(
    settings: Settings, specs: list[TopicSpec], existing: Mapping[str, TopicMetadata]
) -> None:
    """Raise ``ConfigurationError`` naming every product topic that is missing or mis-sized."""
    problems: list[str] = []
    for spec in specs:
        name = settings.kafka.topic_prefix + spec.name
        topic = existing.get(name)
        if topic is None or topic.error is not None:
            problems.append(f"{name} is missing")
        elif len(topic.partitions) != spec.partitions:
            problems.append(
                f"{name} has {len(topic.partitions)} partitions, expected {spec.partitions}"
            )
    if problems:
        raise ConfigurationError(
            "kafka.topic_creation is 'verify' but "
            + "; ".join(problems)
            + ". Create the topics (e.g. apply the chart's KafkaTopic resources), align "
            "CQRS_PROCESSOR__PARTITIONS with them, or set CQRS_KAFKA__TOPIC_CREATION=create."
        )


def partition_count(settings: Settings, logical_name: str) -> int:
    """How many partitions a product topic really has (it may predate the settings)."""
    name = settings.kafka.topic_prefix + logical_name
    admin = served(AdminClient(settings.kafka.confluent_config()))
    topic = admin.list_topics(name, timeout=15).topics.get(name)
    if topic is None or topic.error is not None or not topic.partitions:
        raise KafkaException(f"topic {name} is missing; start a worker to create it")
    return len(topic.partitions)


CHANGELOG_CONFIG = {"cleanup.policy": "compact", "min.compaction.lag.ms": "0"}


DEFAULT_DELETE_RETENTION_MS = 86_400_000  # Kafka's default delete.retention.ms


def delete_retention_s(settings: Settings, topic: str) -> float:
    """How long the compacted ``topic`` keeps tombstones (its ``delete.retention.ms``)."""
    admin = served(AdminClient(settings.kafka.confluent_config()))
    resource = ConfigResource(ResourceType.TOPIC, topic)
    configs = _asking(
        f"cannot read the configuration of {topic}",
        lambda: admin.describe_configs([resource])[resource].result(timeout=30),
    )
    entry = configs.get("delete.retention.ms")
    value = entry.value if entry is not None and entry.value is not None else None
    return int(value if value is not None else DEFAULT_DELETE_RETENTION_MS) / 1000


# Answers a broker gives while a topic just created (or a restarted broker) has not reached
# its metadata cache yet: asked again, another moment or another broker knows the topic.
_NOT_YET_KNOWN = {
    KafkaError.UNKNOWN_TOPIC_OR_PART,
    KafkaError.LEADER_NOT_AVAILABLE,
    KafkaError._TIMED_OUT,
    KafkaError._TRANSPORT,
}


def _asking(failure: str, call: Callable[[], _T], timeout_s: float = 60) -> _T:
    """``call()`` again while the cluster does not know the topic yet, up to ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return call()
        except KafkaException as error:
            code = error.args[0].code() if error.args else None
            if code not in _NOT_YET_KNOWN or time.monotonic() > deadline:
                raise KafkaException(f"{failure}: {error}") from error
        time.sleep(0.5)


def topic_id(settings: Settings, topic: str) -> str:
    """The Kafka topic id of ``topic``: it changes when a topic is deleted and created again."""
    admin = served(AdminClient(settings.kafka.confluent_config()))
    described = _asking(
        f"cannot describe {topic}",
        lambda: admin.describe_topics(TopicCollection([topic]))[topic].result(timeout=30),
    )
    return str(described.topic_id)


def ensure_changelog(settings: Settings, name: str, source_logical_name: str) -> None:
    """Create a task's compacted changelog with one partition per source partition.

    ``source_logical_name`` is the full name of the input topic whose partitions
    own the state. In ``verify`` mode the changelog must exist already.
    """
    admin = served(AdminClient(settings.kafka.confluent_config()))
    topics = admin.list_topics(timeout=15).topics
    source = topics.get(source_logical_name)
    if source is None or not source.partitions:
        raise KafkaException(f"topic {source_logical_name} is missing")
    partitions = len(source.partitions)
    existing = topics.get(name)
    if existing is not None and existing.error is None:
        if len(existing.partitions) != partitions:
            raise ConfigurationError(
                f"changelog {name} has {len(existing.partitions)} partitions but "
                f"{source_logical_name} has {partitions}; they must match (delete the "
                "changelog and rebuild it with `cqrs replay state --write`)"
            )
        return
    if settings.kafka.topic_creation == "verify":
        raise ConfigurationError(
            f"kafka.topic_creation is 'verify' but the changelog {name} is missing; create it "
            f"compacted with {partitions} partitions or set CQRS_KAFKA__TOPIC_CREATION=create."
        )
    topic = NewTopic(
        name, partitions, settings.processor.replication_factor, config=CHANGELOG_CONFIG
    )
    try:
        admin.create_topics([topic])[name].result(timeout=30)
    except KafkaException as error:
        if error.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
            raise
    _await_visible(admin, [name])
