"""Create the product's topics with explicit configs (auto-creation is off on purpose)."""

from __future__ import annotations

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic

from cqrs.settings import Settings
from schemas.topics import TopicSpec, topic_specs


def topic_names(settings: Settings) -> dict[str, str]:
    """Logical name → actual topic name (with the configured prefix)."""
    return {spec.name: settings.kafka.topic_prefix + spec.name for spec in topic_specs()}


def ensure_topics(settings: Settings, specs: list[TopicSpec] | None = None) -> list[str]:
    """Create missing topics; returns the names created. Existing topics are left as they are."""
    admin = AdminClient(settings.kafka.confluent_config())
    existing = admin.list_topics(timeout=15).topics
    wanted = [
        NewTopic(
            settings.kafka.topic_prefix + spec.name,
            settings.processor.partitions,
            settings.processor.replication_factor,
            config=dict(spec.config),
        )
        for spec in (specs or topic_specs(settings.processor.partitions))
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
    return [topic.topic for topic in wanted]


def partition_count(settings: Settings, logical_name: str) -> int:
    """How many partitions a product topic really has (it may predate the settings)."""
    name = settings.kafka.topic_prefix + logical_name
    admin = AdminClient(settings.kafka.confluent_config())
    topic = admin.list_topics(name, timeout=15).topics.get(name)
    if topic is None or topic.error is not None or not topic.partitions:
        raise KafkaException(f"topic {name} is missing; start a worker to create it")
    return len(topic.partitions)
