"""Poison events, late sales and side-by-side rebuilds of the PostgreSQL read models."""

from __future__ import annotations

import threading
from datetime import timedelta
from typing import Any

from prometheus_client import REGISTRY

from core.settings import Settings
from sinks.registry import projection
from sinks.service import prepared_serde
from tests.integration.event_log import ADDRESS, T0, EventLog, line
from tests.integration.pipeline import read_topic, wait_until
from tests.integration.sink_support import RunningSinks, isolated, query, table


def at(seconds: float) -> Any:
    return T0 + timedelta(seconds=seconds)


def statuses(settings: Settings) -> dict[str, str]:
    rows = query(settings, "SELECT order_id, status FROM {base}.order_summary")
    return {str(order_id): str(status) for order_id, status in rows}


def test_poison_goes_to_the_dead_letter_topic_and_later_events_are_applied(
    local_stack: Settings,
) -> None:
    with isolated(local_stack, partitions=1) as settings:
        with RunningSinks(settings, ["order-summary"]) as sinks:
            log = EventLog(settings, sinks.serde)
            log.placed("o-1", "c-1", [line("sku-A", 1, 100)], at=at(1))
            log.raw("o-x", b"\x00\x00\x00\x7f\xffnot a registered schema")
            tampered = {
                "customer_id": "c-1",
                "lines": [line("sku-A", 1, 100)],
                "shipping_address": ADDRESS,
                "currency": "EUR",
                "total_cents": 999,  # the lines add up to 100
            }
            log.event("Order", "o-bad", "OrderPlaced", tampered, at=at(2))
            log.order("o-1", "OrderConfirmed", at(3))
            log.placed("o-2", "c-1", [line("sku-A", 2, 100)], at=at(4))
            log.order("o-2", "OrderCancelled", at(6), reason="late")
            log.commit()
            wait_until(lambda: statuses(settings) == {"o-1": "CONFIRMED", "o-2": "CANCELLED"}, 60)

        letters = read_topic(settings, settings.kafka.topic_prefix + "events-dlq")
        headers = [dict(h) for _, _, h in letters]
        assert [h["error.code"] for h in headers] == [b"UNKNOWN_SCHEMA_ID", b"TOTAL_MISMATCH"]
        unknown, mismatch = headers
        assert unknown["error.class"] == b"UnknownSchemaIdError"
        assert mismatch["error.class"] == b"InvalidEventError"
        assert b"lines add up to 100" in mismatch["error.message"]
        for found in headers:
            assert found["original.topic"] == (settings.kafka.topic_prefix + "events").encode()
            assert found["original.partition"] == b"0"
            assert found["dead_letter.component"] == b"sink-order-summary"
        assert unknown["original.offset"] == b"1"
        assert letters[0][:2] == (b"o-x", b"\x00\x00\x00\x7f\xffnot a registered schema")
        dead = REGISTRY.get_sample_value(
            "cqrs_dead_letters_total", {"component": "sink-order-summary"}
        )
        assert dead is not None and dead >= 2


def windows(settings: Settings) -> list[tuple[Any, ...]]:
    return query(
        settings,
        "SELECT granularity, window_start, sku, revenue_cents, units, order_count "
        "FROM {base}.sales_windows WHERE sku = '*' ORDER BY granularity, window_start",
    )


