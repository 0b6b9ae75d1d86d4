"""Isolation for read-side tests: own topic prefix, own read-model schema, all removed after."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
from confluent_kafka.admin import AdminClient
from psycopg import sql

from core.settings import Settings
from schemas.topic_admin import ensure_topics
from sinks.runner import SinkRunner


def isolated_settings(
    stack: Settings, partitions: int = 2, postgres: Settings | None = None, **sinks: object
) -> Settings:
    """Settings with a unique topic prefix and read-model schema (and ``sinks`` overrides)."""
    run = uuid.uuid4().hex[:8]
    base = postgres or stack
    return stack.model_copy(
        update={
            "kafka": stack.kafka.model_copy(update={"topic_prefix": f"s{run}-"}),
            "processor": stack.processor.model_copy(update={"partitions": partitions}),
            "postgres": base.postgres,
            "sinks": stack.sinks.model_copy(update={"postgres_schema": f"rm_{run}", **sinks}),
        }
    )


@contextmanager
def isolated(stack: Settings, partitions: int = 2, **sinks: object) -> Iterator[Settings]:
    """Isolated settings with the product's topics created; topics and schemas dropped after."""
    settings = isolated_settings(stack, partitions, None, **sinks)
    ensure_topics(settings)
    try:
        yield settings
    finally:
        drop_topics(settings)
        drop_read_models(settings)


def drop_topics(settings: Settings) -> None:
    prefix = settings.kafka.topic_prefix
    admin = AdminClient(settings.kafka.confluent_config())
    mine = [name for name in admin.list_topics(timeout=15).topics if name.startswith(prefix)]
    if mine:
        for future in admin.delete_topics(mine).values():
            future.result(timeout=30)


def drop_read_models(settings: Settings) -> None:
    """Drop the test's view schema and every table-set schema derived from it."""
    base = settings.sinks.postgres_schema
    with psycopg.connect(settings.postgres.conninfo(), autocommit=True) as conn:
        names = conn.execute(
            "SELECT nspname FROM pg_namespace WHERE nspname = %s OR nspname LIKE %s",
            (base, base.replace("_", r"\_") + r"\_\_%"),
        ).fetchall()
        for (name,) in names:
            conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(name)))


class RunningSinks:
    """Sink runners of some projections, each in a thread of this process."""

    def __init__(self, settings: Settings, projections: list[str]) -> None:
        from sinks.service import build_runner, prepared_serde

        self.settings = settings
        self.serde = prepared_serde(settings)
        self.runners = {name: build_runner(settings, name, self.serde) for name in projections}
        self._threads: list[threading.Thread] = []
        self.failures: list[BaseException] = []

    def __enter__(self) -> RunningSinks:
        for runner in self.runners.values():
            thread = threading.Thread(target=self._run, args=(runner,), name=runner.projection)
            thread.start()
            self._threads.append(thread)
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()

    def stop(self) -> None:
        for runner in self.runners.values():
            runner.stop()
        for thread in self._threads:
            thread.join(60)
        assert not any(t.is_alive() for t in self._threads), "a sink did not stop"
        assert not self.failures, self.failures

    def ready(self) -> bool:
        return all(r.health.readiness().ok for r in self.runners.values())

    def _run(self, runner: SinkRunner) -> None:
        try:
            runner.run(install_signal_handlers=False)
        except BaseException as error:
            self.failures.append(error)
            raise


def query(settings: Settings, statement: str, *params: object) -> list[tuple[Any, ...]]:
    """Rows of a query in which ``{base}`` names the read-model schema."""
    text = statement.format(base=settings.sinks.postgres_schema)
    with psycopg.connect(settings.postgres.conninfo(), autocommit=True) as conn:
        try:
            return list(conn.execute(text.encode(), params or None).fetchall())
        except psycopg.errors.UndefinedTable:
            return []


def table(settings: Settings, name: str, order_by: str) -> list[tuple[Any, ...]]:
    return query(settings, f"SELECT * FROM {{base}}.{name} ORDER BY {order_by}")
