"""What a PostgreSQL projection provides to the generic sink (``sinks.postgres.sink``)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from psycopg import sql

from sinks.base import Entry, EventRecord
from sinks.postgres.schema import Cursor, Migration, SchemaPlan

C = TypeVar("C")


@dataclass(frozen=True)
class View:
    """One record for a projection topic: its key and its Avro value."""

    key: str
    value: dict[str, Any]


@dataclass
class Applied:
    """What one batch changed: views to publish (per source partition), late events."""

    views: dict[int, list[View]] = field(default_factory=dict)
    late_events: int = 0

    def add(self, partition: int, view: View) -> None:
        self.views.setdefault(partition, []).append(view)

    @property
    def view_count(self) -> int:
        return sum(len(views) for views in self.views.values())


class PostgresProjection(ABC, Generic[C]):
    """Pure conversion plus the SQL of one projection; the sink does transactions and offsets."""

    name: str  # e.g. "order-summary"
    description: str
    exposed: tuple[str, ...]  # tables readers query, as views in the base schema
    migrations: tuple[Migration, ...]
    view_topic: str | None = None  # logical projection topic, e.g. "order-summary"
    view_record: str | None = None  # its Avro record, e.g. "cqrs.views.OrderSummary"
    version_table: str | None = None  # exposed table with (id, version) for read-your-writes
    version_key: str = ""  # its id column
    event_types: frozenset[str] | None = None  # events it applies (None: all); see Sink

    @property
    def plan(self) -> SchemaPlan:
        return SchemaPlan(self.name, self.migrations, self.exposed)

    @abstractmethod
    def convert(self, record: EventRecord) -> C | None:
        """Pure: the change one event makes (None if irrelevant); InvalidEventError for poison."""

    @abstractmethod
    def apply(
        self, cur: Cursor, schema: str, entries: Sequence[Entry[C]], *, views: bool = True
    ) -> Applied:
        """Write the entries' changes into the table set ``schema`` (inside the transaction).

        ``views`` says whether the changed views are wanted (for publication);
        a projection may skip building them when not.
        """

    def load_views(self, cur: Cursor, schema: str, keys: Sequence[str]) -> list[View]:
        """Current views of ``keys`` (to publish again after a crash); none by default."""
        return []

    def version_query(self, base: str) -> sql.Composed | None:
        """``SELECT version`` of one aggregate's row, for read-your-writes."""
        if self.version_table is None:
            return None
        return sql.SQL("SELECT version FROM {} WHERE {} = %s").format(
            sql.Identifier(base, self.version_table), sql.Identifier(self.version_key)
        )
