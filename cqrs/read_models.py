"""The public API of read models: what a team imports to write a projection.

    from cqrs.read_models import EventRecord, Migration, PostgresEntry, PostgresProjection

A PostgreSQL projection is a pure ``convert(record) -> change`` plus an
``apply`` that writes a batch of changes in the sink's transaction, its tables
created by numbered ``Migration``s; a ``PostgresEntry`` names it for the
domain's ``Projection(name, "package.module:ENTRY")``. A search projection
(``SearchProjection``) declares its mapping (with the building blocks below),
a pure ``convert`` and ``apply`` that fold events into one document per
aggregate, and is named by a ``SearchEntry``. Kept apart from ``cqrs`` so that
a worker, which never writes a read model, never imports a database client.
``sql`` is psycopg's SQL composition, for the statements of ``apply`` and the
migrations. See docs/domain.md.
"""

from psycopg import sql

from core.errors import InvalidEventError
from sinks.base import Entry, EventRecord
from sinks.postgres.projection import Applied, PostgresProjection
from sinks.postgres.schema import Cursor, Migration, position_tables
from sinks.registry import PostgresEntry, ProjectionEntry
from sinks.search.entry import SearchEntry
from sinks.search.mapping import (
    DATE,
    INTEGER,
    KEYWORD,
    LONG,
    SEARCH_TEXT,
    copied_keyword,
    text_field,
)
from sinks.search.projection import SearchProjection

__all__ = [
    "DATE",
    "INTEGER",
    "KEYWORD",
    "LONG",
    "SEARCH_TEXT",
    "Applied",
    "Cursor",
    "Entry",
    "EventRecord",
    "InvalidEventError",
    "Migration",
    "PostgresEntry",
    "PostgresProjection",
    "ProjectionEntry",
    "SearchEntry",
    "SearchProjection",
    "copied_keyword",
    "position_tables",
    "sql",
    "text_field",
]
