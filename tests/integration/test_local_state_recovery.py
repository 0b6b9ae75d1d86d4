"""RocksDB tables under exactly-once: kept across a clean stop, rebuilt after a kill."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from cqrs.client import CommandClient
from cqrs.settings import Settings
from processors.local_state import CLEAN_STOP_MARKER
from tests.integration.pipeline import Pipeline

DROPPED = "did not stop cleanly: dropping its local tables"


@pytest.fixture(scope="module")
def pipeline(local_stack: Settings, tmp_path_factory: pytest.TempPathFactory) -> Pipeline:
    logs = tmp_path_factory.mktemp("local-state")
    created = Pipeline.create(local_stack, logs, logs / "state", partitions=2)
    return Pipeline(created.settings, {**created.env, "CQRS_PROCESSOR__STORE": "rocksdb://"}, logs)


def _tables(pipeline: Pipeline) -> Path:
    processor = pipeline.settings.processor
    return processor.datadir / processor.app_id / "v1" / "tables"


def test_tables_survive_a_clean_stop_and_are_rebuilt_after_a_kill(
    pipeline: Pipeline, client: CommandClient
) -> None:
    sku = f"sku-{uuid.uuid4().hex[:8]}"
    worker = pipeline.process("worker", name="worker")

    worker.start()
    assert client.send_and_wait("RegisterItem", sku, {"name": "Lamp"}).version == 1
    worker.stop()
    assert (_tables(pipeline) / CLEAN_STOP_MARKER).exists()

    offset = worker.log.stat().st_size
    worker.start()
    assert DROPPED not in worker.output(offset)
    adjusted = client.send_and_wait("AdjustStock", sku, {"delta": 5, "reason": "RESTOCK"})
    assert adjusted.version == 2
    worker.kill()
    assert not (_tables(pipeline) / CLEAN_STOP_MARKER).exists()

    offset = worker.log.stat().st_size
    worker.start()
    try:
        assert DROPPED in worker.output(offset)
        # Restored from the changelog: the aggregate goes on from its committed version.
        adjusted = client.send_and_wait("AdjustStock", sku, {"delta": 1, "reason": "RESTOCK"})
        assert adjusted.version == 3
    finally:
        worker.stop()
