"""A search projection as ``cqrs sink run``, ``cqrs projections`` and read-your-writes
find it (``sinks.registry``): ``SearchEntry(ProjectionClass)``."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from core.errors import ResourceMissingError
from core.settings import Settings
from schemas.serde import AvroSerde
from sinks.base import Sink
from sinks.rebuild import RebuildProgress, RebuildReport
from sinks.search.backend import open_backend
from sinks.search.index import SearchIndex
from sinks.search.projection import SearchProjection
from sinks.search.rebuild import rebuild_search_index
from sinks.search.sink import build_search_sink

POLL_INTERVAL_S = 0.1


@dataclass(frozen=True)
class SearchEntry:
    """The entry of a search projection; ``factory`` builds it (its class will do)."""

    factory: Callable[[], SearchProjection[Any, Any]]
    store: str = "search"

    @property
    def name(self) -> str:
        return self.factory().name

    @property
    def description(self) -> str:
        return self.factory().description

    def build_sink(self, settings: Settings, serde: AvroSerde) -> Sink:
        return build_search_sink(settings, self.factory())

    def migrate(self, settings: Settings) -> list[str]:
        """Create the first index generation behind the alias when there is none."""
        backend = open_backend(settings.search)
        try:
            index = SearchIndex(backend, settings.search, self.factory())
            if index.live_index() is not None:
                return []
            created = index.ensure()
            return [f"index {created} behind alias {index.alias}"]
        finally:
            backend.close()

    def rebuild(
        self, settings: Settings, serde: AvroSerde, progress: RebuildProgress
    ) -> RebuildReport:
        return rebuild_search_index(settings, self.factory(), serde, progress)

    def wait_for(
        self, settings: Settings, aggregate_id: str, version: int, timeout_s: float
    ) -> int:
        """Wait until the aggregate's document has ``version`` (read in real time)."""
        from core.errors import ProjectionTimeoutError

        backend = open_backend(settings.search)
        alias = SearchIndex(backend, settings.search, self.factory()).alias
        deadline = time.monotonic() + timeout_s
        seen = 0
        try:
            while True:
                try:
                    found = backend.get_documents(alias, [aggregate_id]).get(aggregate_id)
                except ResourceMissingError:
                    found = None  # no index yet: the sink has not started
                seen = found.version if found else 0
                if seen >= version:
                    return seen
                if time.monotonic() >= deadline:
                    raise ProjectionTimeoutError(
                        f"{self.name} shows version {seen} of {aggregate_id}, not {version}, "
                        f"after {timeout_s:g}s; is `cqrs sink run {self.name}` running and "
                        "caught up?"
                    )
                time.sleep(POLL_INTERVAL_S)
        finally:
            backend.close()
