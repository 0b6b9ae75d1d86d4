"""The read side end to end: `cqrs worker` writes events, `cqrs sink run` projects them.

Commands go through the real command processor; the sinks run as the real
``cqrs sink run`` process with its observability endpoints; clients read their
own writes with ``wait_for_projection`` and ``cqrs send --wait-projection``.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator

import httpx
import pytest

from core.errors import ProjectionTimeoutError
from core.settings import Settings
from cqrs.cli import EXIT_REJECTED
from cqrs.client import CommandClient
from tests.integration.pipeline import Pipeline, WorkerProcess, answers_ok, wait_until
from tests.integration.sink_support import drop_read_models, query

WAIT = ("--wait-projection", "order-summary")
PG_PROJECTIONS = ("order-summary", "inventory-levels", "sales-analytics")
ADDRESS = {"name": "Ada", "street": "1 Loop", "city": "Paris", "postal_code": "1", "country": "FR"}


@pytest.fixture(scope="module")
def pipeline(local_stack: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pipeline]:
    created = Pipeline.create(
        local_stack, tmp_path_factory.mktemp("logs"), tmp_path_factory.mktemp("state")
    )
    schema = f"rm_{uuid.uuid4().hex[:8]}"
    env = {**created.env, "CQRS_SINKS__POSTGRES_SCHEMA": schema}
    settings = created.settings.model_copy(
        update={"sinks": created.settings.sinks.model_copy(update={"postgres_schema": schema})}
    )
    pipeline = Pipeline(settings, env, created.logs)
    worker = pipeline.process("worker", name="worker")
    worker.start()
    yield pipeline
    worker.stop()
    drop_read_models(settings)


@pytest.fixture(scope="module")
def sinks(pipeline: Pipeline) -> Iterator[WorkerProcess]:
    process = pipeline.process("sink", "run", *PG_PROJECTIONS, name="sinks", ready="consuming")
    process.start()
    yield process
    process.stop()


def endpoint(process: WorkerProcess) -> str:
    found = re.search(r"endpoints on (http://\S+)", process.output())
    assert found, process.tail()
    return found.group(1)


def test_clients_read_their_own_writes_from_the_read_models(
    pipeline: Pipeline, sinks: WorkerProcess, client: CommandClient
) -> None:
    sku, order_id = f"sku-{uuid.uuid4().hex[:6]}", f"o-{uuid.uuid4().hex[:6]}"
    assert client.send_and_wait("RegisterItem", sku, {"name": "Mug"}).accepted
    restocked = client.send_and_wait("AdjustStock", sku, {"delta": 7, "reason": "RESTOCK"})
    assert restocked.version == 2
    assert client.wait_for_projection("inventory-levels", sku, 2, timeout_s=60) >= 2
    assert query(
        pipeline.settings,
        "SELECT name, on_hand, available FROM {base}.inventory_levels WHERE sku = %s",
        sku,
    ) == [("Mug", 7, 7)]

    placed = client.send_and_wait(
        "PlaceOrder",
        order_id,
        {
            "customer_id": "c-9",
            "shipping_address": ADDRESS,
            "lines": [{"sku": sku, "quantity": 2, "unit_price_cents": 450}],
        },
    )
    assert placed.accepted and placed.version == 1
    client.wait_for_projection("order-summary", order_id, 1, timeout_s=60)
    assert query(
        pipeline.settings,
        "SELECT status, total_cents, item_count FROM {base}.order_summary WHERE order_id = %s",
        order_id,
    ) == [("PLACED", 900, 2)]

    # The command line: the command's result is printed once the read model shows it.
    sent = pipeline.cli("send", "ConfirmOrder", "-a", order_id, *WAIT)
    assert sent.returncode == 0, sent.stderr[-2000:]
    assert '"version": 2' in sent.stdout
    assert query(
        pipeline.settings,
        "SELECT status, version FROM {base}.order_summary WHERE order_id = %s",
        order_id,
    ) == [("CONFIRMED", 2)]
    # A rejection is an answer, not a failure: printed, with an exit code of its own.
    again = pipeline.cli("send", "ConfirmOrder", "-a", order_id)
    assert again.returncode == EXIT_REJECTED, again.stderr[-2000:]
    assert '"status": "REJECTED"' in again.stdout
    assert query(
        pipeline.settings,
        "SELECT customer_id, status FROM {base}.customer_orders WHERE order_id = %s",
        order_id,
    ) == [("c-9", "CONFIRMED")]

    with pytest.raises(ProjectionTimeoutError, match="did not show version 9"):
        client.wait_for_projection("order-summary", order_id, 9, timeout_s=1.5)


def test_the_sink_process_serves_metrics_and_health_and_stops_gracefully(
    pipeline: Pipeline, sinks: WorkerProcess, client: CommandClient
) -> None:
    sku = f"sku-{uuid.uuid4().hex[:6]}"
    result = client.send_and_wait("RegisterItem", sku, {"name": "Cup"})
    client.wait_for_projection("inventory-levels", sku, result.version or 1, timeout_s=60)
    base = endpoint(sinks)
    wait_until(lambda: answers_ok(f"{base}/readyz"), 60, "/readyz ok")
    assert httpx.get(f"{base}/livez").status_code == 200
    metrics = httpx.get(f"{base}/metrics").text
    applied = re.search(
        r'cqrs_events_applied_total\{projection="inventory-levels"\} (\S+)', metrics
    )
    assert applied and float(applied.group(1)) >= 1
    assert 'cqrs_projection_position{partition="' in metrics

    assert sinks.process is not None
    sinks.process.terminate()
    assert sinks.process.wait(60) == 0
    log = sinks.output()
    for name in PG_PROJECTIONS:
        assert f"sink {name} stopped" in log
