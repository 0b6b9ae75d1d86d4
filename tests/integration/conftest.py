"""Fixtures that create isolated resources on the real services and remove them after."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic

from aggregates.shop import domain as shop
from core.settings import Settings
from cqrs.client import CommandClient
from schemas.catalog import SchemaCatalog
from schemas.registry_client import RegistryClient

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


@pytest.fixture
def registry(local_stack: Settings) -> Iterator[RegistryClient]:
    client = RegistryClient(local_stack.registry)
    yield client
    client.close()


@pytest.fixture(scope="session")
def catalog() -> SchemaCatalog:
    return SchemaCatalog.for_domain(shop)


@pytest.fixture
def evolved_catalog(
    tmp_path: Path,
) -> Callable[[str, Callable[[dict[str, Any]], None]], SchemaCatalog]:
    """A copy of the local contracts with one schema changed by ``change``."""

    def make(full_name: str, change: Callable[[dict[str, Any]], None]) -> SchemaCatalog:
        root = tmp_path / "avro"
        shutil.copytree(shop.schemas, root, dirs_exist_ok=True)
        path = root / SchemaCatalog.for_domain(shop).path(full_name).relative_to(shop.schemas)
        definition = json.loads(path.read_text())
        change(definition)
        path.write_text(json.dumps(definition))
        return SchemaCatalog(root)

    return make


@pytest.fixture(scope="module")
def client(pipeline: Any) -> Iterator[CommandClient]:
    """A command client of the module's own ``pipeline`` fixture (a ``Pipeline``)."""
    with CommandClient(pipeline.settings) as client:
        yield client
