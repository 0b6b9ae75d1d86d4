"""PROTOCOL-LEVEL tests of the Elasticsearch backend — not tests against a real cluster.

No Elasticsearch 8 or newer can run on the build machine, so the backend is
checked here with the real ``elasticsearch`` client against a local HTTP
server that records requests and answers in Elasticsearch's shapes
(``fake_elasticsearch``). They show which requests the backend and the search
sink send (paths, parameters, NDJSON bulk lines with external versions, alias
actions, authentication headers) and how answers and failures are mapped.
They do not show that Elasticsearch accepts the mapping or applies versions
as OpenSearch does; the behaviour suite (``tests/integration/search``) runs on
OpenSearch only.
"""

from __future__ import annotations

import base64
import logging
import socket
from collections.abc import Callable
from typing import Any

import pytest
from pydantic import SecretStr

from aggregates.read_side.search_orders import ORDER_MAPPINGS, OrdersSearch
from core.errors import ResourceMissingError, SinkError
from core.settings import SearchSettings, Settings
from sinks.search.backend import IndexOperation, open_backend
from sinks.search.elasticsearch_backend import CLIENT_MAJOR, ElasticsearchBackend
from sinks.search.sink import SearchSink
from tests.unit.search.events import Refusals, confirmed, placed
from tests.unit.search.fake_elasticsearch import (
    Answer,
    Request,
    es_error,
    fake_elasticsearch,
    info_answer,
)

API_KEY = "VnVhQ2ZHY0JDZGJrUW0tZTVhT3g6dWkybHAyYXhUTm1zeWFrdzl0dk5udw=="


def settings_for(url: str, **search: object) -> SearchSettings:
    return SearchSettings(
        engine="elasticsearch", url=url, index_prefix="shop", replicas=0, **search
    )


def routes(table: dict[tuple[str, str], Answer]) -> Callable[[Request], Answer]:
    def answer(request: Request) -> Answer:
        return table.get((request.method, request.path)) or es_error(
            404, "index_not_found_exception", f"no such index [{request.path}]"
        )

    return answer


def test_requests_negotiate_the_clients_major_version_and_read_the_engine() -> None:
    with fake_elasticsearch(routes({("GET", "/"): info_answer("9.1.0")})) as server:
        backend = open_backend(settings_for(server.url))
        info = backend.info()
    assert (info.distribution, info.version) == ("elasticsearch", "9.1.0")
    [request] = server.requests
    assert request.headers["accept"] == (
        f"application/vnd.elasticsearch+json; compatible-with={CLIENT_MAJOR}"
    )


def test_bulk_lines_carry_external_versions_and_require_the_alias() -> None:
    items = [
        {"index": {"_id": "o-1", "status": 201, "_version": 3}},
        {
            "index": {
                "_id": "o-2",
                "status": 409,
                "error": {
                    "type": "version_conflict_engine_exception",
                    "reason": "current version [4] is higher",
                },
            }
        },
        {
            "index": {
                "_id": "o-3",
                "status": 400,
                "error": {"type": "document_parsing_exception", "reason": "strict mapping"},
            }
        },
        {
            "index": {
                "_id": "o-4",
                "status": 429,
                "error": {"type": "es_rejected_execution_exception", "reason": "queue full"},
            }
        },
    ]
    table = {("PUT", "/_bulk"): Answer(200, {"errors": True, "took": 3, "items": items})}
    with fake_elasticsearch(routes(table)) as server:
        backend = open_backend(settings_for(server.url))
        operations = [IndexOperation(f"o-{n}", {"order_id": f"o-{n}"}, n + 2) for n in range(1, 5)]
        results = backend.bulk_index("shop-orders", operations, require_alias=True)
    [request] = server.requests
    assert request.query == {"require_alias": "true"}
    assert request.headers["content-type"].startswith("application/vnd.elasticsearch+x-ndjson")
    lines = request.ndjson()
    assert lines[0] == {
        "index": {"_index": "shop-orders", "_id": "o-1", "version": 3, "version_type": "external"}
    }
    assert lines[1] == {"order_id": "o-1"}
    assert len(lines) == 8
    assert [(r.doc_id, r.ok, r.version_conflict, r.retryable) for r in results] == [
        ("o-1", True, False, False),
        ("o-2", False, True, False),
        ("o-3", False, False, False),
        ("o-4", False, False, True),
    ]
    assert results[2].error_type == "document_parsing_exception"


