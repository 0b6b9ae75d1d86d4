"""``kafka.topic_creation = "verify"``: topics owned by the platform are checked, never created."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic

from aggregates.shop import domain as shop
from core.errors import ConfigurationError
from core.settings import Settings
from schemas.topic_admin import ensure_topics
from schemas.topics import domain_topic_specs


@pytest.fixture
def prefix(kafka_admin: AdminClient, unique_name: Callable[[str], str]) -> Iterator[str]:
    """A topic prefix of this test's own; every topic under it is deleted afterwards."""
    value = unique_name("verify") + "."
    yield value
    mine = [name for name in kafka_admin.list_topics(timeout=15).topics if name.startswith(value)]
    if mine:
        for future in kafka_admin.delete_topics(mine).values():
            future.result(timeout=30)


def _settings(stack: Settings, prefix: str, mode: str, partitions: int = 2) -> Settings:
    return stack.model_copy(
        update={
            "kafka": stack.kafka.model_copy(
                update={"topic_prefix": prefix, "topic_creation": mode}
            ),
            "processor": stack.processor.model_copy(update={"partitions": partitions}),
        }
    )


def _existing(admin: AdminClient, prefix: str) -> set[str]:
    return {name for name in admin.list_topics(timeout=15).topics if name.startswith(prefix)}


def test_verify_mode_names_every_missing_topic_and_creates_none(
    local_stack: Settings, kafka_admin: AdminClient, prefix: str
) -> None:
    with pytest.raises(ConfigurationError) as raised:
        ensure_topics(_settings(local_stack, prefix, "verify"))
    message = str(raised.value)
    for spec in domain_topic_specs(shop):
        assert f"{prefix}{spec.name} is missing" in message
    assert "CQRS_KAFKA__TOPIC_CREATION=create" in message
    assert _existing(kafka_admin, prefix) == set()


def test_verify_mode_accepts_topics_created_elsewhere(
    local_stack: Settings, kafka_admin: AdminClient, prefix: str
) -> None:
    created = ensure_topics(_settings(local_stack, prefix, "create"))
    assert set(created) == {prefix + spec.name for spec in domain_topic_specs(shop)}
    assert ensure_topics(_settings(local_stack, prefix, "verify")) == []


def test_verify_mode_rejects_a_topic_with_other_partitions(
    local_stack: Settings, kafka_admin: AdminClient, prefix: str
) -> None:
    events = prefix + "events"
    kafka_admin.create_topics([NewTopic(events, 3, 1)])[events].result(timeout=30)
    ensure_topics(_settings(local_stack, prefix, "create"))  # creates the others with 2
    with pytest.raises(ConfigurationError, match=f"{events} has 3 partitions, expected 2"):
        ensure_topics(_settings(local_stack, prefix, "verify"))
