"""`cqrs replay state --write` repairs a damaged aggregate table from the event log.

The table's changelog loses an aggregate's record and gains an entry no event
explains; with the workers stopped, the rebuilt table is written back, and the
next worker decides on the repaired state.
"""

from __future__ import annotations

import json
import uuid

import pytest
from confluent_kafka import Producer

from core.domain import load_domain
from core.settings import Settings
from cqrs.client import CommandClient
from processors.partitioning import partition_for
from processors.replay import changelog_topic
from processors.table_keys import record_key
from tests.integration.pipeline import Pipeline

PARTITIONS = 3


@pytest.fixture(scope="module")
def pipeline(local_stack: Settings, tmp_path_factory: pytest.TempPathFactory) -> Pipeline:
    return Pipeline.create(
        local_stack,
        tmp_path_factory.mktemp("logs"),
        tmp_path_factory.mktemp("state"),
        partitions=PARTITIONS,
    )


def _damage(pipeline: Pipeline, sku: str, stray: str) -> None:
    """Lose ``sku``'s record; add a record for ``stray``, which no event explains."""
    topic = changelog_topic(pipeline.settings, load_domain(pipeline.settings.domain).writers[0])
    producer = Producer(pipeline.settings.kafka.confluent_config())
    for aggregate, value in ((sku, None), (stray, b'{"kind":"InventoryItem"}')):
        producer.produce(
            topic,
            key=record_key("InventoryItem", aggregate),
            value=value,
            partition=partition_for(aggregate.encode(), PARTITIONS),
        )
    assert producer.flush(10) == 0


def test_write_replaces_a_damaged_table_with_the_one_the_event_log_explains(
    pipeline: Pipeline, client: CommandClient
) -> None:
    sku, stray = f"sku-{uuid.uuid4().hex[:6]}", f"sku-{uuid.uuid4().hex[:6]}"
    with pipeline.running("worker"):
        client.send_and_wait("RegisterItem", sku, {"name": "Teapot"})
        client.send_and_wait("AdjustStock", sku, {"delta": 4, "reason": "RESTOCK"})
    _damage(pipeline, sku, stray)

    damaged = pipeline.cli("replay", "state")
    as_json = pipeline.cli("replay", "state", "--json")
    written = pipeline.cli("replay", "state", "--write")

    assert damaged.returncode == 1, damaged.stdout + damaged.stderr
    assert "2 differ from live" in damaged.stdout
    report = json.loads(as_json.stdout)
    assert as_json.returncode == 1 and len(report["differences"]) == 2
    assert report["written"] == 0 and report["aggregates"] >= 1
    assert written.returncode == 0, written.stdout + written.stderr
    with pipeline.running("worker"):
        # Decided on the repaired record: version 2, 4 units on hand (not a new item).
        adjusted = client.send_and_wait(
            "AdjustStock", sku, {"delta": -4, "reason": "CORRECTION"}, expected_version=2
        )
        unknown = client.send_and_wait("AdjustStock", stray, {"delta": 1, "reason": "RESTOCK"})
        verified = pipeline.cli("replay", "state")
    assert (adjusted.status, adjusted.version) == ("ACCEPTED", 3)
    assert unknown.rejection_code == "ITEM_NOT_REGISTERED"
    assert "0 differ from live" in verified.stdout, verified.stdout + verified.stderr
