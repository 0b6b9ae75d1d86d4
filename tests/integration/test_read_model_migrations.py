"""Versioned migrations of the read models: once each, in order, under a lock, views current."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
from psycopg import sql

from aggregates.read_side.order_summary import OrderSummaryProjection
from core.settings import Settings
from sinks.postgres import schema
from sinks.postgres.database import Database
from sinks.postgres.schema import Migration, SchemaPlan
from tests.integration.sink_support import drop_read_models, isolated_settings, query


@pytest.fixture
def isolated(local_stack: Settings) -> Iterator[Settings]:
    settings = isolated_settings(local_stack)
    yield settings
    drop_read_models(settings)


def migrate(settings: Settings, plans: list[SchemaPlan]) -> list[str]:
    database = Database(settings.postgres, "migration-test")
    try:
        with database.transaction() as cur:
            return schema.migrate(cur, settings.sinks.postgres_schema, plans)
    finally:
        database.close()


def test_migrations_run_once_and_views_follow_new_columns(isolated: Settings) -> None:
    settings = isolated
    plan = OrderSummaryProjection().plan
    first = migrate(settings, [plan])
    assert first == [
        "base #1 projection sets",
        f"order-summary: {settings.sinks.postgres_schema}__order_summary_1 #1 "
        "order_summary and customer_orders",
    ]
    assert migrate(settings, [plan]) == []

    def add_note(table_set: str) -> list[sql.Composed]:
        return [
            sql.SQL("ALTER TABLE {} ADD COLUMN note text NOT NULL DEFAULT ''").format(
                sql.Identifier(table_set, "order_summary")
            )
        ]

    evolved = SchemaPlan(
        plan.projection, [*plan.migrations, Migration(2, "order note", add_note)], plan.exposed
    )
    assert migrate(settings, [evolved]) == [
        f"order-summary: {settings.sinks.postgres_schema}__order_summary_1 #2 order note"
    ]
    assert migrate(settings, [evolved]) == []
    columns = query(
        settings,
        "SELECT column_name FROM information_schema.columns "
        "WHERE table_schema = '{base}' AND table_name = 'order_summary' ORDER BY ordinal_position",
    )
    assert columns[-1] == ("note",)  # the view was recreated over the new column
    assert query(
        settings, "SELECT scope, number FROM {base}.schema_migrations ORDER BY scope, number"
    ) == [
        ("base", 1),
        (f"{settings.sinks.postgres_schema}__order_summary_1", 1),
        (f"{settings.sinks.postgres_schema}__order_summary_1", 2),
    ]


def test_processes_migrating_together_apply_each_migration_once(isolated: Settings) -> None:
    settings = isolated
    plan = OrderSummaryProjection().plan
    results: list[list[str]] = []
    failures: list[BaseException] = []

    def run() -> None:
        try:
            results.append(migrate(settings, [plan]))
        except BaseException as error:
            failures.append(error)

    threads = [threading.Thread(target=run) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not failures, failures
    assert sorted(len(lines) for lines in results) == [0, 0, 0, 2]
