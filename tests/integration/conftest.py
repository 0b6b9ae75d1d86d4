"""Fixtures that create isolated resources on the real services and remove them after."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic

from cqrs.settings import Settings

TopicFactory = Callable[..., str]


@pytest.fixture
def kafka_admin(local_stack: Settings) -> AdminClient:
    return AdminClient(local_stack.kafka.confluent_config())


@pytest.fixture
def new_topic(
    kafka_admin: AdminClient, unique_name: Callable[[str], str]
) -> Iterator[TopicFactory]:
    """Create uniquely named topics for one test; they are deleted afterwards."""
    created: list[str] = []

    def create(prefix: str = "t", partitions: int = 1, config: dict[str, str] | None = None) -> str:
        name = unique_name(prefix)
        futures = kafka_admin.create_topics([NewTopic(name, partitions, 1, config=config or {})])
        futures[name].result(timeout=30)
        created.append(name)
        return name

    yield create
    if created:
        for future in kafka_admin.delete_topics(created).values():
            future.result(timeout=30)
