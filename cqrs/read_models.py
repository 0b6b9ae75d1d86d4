"""The public API of read models: what a team imports to write a PostgreSQL projection.

    from cqrs.read_models import EventRecord, Migration, PostgresEntry, PostgresProjection

A projection is a pure ``convert(record) -> change`` plus an ``apply`` that
writes a batch of changes in the sink's transaction, its tables created by
numbered ``Migration``s; a ``PostgresEntry`` names it for the domain's
``Projection(name, "package.module:ENTRY")``. Kept apart from ``cqrs`` so that
a worker, which never writes a read model, never imports a database client.
See docs/domain.md.
"""

from sinks.base import Entry, EventRecord
from sinks.postgres.projection import Applied, PostgresProjection
from sinks.postgres.schema import Cursor, Migration, position_tables
from sinks.registry import PostgresEntry, ProjectionEntry

__all__ = [
    "Applied",
    "Cursor",
    "Entry",
    "EventRecord",
    "Migration",
    "PostgresEntry",
    "PostgresProjection",
    "ProjectionEntry",
    "position_tables",
]
