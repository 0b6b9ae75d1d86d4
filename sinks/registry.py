"""The domain's projections, by name: what ``cqrs sink run``, ``cqrs projections`` and
read-your-writes find them by.

A domain declares each projection (``cqrs.Projection``) with a ``module:attribute``
reference to its ``ProjectionEntry``: build its sink, migrate its store, rebuild
it side by side, and (when it can) wait for an aggregate's version. Entries are
imported only when asked for, so the command line imports only the store it
works on. ``PostgresEntry`` is the entry of a PostgreSQL projection.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, cast

from core.domain import import_reference, load_domain
from core.errors import ConfigurationError, ProjectionTimeoutError
from core.settings import Settings
from schemas.serde import AvroSerde
from sinks.base import Sink
from sinks.rebuild import RebuildProgress, RebuildReport

STORES = ("postgres", "search")  # what a projection's store can be


class ProjectionEntry(Protocol):
    name: str
    description: str
    store: str  # one of STORES: which credentials and clients its processes need

    def build_sink(self, settings: Settings, serde: AvroSerde) -> Sink:
        """The sink that ``cqrs sink run <name>`` drives."""

    def migrate(self, settings: Settings) -> list[str]:
        """Create or upgrade the projection's store; what changed, as lines."""

    def rebuild(
        self, settings: Settings, serde: AvroSerde, progress: RebuildProgress
    ) -> RebuildReport:
        """Replay the log into a new target beside the live one, then switch to it."""

    def wait_for(
        self, settings: Settings, aggregate_id: str, version: int, timeout_s: float
    ) -> int:
        """Block until the projection shows ``version`` of the aggregate; returns what it shows.

        Raises ``ProjectionTimeoutError`` when the time runs out.
        """


@dataclass(frozen=True)
class PostgresEntry:
    """A PostgreSQL projection (``sinks.postgres``)."""

    name: str
    description: str
    factory: Callable[[Settings], Any]  # Settings -> PostgresProjection
    store: str = "postgres"

    def build_sink(self, settings: Settings, serde: AvroSerde) -> Sink:
        from sinks.postgres.database import Database
        from sinks.postgres.sink import PostgresSink
        from sinks.publication import ViewPublisher

        publisher = ViewPublisher(settings, serde) if settings.sinks.publish_views else None
        database = Database(settings.postgres, f"cqrs-sink-{self.name}")
        return PostgresSink(self.factory(settings), settings, database, publisher)

    def migrate(self, settings: Settings) -> list[str]:
        from sinks.postgres import schema
        from sinks.postgres.database import Database

        database = Database(settings.postgres, f"cqrs-migrate-{self.name}")
        try:
            with database.transaction() as cur:
                return schema.migrate(
                    cur, settings.sinks.postgres_schema, [self.factory(settings).plan]
                )
        finally:
            database.close()

    def rebuild(
        self, settings: Settings, serde: AvroSerde, progress: RebuildProgress
    ) -> RebuildReport:
        from sinks.postgres.rebuild import rebuild

        return rebuild(settings, self.factory(settings), serde, progress)

    def wait_for(
        self, settings: Settings, aggregate_id: str, version: int, timeout_s: float
    ) -> int:
        from sinks.postgres.read_your_writes import applied_version

        seen = applied_version(settings, self.factory(settings), aggregate_id, version, timeout_s)
        if seen is None:
            raise ProjectionTimeoutError(
                f"{self.name} did not show version {version} of {aggregate_id} within "
                f"{timeout_s:g}s; is `cqrs sink run {self.name}` running and caught up?"
            )
        return seen


def names(settings: Settings) -> list[str]:
    """The projections of the domain ``settings.domain`` names, in its order."""
    return [declared.name for declared in load_domain(settings.domain).projections]


def projection(name: str, settings: Settings) -> ProjectionEntry:
    """The entry of the domain's projection ``name``; ConfigurationError naming the known
    projections otherwise, or saying what its reference lacks."""
    declared = load_domain(settings.domain).projection(name)
    entry = import_reference(declared.entry, f"projection {name!r}")
    if not callable(getattr(entry, "build_sink", None)):
        raise ConfigurationError(
            f"projection {name!r}: {declared.entry} is not a projection entry "
            "(an object with build_sink, migrate, rebuild and wait_for)"
        )
    return cast(ProjectionEntry, entry)
