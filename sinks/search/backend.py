"""One interface to the search engine, with an OpenSearch and an Elasticsearch backend.

The sink, the index manager and the rebuild only speak ``SearchBackend``;
``open_backend(settings)`` picks the implementation from ``search.engine``.
Both backends convert their client's errors at the edge into ``SinkError``:

| failure | retryable | why |
|---|---|---|
| connection refused, timeout, TLS handshake | yes | the engine is down or busy |
| HTTP 429, 5xx | yes | overloaded or recovering |
| HTTP 404 on an index or alias | yes | an alias swap in progress, or a deleted index |
| HTTP 401, 403 | no | credentials or permissions: a broken deployment |
| other HTTP 4xx | no | a request the engine will never accept |

Per-document outcomes of a bulk request are returned, not raised: a 409
version conflict is how external versioning refuses an older or repeated
write, and the sink decides what the others mean.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from core.errors import ConfigurationError, ResourceExistsError, ResourceMissingError, SinkError
from core.settings import SearchSettings


@dataclass(frozen=True)
class IndexOperation:
    """Index (create or replace) one document, with external versioning."""

    doc_id: str
    source: Mapping[str, Any]
    version: int


@dataclass(frozen=True)
class BulkItemResult:
    doc_id: str
    status: int
    error_type: str = ""
    reason: str = ""

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    @property
    def version_conflict(self) -> bool:
        return self.status == 409

    @property
    def retryable(self) -> bool:
        # 404: the alias or index vanished (a swap in progress): it comes back.
        return self.status in {404, 408, 429} or self.status >= 500


@dataclass(frozen=True)
class StoredDocument:
    source: Mapping[str, Any]
    version: int


@dataclass(frozen=True)
class EngineInfo:
    distribution: str  # "opensearch" or "elasticsearch"
    version: str


class SearchBackend(ABC):
    """The operations the order index needs, on one engine."""

    engine: str

    @abstractmethod
    def info(self) -> EngineInfo:
        """Which engine and version answers (also checks that it is reachable)."""

    @abstractmethod
    def create_index(
        self, name: str, *, settings: Mapping[str, Any], mappings: Mapping[str, Any], alias: str
    ) -> bool:
        """Create ``name`` (with ``alias`` pointing at it unless empty); False if it exists."""

    @abstractmethod
    def put_settings(self, name: str, settings: Mapping[str, Any]) -> None:
        """Change dynamic settings of an index."""

    @abstractmethod
    def indices_of_alias(self, alias: str) -> list[str]:
        """The indices ``alias`` points at; empty when there is no such alias."""

    @abstractmethod
    def indices(self, pattern: str) -> list[str]:
        """Concrete index names matching a wildcard pattern."""

    @abstractmethod
    def update_aliases(self, actions: Sequence[Mapping[str, Any]]) -> None:
        """Apply alias actions (``add``, ``remove``) atomically, in one request."""

    @abstractmethod
    def delete_index(self, name: str) -> None:
        """Delete an index; nothing happens when it does not exist."""

    @abstractmethod
    def get_documents(self, index: str, ids: Sequence[str]) -> dict[str, StoredDocument]:
        """The current documents (real-time, no refresh needed) among ``ids``."""

    @abstractmethod
    def bulk_index(
        self, index: str, operations: Sequence[IndexOperation], *, require_alias: bool
    ) -> list[BulkItemResult]:
        """Index documents with ``version_type=external``; one result per operation."""

    @abstractmethod
    def refresh(self, index: str) -> None: ...

    @abstractmethod
    def count(self, index: str) -> int: ...

    @abstractmethod
    def search(self, index: str, query: Mapping[str, Any], size: int = 10) -> list[dict[str, Any]]:
        """The ``_source`` of the best hits."""

    @abstractmethod
    def run_search(self, index: str, body: Mapping[str, Any]) -> dict[str, Any]:
        """The engine's whole answer to a ``_search`` request with ``body``, as a dict.

        The body is sent as given: building a safe one is the caller's job
        (``cqrs.query.search_query``); a refused body raises ``SinkError``.
        """

    @abstractmethod
    def close(self) -> None: ...


def open_backend(search: SearchSettings) -> SearchBackend:
    """The backend for ``search.engine``, authenticated from the settings."""
    if search.api_key and (search.username or search.password):
        raise ConfigurationError(
            "set either CQRS_SEARCH__API_KEY or CQRS_SEARCH__USERNAME/PASSWORD, not both"
        )
    if bool(search.username) != bool(search.password):
        raise ConfigurationError(
            "basic auth needs both CQRS_SEARCH__USERNAME and CQRS_SEARCH__PASSWORD"
        )
    if search.engine == "elasticsearch":
        from sinks.search.elasticsearch_backend import ElasticsearchBackend

        return ElasticsearchBackend(search)
    from sinks.search.opensearch_backend import OpenSearchBackend

    return OpenSearchBackend(search)


def error_for_status(status: int, what: str, kind: str, detail: str, url: str) -> SinkError:
    """A ``SinkError`` for an HTTP failure of ``what``, retryable by status (see the table).

    ``kind`` is the engine's error type (e.g. ``index_not_found_exception``).
    """
    detail = f"{kind}: {detail}" if kind and detail else (kind or detail)
    if status == 400 and kind == "resource_already_exists_exception":
        return ResourceExistsError(f"{what}: {detail}", retryable=False)
    if status in {401, 403}:
        return SinkError(
            f"{what} refused by the search engine at {url} (HTTP {status}: {detail}); check "
            "CQRS_SEARCH__API_KEY or CQRS_SEARCH__USERNAME/PASSWORD and the role's privileges",
            retryable=False,
        )
    if status == 404:
        return ResourceMissingError(
            f"{what}: not found at {url} ({detail}); if a rebuild is running this passes, "
            "otherwise rebuild the index with `cqrs projections rebuild search-orders`",
            retryable=True,
        )
    retryable = status in {408, 429} or status >= 500
    return SinkError(f"{what} failed at {url} (HTTP {status}: {detail})", retryable=retryable)


def unreachable(what: str, url: str, error: Exception) -> SinkError:
    return SinkError(
        f"{what}: the search engine at {url} is unreachable ({type(error).__name__}: {error})",
        retryable=True,
    )


def display_url(url: str) -> str:
    """``url`` without user information, for messages and logs."""
    parts = urlsplit(url)
    if not parts.hostname:
        return url
    host = parts.hostname + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


def bulk_item_result(item: Mapping[str, Any]) -> BulkItemResult:
    """One item of a bulk response (``{"index": {"_id", "status", "error"}}``)."""
    outcome = next(iter(item.values()))
    error = outcome.get("error") or {}
    return BulkItemResult(
        str(outcome.get("_id")),
        int(outcome.get("status", 0)),
        str(error.get("type", "")) if isinstance(error, dict) else str(error),
        str(error.get("reason", "")) if isinstance(error, dict) else "",
    )


def error_details(body: Any) -> tuple[str, str]:
    """(type, reason) of an error response body of either engine."""
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict):
            return str(error.get("type", "")), str(error.get("reason", ""))
        if isinstance(error, str):
            return "", error
    return "", ""


def stored_documents(body: Mapping[str, Any], what: str, url: str) -> dict[str, StoredDocument]:
    """The found documents of an ``_mget`` answer; per-document errors are raised."""
    found: dict[str, StoredDocument] = {}
    for doc in body["docs"]:
        if "error" in doc:
            kind, reason = error_details(doc)
            status = 404 if kind == "index_not_found_exception" else 500
            raise error_for_status(status, what, kind, reason, url)
        if doc.get("found"):
            found[doc["_id"]] = StoredDocument(doc["_source"], int(doc["_version"]))
    return found


def is_missing(body: Any) -> bool:
    """An answer given with 404 tolerated that says the index or alias does not exist."""
    return isinstance(body, dict) and body.get("status") == 404 and "error" in body
