"""PostgreSQL stopped for 20 s in the middle of a stream: nothing lost, nothing doubled.

The test starts a private PostgreSQL server (the stack's own classes, another
home and port), never the shared one, and stops and restarts that one.
"""

from __future__ import annotations

import os
import socket
import tempfile
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from prometheus_client import REGISTRY

from core.settings import Settings
from deploy.stack.postgres import PostgresService
from deploy.stack.processes import launch, stop
from schemas.topic_admin import ensure_topics
from tests.integration.event_log import T0, EventLog, line
from tests.integration.pipeline import wait_until
from tests.integration.sink_support import (
    RunningSinks,
    drop_topics,
    isolated_settings,
    query,
)

ORDERS = 240
BATCHES = 48  # transactions, written over the outage
PROJECTIONS = ["order-summary", "inventory-levels", "sales-analytics"]


class PrivatePostgres:
    """A PostgreSQL server of this test only."""

    def __init__(self, stack: Settings, home: Path) -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        self.settings = stack.model_copy(
            update={
                "stack": stack.stack.model_copy(update={"home": home}),
                "postgres": stack.postgres.model_copy(update={"port": port}),
            }
        )
        self.service = PostgresService(self.settings)

    def start(self) -> None:
        self.service.prepare(lambda _: None)
        launch(self.service.launch_spec(), self.service.pid_path)
        deadline = time.monotonic() + 60
        while not self.service.probe():
            assert time.monotonic() < deadline, "private PostgreSQL did not start"
            time.sleep(0.3)
        self.service.initialize()

    def stop(self) -> None:
        stop(self.service.pid_path)


@pytest.fixture
def private_postgres(local_stack: Settings) -> Iterator[PrivatePostgres]:
    home = Path(tempfile.mkdtemp(prefix="cqrs-private-pg-"))
    os.chmod(home, 0o755)  # the server may run as an unprivileged user
    server = PrivatePostgres(local_stack, home)
    server.start()
    yield server
    server.stop()


def write_stream(log: EventLog, done: threading.Event) -> None:
    for number in range(3):
        log.item(f"sku-{number}", "ItemRegistered", name=f"Item {number}")
        log.item(f"sku-{number}", "StockAdjusted", delta=1000, reason="RESTOCK")
    per_batch = ORDERS // BATCHES
    for batch in range(BATCHES):
        for number in range(batch * per_batch, (batch + 1) * per_batch):
            order_id, sku = f"o-{number:04d}", f"sku-{number % 3}"
            quantity = 1 + number % 2
            at = T0 + timedelta(seconds=number)
            log.placed(order_id, "c-1", [line(sku, quantity, 100)], at=at)
            log.item(sku, "StockReserved", at, order_id=order_id, quantity=quantity)
            log.order(order_id, "OrderConfirmed", at + timedelta(seconds=1))
        log.commit()
        time.sleep(0.5)
    done.set()


def expected_reserved() -> list[tuple[str, int, int]]:
    reserved = [0, 0, 0]
    for number in range(ORDERS):
        reserved[number % 3] += 1 + number % 2
    return [(f"sku-{n}", 1000, reserved[n]) for n in range(3)]


def test_a_postgres_outage_loses_nothing_and_doubles_nothing(
    local_stack: Settings, private_postgres: PrivatePostgres
) -> None:
    settings = isolated_settings(local_stack, partitions=2, postgres=private_postgres.settings)
    settings = settings.model_copy(
        update={"sinks": settings.sinks.model_copy(update={"retry_max_s": 4.0})}
    )
    ensure_topics(settings)
    retries_before = sum(
        REGISTRY.get_sample_value(
            "cqrs_sink_errors_total", {"projection": name, "kind": "retryable"}
        )
        or 0
        for name in PROJECTIONS
    )
    try:
        with RunningSinks(settings, PROJECTIONS) as sinks:
            log = EventLog(settings, sinks.serde)
            written = threading.Event()
            writer = threading.Thread(target=write_stream, args=(log, written))
            writer.start()
            wait_until(lambda: count_orders(settings) >= ORDERS // 5, 60, "some orders applied")

            private_postgres.stop()
            outage_started = time.monotonic()
            reasons = wait_until(
                lambda: [
                    r.health.readiness().reason
                    for r in sinks.runners.values()
                    if not r.health.readiness().ok
                ],
                30,
                "the sinks to notice the outage",
            )
            assert any("cannot write the batch" in reason for reason in reasons), reasons
            time.sleep(max(0.0, 20 - (time.monotonic() - outage_started)))
            private_postgres.start()

            writer.join(120)
            assert written.is_set()
            wait_until(lambda: count_orders(settings) == ORDERS, 120, "every order applied")
            wait_until(lambda: levels(settings) == expected_reserved(), 60, "levels caught up")
            wait_until(lambda: overall(settings) == (revenue(), ORDERS), 60, "sales caught up")
            wait_until(sinks.ready, 60, "sinks ready again")
        assert count_orders(settings) == ORDERS
        assert query(settings, "SELECT count(*) FROM {base}.order_summary WHERE version <> 2") == [
            (0,)
        ]
        assert levels(settings) == expected_reserved()
        assert overall(settings) == (revenue(), ORDERS)
        retries_after = sum(
            REGISTRY.get_sample_value(
                "cqrs_sink_errors_total", {"projection": name, "kind": "retryable"}
            )
            or 0
            for name in PROJECTIONS
        )
        assert retries_after > retries_before
    finally:
        drop_topics(settings)


def count_orders(settings: Settings) -> int:
    rows = query(settings, "SELECT count(*) FROM {base}.order_summary WHERE status = 'CONFIRMED'")
    return int(rows[0][0]) if rows else 0


def levels(settings: Settings) -> list[tuple[object, ...]]:
    return query(settings, "SELECT sku, on_hand, reserved FROM {base}.inventory_levels ORDER BY 1")


def revenue() -> int:
    return sum((1 + number % 2) * 100 for number in range(ORDERS))


def overall(settings: Settings) -> tuple[int, int]:
    rows = query(
        settings,
        "SELECT coalesce(sum(revenue_cents), 0), coalesce(sum(order_count), 0) "
        "FROM {base}.sales_windows WHERE granularity = 'MINUTE' AND sku = '*'",
    )
    return (int(rows[0][0]), int(rows[0][1])) if rows else (0, 0)
