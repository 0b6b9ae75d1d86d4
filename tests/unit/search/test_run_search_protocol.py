"""PROTOCOL-LEVEL checks of ``run_search`` on both backends (the recording server, no engine).

What is sent (the body as built, ``from`` included) and how answers and
failures come back; that OpenSearch runs such bodies is shown by
``tests/integration/search/test_search_reads.py``.
"""

from __future__ import annotations

from typing import Any

import pytest

from core.errors import ResourceMissingError, SinkError
from core.settings import SearchSettings
from sinks.search.backend import open_backend
from tests.unit.search.fake_elasticsearch import Answer, es_error, fake_elasticsearch

BODY: dict[str, Any] = {
    "query": {"bool": {"filter": [{"terms": {"status": ["PLACED"]}}]}},
    "sort": [{"order_id": {"order": "asc"}}],
    "from": 20,
    "size": 10,
    "track_total_hits": True,
}
ANSWER: dict[str, Any] = {
    "took": 1,
    "timed_out": False,
    "hits": {"total": {"value": 1, "relation": "eq"}, "hits": [{"_source": {"order_id": "o-1"}}]},
}
ENGINES = ["elasticsearch", "opensearch"]


def answer_as(engine: str, status: int, body: Any) -> Answer:
    if engine == "elasticsearch":
        return Answer(status, body)
    return Answer(status, body, product_header=False, content_type="application/json")


def settings_for(engine: str, url: str) -> SearchSettings:
    return SearchSettings.model_validate(
        {"engine": engine, "url": url, "index_prefix": "shop", "replicas": 0}
    )


@pytest.mark.parametrize("engine", ENGINES)
def test_the_body_is_sent_as_built_and_the_whole_answer_returned(engine: str) -> None:
    with fake_elasticsearch(lambda _request: answer_as(engine, 200, ANSWER)) as server:
        backend = open_backend(settings_for(engine, server.url))
        found = backend.run_search("shop-orders", BODY)
        backend.close()
    assert found == ANSWER
    [request] = server.requests
    assert (request.method, request.path) == ("POST", "/shop-orders/_search")
    assert request.json() == BODY


@pytest.mark.parametrize("engine", ENGINES)
def test_refusals_map_like_every_other_request(engine: str) -> None:
    refusal = es_error(400, "search_phase_execution_exception", "all shards failed")
    missing = es_error(404, "index_not_found_exception", "no such index [shop-orders]")
    answers = iter([refusal, missing])
    with fake_elasticsearch(lambda _request: answer_as(engine, *_parts(next(answers)))) as server:
        backend = open_backend(settings_for(engine, server.url))
        with pytest.raises(SinkError) as refused:
            backend.run_search("shop-orders", BODY)
        with pytest.raises(ResourceMissingError) as gone:
            backend.run_search("shop-orders", BODY)
        backend.close()
    assert not refused.value.retryable
    assert "searching shop-orders" in str(refused.value)
    assert "HTTP 400" in str(refused.value) and "all shards failed" in str(refused.value)
    assert gone.value.retryable


def _parts(answer: Answer) -> tuple[int, Any]:
    return answer.status, answer.body
