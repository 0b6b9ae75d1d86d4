"""``SearchBackend`` on OpenSearch 2/3 with the official ``opensearch-py`` client.

Authentication: basic auth (``search.username``/``password``) or an API key
(``search.api_key``, OpenSearch 3.7+ security plugin), sent as
``Authorization: ApiKey <token>``. Credentials go to the client only; messages
name the engine's URL without any user information.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar

from opensearchpy import OpenSearch
from opensearchpy.exceptions import (
    ConnectionError as OpenSearchConnectionError,
)
from opensearchpy.exceptions import TransportError

from core.errors import ResourceExistsError
from core.settings import SearchSettings
from sinks.search.backend import (
    BulkItemResult,
    EngineInfo,
    IndexOperation,
    SearchBackend,
    StoredDocument,
    bulk_item_result,
    display_url,
    error_details,
    error_for_status,
    is_missing,
    stored_documents,
    unreachable,
)

T = TypeVar("T")


class OpenSearchBackend(SearchBackend):
    engine = "opensearch"

    def __init__(self, search: SearchSettings, client: OpenSearch | None = None) -> None:
        self._url = display_url(search.url)
        self._client = client or OpenSearch(
            hosts=[search.url],
            http_auth=(
                (search.username, search.password.get_secret_value())
                if search.username and search.password
                else None
            ),
            headers=(
                {"Authorization": f"ApiKey {search.api_key.get_secret_value()}"}
                if search.api_key
                else None
            ),
            verify_certs=search.verify_certs,
            ca_certs=str(search.ca_certs) if search.ca_certs else None,
            timeout=search.request_timeout_s,
            max_retries=0,  # the sink runner retries with backoff
            retry_on_timeout=False,
            http_compress=search.http_compress,
        )

    def info(self) -> EngineInfo:
        body = self._call("reading the engine's version", self._client.info)
        version = body.get("version", {})
        return EngineInfo(
            str(version.get("distribution") or "elasticsearch"), str(version.get("number"))
        )

    def create_index(
        self, name: str, *, settings: Mapping[str, Any], mappings: Mapping[str, Any], alias: str
    ) -> bool:
        body: dict[str, Any] = {"settings": dict(settings), "mappings": dict(mappings)}
        if alias:
            body["aliases"] = {alias: {}}
        try:
            self._call(
                f"creating index {name}", lambda: self._client.indices.create(index=name, body=body)
            )
        except ResourceExistsError:
            return False
        return True

    def put_settings(self, name: str, settings: Mapping[str, Any]) -> None:
        self._call(
            f"changing settings of {name}",
            lambda: self._client.indices.put_settings(index=name, body={"index": dict(settings)}),
        )

    def indices_of_alias(self, alias: str) -> list[str]:
        # ignore=404: a missing alias is an answer here, not a failure worth a log line.
        found = self._call(
            f"reading alias {alias}",
            lambda: self._client.indices.get_alias(name=alias, ignore=404),
        )
        return [] if is_missing(found) else sorted(found)

    def indices(self, pattern: str) -> list[str]:
        rows = self._call(
            f"listing indices {pattern}",
            lambda: self._client.cat.indices(index=pattern, format="json", h="index", ignore=404),
        )
        return [] if is_missing(rows) else sorted(row["index"] for row in rows)

    def update_aliases(self, actions: Sequence[Mapping[str, Any]]) -> None:
        self._call(
            "switching aliases",
            lambda: self._client.indices.update_aliases(body={"actions": list(actions)}),
        )

    def delete_index(self, name: str) -> None:
        self._call(
            f"deleting index {name}", lambda: self._client.indices.delete(index=name, ignore=404)
        )

    def get_documents(self, index: str, ids: Sequence[str]) -> dict[str, StoredDocument]:
        if not ids:
            return {}
        body = self._call(
            f"reading {len(ids)} documents of {index}",
            lambda: self._client.mget(index=index, body={"ids": list(ids)}),
        )
        return stored_documents(body, f"reading documents of {index}", self._url)

    def bulk_index(
        self, index: str, operations: Sequence[IndexOperation], *, require_alias: bool
    ) -> list[BulkItemResult]:
        if not operations:
            return []
        lines: list[Mapping[str, Any]] = []
        for operation in operations:
            lines.append({"index": _action(index, operation)})
            lines.append(operation.source)
        params = {"require_alias": "true"} if require_alias else {}
        body = self._call(
            f"indexing {len(operations)} documents into {index}",
            lambda: self._client.bulk(body=lines, params=params),
        )
        return [bulk_item_result(item) for item in body["items"]]

    def refresh(self, index: str) -> None:
        self._call(f"refreshing {index}", lambda: self._client.indices.refresh(index=index))

    def count(self, index: str) -> int:
        body = self._call(f"counting {index}", lambda: self._client.count(index=index))
        return int(body["count"])

    def search(self, index: str, query: Mapping[str, Any], size: int = 10) -> list[dict[str, Any]]:
        body = self._call(
            f"searching {index}",
            lambda: self._client.search(index=index, body={"query": dict(query), "size": size}),
        )
        return [hit["_source"] for hit in body["hits"]["hits"]]

    def run_search(self, index: str, body: Mapping[str, Any]) -> dict[str, Any]:
        answer: dict[str, Any] = self._call(
            f"searching {index}", lambda: self._client.search(index=index, body=dict(body))
        )
        return answer

    def close(self) -> None:
        self._client.close()

    def _call(self, what: str, request: Callable[[], T]) -> T:
        with self._errors(what):
            return request()

    @contextmanager
    def _errors(self, what: str) -> Iterator[None]:
        try:
            yield
        except OpenSearchConnectionError as error:
            raise unreachable(what, self._url, error) from error
        except TransportError as error:
            status = error.status_code if isinstance(error.status_code, int) else 0
            kind, reason = error_details(error.info)
            raise error_for_status(status, what, kind, reason or str(error.error), self._url) from (
                error
            )


def _action(index: str, operation: IndexOperation) -> dict[str, Any]:
    return {
        "_index": index,
        "_id": operation.doc_id,
        "version": operation.version,
        "version_type": "external",
    }
