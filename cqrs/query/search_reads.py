"""Reads of the domain's search projections for the query service: search, get, version.

Synchronous on purpose: the service calls a ``SearchReader`` from its thread
pool, and the search clients are thread-safe, so one reader (one connection
pool to the engine) serves every request of a process. Reads go through each
projection's alias, never an index generation, so a rebuild's switch is seen
at once.

A projection whose index does not exist yet (its sink never ran) reads as
empty: no hits, no documents, version 0.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from core.errors import ResourceMissingError, UnknownProjectionError
from core.settings import Settings
from cqrs.query.search_query import (
    SearchFields,
    SearchPage,
    build_search,
    check_limits,
    search_fields,
    search_page,
)
from sinks import registry
from sinks.search.backend import SearchBackend, open_backend
from sinks.search.entry import SearchEntry
from sinks.search.index import SearchIndex


@dataclass(frozen=True)
class _Readable:
    alias: str
    fields: SearchFields


class SearchReader:
    """The domain's search projections, read through one backend (closed with the reader)."""

    def __init__(
        self,
        settings: Settings,
        *,
        backend: SearchBackend | None = None,
        default_size: int = 20,
        max_size: int = 100,
        max_window: int = 10_000,
    ) -> None:
        check_limits(default_size, max_size, max_window)
        self._default_size = default_size
        self._max_size = max_size
        self._max_window = max_window
        self._backend = backend or open_backend(settings.search)
        self._readable: dict[str, _Readable] = {}
        for name in registry.names(settings):
            entry = registry.projection(name, settings)
            if entry.store != "search" or not isinstance(entry, SearchEntry):
                continue
            projection = entry.factory()
            alias = SearchIndex(self._backend, settings.search, projection).alias
            self._readable[name] = _Readable(alias, search_fields(projection.mappings))

    def projections(self) -> list[str]:
        """The names of the domain's search projections, in the domain's order."""
        return list(self._readable)

    def alias(self, name: str) -> str:
        return self._projection(name).alias

    def fields(self, name: str) -> SearchFields:
        return self._projection(name).fields

    def search(
        self, name: str, params: Mapping[str, Sequence[str]], *, ignored: Collection[str] = ()
    ) -> SearchPage:
        """One page of hits; ``SearchParameterError`` for a parameter the projection refuses."""
        readable = self._projection(name)
        request = build_search(
            readable.fields,
            params,
            default_size=self._default_size,
            max_size=self._max_size,
            max_window=self._max_window,
            ignored=ignored,
        )
        try:
            response = self._backend.run_search(readable.alias, request.body)
        except ResourceMissingError:
            response = {"hits": {"total": {"value": 0, "relation": "eq"}, "hits": []}}
        return search_page(response, request)

    def get(self, name: str, document_id: str) -> dict[str, Any] | None:
        """The document as it is now (real-time: written but not yet refreshed counts)."""
        found = self._stored(name, document_id)
        return dict(found[0]) if found else None

    def version(self, name: str, document_id: str) -> int:
        """The aggregate version the document shows; 0 when there is none."""
        found = self._stored(name, document_id)
        return found[1] if found else 0

    def refresh(self, name: str) -> None:
        """Make everything written so far searchable (tests, read-your-writes searches)."""
        try:
            self._backend.refresh(self._projection(name).alias)
        except ResourceMissingError:
            return  # no index yet: nothing to refresh

    def close(self) -> None:
        self._backend.close()

    def __enter__(self) -> SearchReader:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.close()

    def _projection(self, name: str) -> _Readable:
        readable = self._readable.get(name)
        if readable is None:
            raise UnknownProjectionError(name, list(self._readable))
        return readable

    def _stored(self, name: str, document_id: str) -> tuple[Mapping[str, Any], int] | None:
        alias = self._projection(name).alias
        if not document_id:
            return None  # the engine refuses an empty id; no document has one
        try:
            found = self._backend.get_documents(alias, [document_id]).get(document_id)
        except ResourceMissingError:
            return None
        return (found.source, found.version) if found else None
