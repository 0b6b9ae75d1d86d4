"""Protocol-level checks of the OpenSearch backend: credentials sent, engine checked.

The local OpenSearch node runs without the security plugin, so credentials are
checked at the HTTP level, against the recording server of the Elasticsearch
protocol tests answering as OpenSearch would.
"""

from __future__ import annotations

import base64
import logging

import pytest
from pydantic import SecretStr

from aggregates.read_side.search_orders import OrdersSearch
from core.errors import ConfigurationError, SinkError
from core.settings import SearchSettings, Settings
from sinks.search.backend import open_backend
from sinks.search.sink import SearchSink
from tests.unit.search.events import Refusals
from tests.unit.search.fake_elasticsearch import Answer, fake_elasticsearch

OPENSEARCH_INFO = Answer(
    200,
    {"version": {"distribution": "opensearch", "number": "3.8.0"}},
    product_header=False,
    content_type="application/json; charset=UTF-8",
)


def test_api_key_and_basic_auth_reach_opensearch_and_stay_out_of_logs(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    with fake_elasticsearch(lambda _request: OPENSEARCH_INFO) as server:
        keyed = SearchSettings(url=server.url, api_key=SecretStr("os_token-123"))
        assert open_backend(keyed).info().distribution == "opensearch"
        basic = SearchSettings(url=server.url, username="indexer", password=SecretStr("pw-9"))
        open_backend(basic).info()
    assert server.requests[0].headers["authorization"] == "ApiKey os_token-123"
    assert server.requests[1].headers["authorization"] == (
        "Basic " + base64.b64encode(b"indexer:pw-9").decode()
    )
    assert "os_token-123" not in caplog.text and "pw-9" not in caplog.text


@pytest.mark.parametrize(
    "search",
    [
        SearchSettings(api_key=SecretStr("k"), username="u", password=SecretStr("p")),
        SearchSettings(username="u"),
    ],
)
def test_contradicting_credentials_are_a_configuration_error(search: SearchSettings) -> None:
    with pytest.raises(ConfigurationError, match="CQRS_SEARCH__"):
        open_backend(search)


def test_the_sink_will_not_start_against_another_engine_than_configured() -> None:
    elasticsearch_info = Answer(
        200,
        {"version": {"number": "8.15.3", "build_flavor": "default"}},
        content_type="application/json",
    )
    with fake_elasticsearch(lambda _request: elasticsearch_info) as server:
        search = SearchSettings(url=server.url)  # engine: opensearch
        sink = SearchSink(OrdersSearch(), Settings(search=search), open_backend(search), Refusals())
        with pytest.raises(SinkError, match="CQRS_SEARCH__ENGINE is opensearch") as failed:
            sink.setup()
    assert not failed.value.retryable