def test_index_creation_sends_mapping_settings_and_alias_and_tolerates_an_existing_index() -> None:
    answers = iter(
        [
            Answer(
                200,
                {"acknowledged": True, "shards_acknowledged": True, "index": "shop-orders-000001"},
            ),
            es_error(
                400,
                "resource_already_exists_exception",
                "index [shop-orders-000001] already exists",
            ),
        ]
    )
    with fake_elasticsearch(lambda _request: next(answers)) as server:
        backend = open_backend(settings_for(server.url))
        for expected in (True, False):
            created = backend.create_index(
                "shop-orders-000001",
                settings={"number_of_shards": 1},
                mappings=ORDER_MAPPINGS,
                alias="shop-orders",
            )
            assert created is expected
    request = server.requests[0]
    assert (request.method, request.path) == ("PUT", "/shop-orders-000001")
    assert request.json() == {
        "settings": {"number_of_shards": 1},
        "mappings": ORDER_MAPPINGS,
        "aliases": {"shop-orders": {}},
    }


def test_alias_reads_and_switches() -> None:
    table = {
        ("GET", "/_alias/shop-orders"): Answer(
            200, {"shop-orders-000002": {"aliases": {"shop-orders": {}}}}
        ),
        ("POST", "/_aliases"): Answer(200, {"acknowledged": True}),
    }
    with fake_elasticsearch(routes(table)) as server:
        backend = open_backend(settings_for(server.url))
        assert backend.indices_of_alias("shop-orders") == ["shop-orders-000002"]
        assert backend.indices_of_alias("missing") == []
        actions: list[dict[str, Any]] = [
            {"remove": {"index": "shop-orders-000002", "alias": "shop-orders", "must_exist": True}},
            {"add": {"index": "shop-orders-000003", "alias": "shop-orders"}},
        ]
        backend.update_aliases(actions)
    assert server.requests[-1].json() == {"actions": actions}


def test_mget_returns_found_documents_and_raises_for_a_missing_index() -> None:
    docs = [
        {
            "_index": "shop-orders-000001",
            "_id": "o-1",
            "_version": 2,
            "found": True,
            "_source": {"order_id": "o-1"},
        },
        {"_index": "shop-orders-000001", "_id": "o-2", "found": False},
    ]
    table = {
        ("POST", "/shop-orders/_mget"): Answer(200, {"docs": docs}),
        ("POST", "/gone/_mget"): Answer(
            200,
            {
                "docs": [
                    {
                        "_index": "gone",
                        "_id": "o-1",
                        "error": {
                            "type": "index_not_found_exception",
                            "reason": "no such index [gone]",
                        },
                    }
                ]
            },
        ),
    }
    with fake_elasticsearch(routes(table)) as server:
        backend = open_backend(settings_for(server.url))
        found = backend.get_documents("shop-orders", ["o-1", "o-2"])
        with pytest.raises(ResourceMissingError) as missing:
            backend.get_documents("gone", ["o-1"])
    assert {k: v.version for k, v in found.items()} == {"o-1": 2}
    assert server.requests[0].json() == {"ids": ["o-1", "o-2"]}
    assert missing.value.retryable


@pytest.mark.parametrize(
    ("answer", "retryable", "says"),
    [
        (
            es_error(401, "security_exception", "unable to authenticate"),
            False,
            "CQRS_SEARCH__API_KEY",
        ),
        (
            es_error(403, "security_exception", "action [indices:data/write/bulk] is unauthorized"),
            False,
            "privileges",
        ),
        (es_error(429, "es_rejected_execution_exception", "rejected execution"), True, "HTTP 429"),
        (
            es_error(503, "unavailable_shards_exception", "primary shard is not active"),
            True,
            "HTTP 503",
        ),
        (es_error(400, "illegal_argument_exception", "bad request"), False, "HTTP 400"),
    ],
)
def test_http_failures_map_to_sink_errors_by_status(
    answer: Answer, retryable: bool, says: str
) -> None:
    with fake_elasticsearch(lambda _request: answer) as server:
        backend = open_backend(settings_for(server.url))
        with pytest.raises(SinkError) as failed:
            backend.bulk_index("shop-orders", [IndexOperation("o-1", {}, 1)], require_alias=True)
    assert failed.value.retryable is retryable
    assert says in str(failed.value)


