"""``SearchBackend`` on Elasticsearch 8/9 with the official ``elasticsearch`` client.

Authentication: an API key (``search.api_key``, the encoded form Elasticsearch
returns) or basic auth. The client checks that it talks to Elasticsearch
(``X-Elastic-Product`` response header) and sends
``compatible-with=<its major version>``; an Elasticsearch 8 cluster refuses
the 9.x client's requests, which is reported with what to install.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from importlib.metadata import version
from typing import Any, TypeVar, cast

from elasticsearch import ApiError, Elasticsearch, UnsupportedProductError
from elasticsearch import ConnectionError as ElasticConnectionError

from core.errors import ResourceExistsError, SinkError
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
CLIENT_MAJOR = int(version("elasticsearch").split(".", 1)[0])


class ElasticsearchBackend(SearchBackend):
    engine = "elasticsearch"

    def __init__(self, search: SearchSettings, client: Elasticsearch | None = None) -> None:
        self._url = display_url(search.url)
        tls: dict[str, Any] = {"ca_certs": str(search.ca_certs)} if search.ca_certs else {}
        self._client = client or Elasticsearch(
            search.url,
            api_key=search.api_key.get_secret_value() if search.api_key else None,
            basic_auth=(
                (search.username, search.password.get_secret_value())
                if search.username and search.password
                else None
            ),
            verify_certs=search.verify_certs,
            **tls,
            request_timeout=search.request_timeout_s,
            max_retries=0,  # the sink runner retries with backoff
            retry_on_timeout=False,
            http_compress=search.http_compress,
        )

    def info(self) -> EngineInfo:
        body = self._call("reading the engine's version", lambda: self._client.info().body)
        return EngineInfo("elasticsearch", str(body.get("version", {}).get("number")))

    def create_index(
        self, name: str, *, settings: Mapping[str, Any], mappings: Mapping[str, Any], alias: str
    ) -> bool:
        try:
            self._call(
                f"creating index {name}",
                lambda: self._client.indices.create(
                    index=name,
                    settings=dict(settings),
                    mappings=dict(mappings),
                    aliases={alias: {}} if alias else None,
                ),
            )
        except ResourceExistsError:
            return False
        return True

    def put_settings(self, name: str, settings: Mapping[str, Any]) -> None:
        self._call(
            f"changing settings of {name}",
            lambda: self._client.indices.put_settings(index=name, settings=dict(settings)),
        )

    def indices_of_alias(self, alias: str) -> list[str]:
        # A missing alias is an answer here, not a failure.
        found = self._call(
            f"reading alias {alias}",
            lambda: self._client.options(ignore_status=404).indices.get_alias(name=alias).body,
        )
        return [] if is_missing(found) else sorted(found)

    def indices(self, pattern: str) -> list[str]:
        rows = self._call(
            f"listing indices {pattern}",
            lambda: (
                self._client.options(ignore_status=404)
                .cat.indices(index=pattern, format="json", h="index")
                .body
            ),
        )
        if is_missing(rows):
            return []
        return sorted(row["index"] for row in cast(list[dict[str, Any]], rows))

    def update_aliases(self, actions: Sequence[Mapping[str, Any]]) -> None:
        self._call(
            "switching aliases",
            lambda: self._client.indices.update_aliases(actions=list(actions)),
        )

    def delete_index(self, name: str) -> None:
        self._call(
            f"deleting index {name}",
            lambda: self._client.options(ignore_status=404).indices.delete(index=name),
        )

    def get_documents(self, index: str, ids: Sequence[str]) -> dict[str, StoredDocument]:
        if not ids:
            return {}
        body = self._call(
            f"reading {len(ids)} documents of {index}",
            lambda: self._client.mget(index=index, ids=list(ids)).body,
        )
        return stored_documents(body, f"reading documents of {index}", self._url)

    def bulk_index(
        self, index: str, operations: Sequence[IndexOperation], *, require_alias: bool
    ) -> list[BulkItemResult]:
        if not operations:
            return []
        lines: list[Mapping[str, Any]] = []
        for operation in operations:
            lines.append(
                {
                    "index": {
                        "_index": index,
                        "_id": operation.doc_id,
                        "version": operation.version,
                        "version_type": "external",
                    }
                }
            )
            lines.append(operation.source)
        body = self._call(
            f"indexing {len(operations)} documents into {index}",
            lambda: (
                self._client.bulk(
                    operations=lines, require_alias=True if require_alias else None
                ).body
            ),
        )
        return [bulk_item_result(item) for item in body["items"]]

    def refresh(self, index: str) -> None:
        self._call(f"refreshing {index}", lambda: self._client.indices.refresh(index=index))

    def count(self, index: str) -> int:
        body = self._call(f"counting {index}", lambda: self._client.count(index=index).body)
        return int(body["count"])

    def search(self, index: str, query: Mapping[str, Any], size: int = 10) -> list[dict[str, Any]]:
        body = self._call(
            f"searching {index}",
            lambda: self._client.search(index=index, query=dict(query), size=size).body,
        )
        return [hit["_source"] for hit in body["hits"]["hits"]]

    def run_search(self, index: str, body: Mapping[str, Any]) -> dict[str, Any]:
        # body= keeps the request as built (keyword arguments would need ``from_``).
        answer = self._call(
            f"searching {index}", lambda: self._client.search(index=index, body=dict(body)).body
        )
        return dict(answer)

    def close(self) -> None:
        self._client.close()

    def _call(self, what: str, request: Callable[[], T]) -> T:
        with self._errors(what):
            return request()

    @contextmanager
    def _errors(self, what: str) -> Iterator[None]:
        try:
            yield
        except ElasticConnectionError as error:
            raise unreachable(what, self._url, error) from error
        except UnsupportedProductError as error:
            raise SinkError(
                f"{what}: the server at {self._url} is not Elasticsearch (it lacks the "
                "X-Elastic-Product header); for OpenSearch set CQRS_SEARCH__ENGINE=opensearch",
                retryable=False,
            ) from error
        except ApiError as error:
            kind, reason = error_details(error.body)
            if error.meta.status == 400 and kind == "media_type_header_exception":
                raise SinkError(
                    f"{what}: the Elasticsearch cluster at {self._url} refuses requests of the "
                    f"{CLIENT_MAJOR}.x client ({reason}); install the client of the cluster's "
                    "major version, e.g. pip install 'elasticsearch>=8.13,<9' for Elasticsearch 8",
                    retryable=False,
                ) from error
            raise error_for_status(
                error.meta.status, what, kind, reason or str(error.message), self._url
            ) from error