def test_late_sales_count_within_the_grace_period_and_are_set_aside_after_it(
    local_stack: Settings,
) -> None:
    # One partition: every event moves the same watermark. Grace: 60 s.
    with isolated(local_stack, partitions=1, analytics_grace_s=60.0) as settings:
        late_before = REGISTRY.get_sample_value(
            "cqrs_late_events_total", {"projection": "sales-analytics"}
        )
        with RunningSinks(settings, ["sales-analytics"]) as sinks:
            log = EventLog(settings, sinks.serde)
            for number, seconds in (("a", 0), ("b", 1), ("c", 2)):
                log.placed(f"o-{number}", "c-1", [line("sku-A", 1, 100)], at=at(seconds))
            log.item("sku-A", "StockAdjusted", at(100), delta=1, reason="RESTOCK")
            # 12:00 window ends at 12:01; watermark 12:01:40 < 12:01 + 60 s: still counts.
            log.order("o-a", "OrderConfirmed", at(30))
            log.item("sku-A", "StockAdjusted", at(200), delta=1, reason="RESTOCK")
            # Watermark 12:03:20 is past 12:01 + 60 s: too late for the 12:00 window.
            log.order("o-b", "OrderConfirmed", at(40))
            log.order("o-c", "OrderConfirmed", at(205))  # on time, in the 12:03 window
            log.commit()
            wait_until(
                lambda: query(settings, "SELECT order_id FROM {base}.sales_late_events"),
                60,
                "the late sale recorded",
            )
            wait_until(lambda: len(windows(settings)) == 3, 30, "three windows")

        minute = timedelta(minutes=1)
        assert windows(settings) == [
            ("HOUR", T0, "*", 200, 2, 2),
            ("MINUTE", T0, "*", 100, 1, 1),
            ("MINUTE", T0 + 3 * minute, "*", 100, 1, 1),
        ]
        [(order_id, occurred_at, watermark)] = query(
            settings, "SELECT order_id, occurred_at, watermark FROM {base}.sales_late_events"
        )
        assert (order_id, occurred_at, watermark) == ("o-b", at(40), at(200))
        late_after = REGISTRY.get_sample_value(
            "cqrs_late_events_total", {"projection": "sales-analytics"}
        )
        assert late_after == (late_before or 0) + 1


def write_orders(log: EventLog, first: int, count: int) -> None:
    for number in range(first, first + count):
        order_id = f"o-{number:04d}"
        sku = f"sku-{number % 7}"
        log.placed(order_id, f"c-{number % 5}", [line(sku, 1 + number % 3, 100)], at=at(number))
        if number % 4:
            log.order(order_id, "OrderConfirmed", at(number + 30))
        if number % 4 == 2:
            log.order(order_id, "OrderShipped", at(number + 90))
        if number % 4 == 0:
            log.order(order_id, "OrderRejected", at(number + 30), reason="no stock")
    log.commit()


def test_a_rebuild_under_load_equals_a_projection_built_from_scratch(
    local_stack: Settings,
) -> None:
    names = ["order-summary", "sales-analytics"]
    with isolated(local_stack, partitions=3, batch_max_records=200) as live:
        with RunningSinks(live, names) as sinks:
            log = EventLog(live, sinks.serde)
            write_orders(log, 0, 400)
            wait_until(lambda: len(statuses(live)) == 400, 90, "the first orders applied")
            serde = prepared_serde(live)
            reports = []

            def rebuild_all() -> None:
                for name in names:
                    reports.append(projection(name, live).rebuild(live, serde, QuietProgress()))

            rebuilding = threading.Thread(target=rebuild_all)
            rebuilding.start()
            write_orders(log, 400, 300)  # the live sinks keep writing during the rebuild
            rebuilding.join(180)
            assert not rebuilding.is_alive()
            wait_until(lambda: len(statuses(live)) == 700, 90, "every order applied")
            wait_until(sinks.ready, 30)
        assert [r.target for r in reports] == [
            f"{live.sinks.postgres_schema}__order_summary_2",
            f"{live.sinks.postgres_schema}__sales_analytics_2",
        ]
        assert all(r.replayed > 0 for r in reports)
        assert not query(
            live,
            "SELECT nspname FROM pg_namespace WHERE nspname LIKE '{base}\\_\\_%\\_1'",
        ), "the old table sets are dropped"

        # The same events, projected from scratch into another schema.
        scratch = live.model_copy(
            update={
                "sinks": live.sinks.model_copy(
                    update={"postgres_schema": live.sinks.postgres_schema + "_x"}
                ),
                "kafka": live.kafka,
            }
        )
        try:
            with RunningSinks(scratch, names) as fresh:
                wait_until(lambda: len(statuses(scratch)) == 700, 90, "the scratch build")
                wait_until(fresh.ready, 30)
            for name, order in (
                ("order_summary", "order_id"),
                ("customer_orders", "customer_id, order_id"),
                ("sales_windows", "granularity, window_start, sku, currency"),
            ):
                assert table(live, name, order) == table(scratch, name, order), name
        finally:
            from tests.integration.sink_support import drop_read_models

            drop_read_models(scratch)


class QuietProgress:
    def phase(self, description: str, total: int) -> None:
        pass

    def advance(self, records: int) -> None:
        pass