def test_an_unreachable_engine_is_retryable() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed again at once: nothing listens
    backend = open_backend(settings_for(f"http://127.0.0.1:{port}", request_timeout_s=2))
    with pytest.raises(SinkError) as failed:
        backend.info()
    assert failed.value.retryable
    assert "unreachable" in str(failed.value)


def test_a_server_that_is_not_elasticsearch_is_a_configuration_error() -> None:
    answer = Answer(
        200, {"version": {"number": "3.8.0", "distribution": "opensearch"}}, product_header=False
    )
    with fake_elasticsearch(lambda _request: answer) as server:
        backend = open_backend(settings_for(server.url))
        with pytest.raises(SinkError, match="CQRS_SEARCH__ENGINE=opensearch") as failed:
            backend.info()
    assert not failed.value.retryable


def test_an_older_cluster_refusing_the_client_version_says_what_to_install() -> None:
    refusal = es_error(
        400,
        "media_type_header_exception",
        "Invalid media-type value on headers [Accept, Content-Type]",
    )
    with fake_elasticsearch(lambda _request: refusal) as server:
        backend = open_backend(settings_for(server.url))
        with pytest.raises(SinkError, match=r"elasticsearch>=8\.13,<9") as failed:
            backend.info()
    assert not failed.value.retryable


def test_api_key_and_basic_auth_headers_and_secrets_never_in_logs_or_errors(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    with fake_elasticsearch(lambda _request: es_error(401, "security_exception", "nope")) as server:
        with_key = open_backend(settings_for(server.url, api_key=SecretStr(API_KEY)))
        with pytest.raises(SinkError) as key_error:
            with_key.info()
        basic = open_backend(
            settings_for(server.url, username="indexer", password=SecretStr("s3cret-pw"))
        )
        with pytest.raises(SinkError) as basic_error:
            basic.info()
    assert server.requests[0].headers["authorization"] == f"ApiKey {API_KEY}"
    expected = base64.b64encode(b"indexer:s3cret-pw").decode()
    assert server.requests[1].headers["authorization"] == f"Basic {expected}"
    exposed = caplog.text + str(key_error.value) + str(basic_error.value)
    assert API_KEY not in exposed and "s3cret-pw" not in exposed


def test_the_search_sink_drives_the_elasticsearch_backend_end_to_end() -> None:
    """Set-up and one batch of the real sink, as requests on the wire."""
    created: list[str] = []

    def script(request: Request) -> Answer:
        if (request.method, request.path) == ("GET", "/"):
            return info_answer()
        if request.path == "/_alias/shop-orders":
            if created:
                return Answer(200, {created[0]: {"aliases": {"shop-orders": {}}}})
            return Answer(404, {"error": "alias [shop-orders] missing", "status": 404})
        if request.path.startswith("/_cat/indices"):
            return Answer(200, [])
        if request.path == "/_bulk":
            ids = [line["index"]["_id"] for line in request.ndjson()[::2]]
            return Answer(
                200, {"errors": False, "items": [{"index": {"_id": i, "status": 201}} for i in ids]}
            )
        if request.method == "PUT":
            created.append(request.path.strip("/"))
            return Answer(200, {"acknowledged": True, "index": created[-1]})
        return es_error(400, "unexpected", request.path)

    with fake_elasticsearch(script) as server:
        search = settings_for(server.url)
        sink = SearchSink(
            OrdersSearch(), Settings(search=search), ElasticsearchBackend(search), Refusals()
        )
        sink.setup()
        for offset, event in enumerate([placed("o-1"), confirmed("o-1"), placed("o-2")]):
            sink.add(event, "events", 0, offset)
        sink.flush({("events", 0): 3})
    assert created == ["shop-orders-000001"]
    create = next(r for r in server.requests if r.path == "/shop-orders-000001")
    assert create.json()["aliases"] == {"shop-orders": {}}
    assert create.json()["mappings"]["dynamic"] == "strict"
    bulk = next(r for r in server.requests if r.path == "/_bulk")
    lines = bulk.ndjson()
    assert [line["index"] for line in lines[::2]] == [
        {"_index": "shop-orders", "_id": "o-1", "version": 2, "version_type": "external"},
        {"_index": "shop-orders", "_id": "o-2", "version": 1, "version_type": "external"},
    ]
    assert lines[1]["status"] == "CONFIRMED" and lines[1]["customer_id"] == "c-ada"
    assert not any(r.path.endswith("/_mget") for r in server.requests)  # OrderPlaced in the batch
