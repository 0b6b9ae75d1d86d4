"""The behaviour every ``SearchBackend`` must have, as one suite for every engine.

A concrete test class provides the ``backend`` and ``search_settings``
fixtures (an engine and a unique index prefix); every test works on indexes
under that prefix only.
"""

from __future__ import annotations

from typing import Any

import pytest

from aggregates.read_side.search_orders import ORDER_MAPPINGS, OrdersSearch
from core.errors import ResourceMissingError, SinkError
from core.settings import SearchSettings
from sinks.search.backend import IndexOperation, SearchBackend
from sinks.search.index import SearchIndex
from sinks.search.mapping import index_settings
from sinks.search.projection import fold
from tests.unit.search.events import confirmed, entry, placed


def order_source(order_id: str, *, confirm: bool = False) -> dict[str, Any]:
    events = [entry(placed(order_id))] + ([entry(confirmed(order_id))] if confirm else [])
    document = fold(OrdersSearch(), None, events).document
    assert document is not None
    return document.to_source()


class SearchBackendContract:
    def index(self, backend: SearchBackend, settings: SearchSettings) -> SearchIndex:
        return SearchIndex(backend, settings, OrdersSearch())

    def test_info_names_the_engine(self, backend: SearchBackend) -> None:
        info = backend.info()
        assert info.distribution == backend.engine
        assert info.version[0].isdigit()

    def test_the_first_index_comes_with_its_alias_once(
        self, backend: SearchBackend, search_settings: SearchSettings
    ) -> None:
        index = self.index(backend, search_settings)
        first = index.ensure()
        assert first == f"{search_settings.index_prefix}-orders-000001"
        assert index.ensure() == first
        assert backend.indices_of_alias(index.alias) == [first]
        assert index.generations() == [first]
        again = backend.create_index(
            first, settings=index_settings(search_settings), mappings=ORDER_MAPPINGS, alias=""
        )
        assert again is False

    def test_external_versions_keep_the_newest_document(
        self, backend: SearchBackend, search_settings: SearchSettings
    ) -> None:
        index = self.index(backend, search_settings)
        index.ensure()
        newer = IndexOperation("o-1", order_source("o-1", confirm=True), 2)
        older = IndexOperation("o-1", order_source("o-1"), 1)
        assert [r.status for r in backend.bulk_index(index.alias, [newer], require_alias=True)] == [
            201
        ]
        stale = backend.bulk_index(index.alias, [older, newer], require_alias=True)
        assert [(r.status, r.version_conflict, r.ok) for r in stale] == [
            (409, True, False),
            (409, True, False),
        ]
        stored = backend.get_documents(index.alias, ["o-1", "o-absent"])
        assert list(stored) == ["o-1"]
        assert (stored["o-1"].version, stored["o-1"].source["status"]) == (2, "CONFIRMED")

    def test_documents_are_readable_at_once_and_searchable_after_refresh(
        self, backend: SearchBackend, search_settings: SearchSettings
    ) -> None:
        index = self.index(backend, search_settings)
        index.ensure()
        operations = [IndexOperation(f"o-{n}", order_source(f"o-{n}"), 1) for n in range(5)]
        results = backend.bulk_index(index.alias, operations, require_alias=True)
        assert all(result.ok for result in results)
        assert len(backend.get_documents(index.alias, [f"o-{n}" for n in range(5)])) == 5
        backend.refresh(index.alias)
        assert backend.count(index.alias) == 5
        hits = backend.search(index.alias, {"match": {"search_text": "london mug-blue"}})
        assert len(hits) == 5
        nested = backend.search(
            index.alias,
            {
                "nested": {
                    "path": "items",
                    "query": {
                        "bool": {
                            "must": [
                                {"term": {"items.sku": "mug-blue"}},
                                {"range": {"items.quantity": {"gte": 3}}},
                            ]
                        }
                    },
                }
            },
        )
        assert nested == []  # mug-blue is ordered twice, never three times

    def test_a_document_outside_the_mapping_is_refused_as_a_client_error(
        self, backend: SearchBackend, search_settings: SearchSettings
    ) -> None:
        index = self.index(backend, search_settings)
        index.ensure()
        bad = IndexOperation("o-bad", {**order_source("o-bad"), "surprise": 1}, 1)
        [result] = backend.bulk_index(index.alias, [bad], require_alias=True)
        assert result.status == 400
        assert "strict" in result.error_type
        assert not result.retryable

    def test_writes_through_a_missing_alias_fail_retryably_instead_of_creating_an_index(
        self, backend: SearchBackend, search_settings: SearchSettings
    ) -> None:
        alias = f"{search_settings.index_prefix}-orders"
        [result] = backend.bulk_index(
            alias, [IndexOperation("o-1", order_source("o-1"), 1)], require_alias=True
        )
        assert (result.status, result.retryable) == (404, True)
        assert backend.indices(f"{search_settings.index_prefix}-*") == []
        with pytest.raises(SinkError) as missing:
            backend.get_documents(alias, ["o-1"])
        assert missing.value.retryable

    def test_the_alias_switch_is_atomic_and_refuses_a_moved_alias(
        self, backend: SearchBackend, search_settings: SearchSettings
    ) -> None:
        index = self.index(backend, search_settings)
        first = index.ensure()
        second = index.create_next_generation()
        third = index.create_next_generation()
        assert index.generations() == [first, second, third]
        assert index.switch_to(second) == [first]
        assert backend.indices_of_alias(index.alias) == [second]
        # A switch prepared from a stale view (alias still on ``first``) changes nothing.
        with pytest.raises(ResourceMissingError):
            backend.update_aliases(
                [
                    {"remove": {"index": first, "alias": index.alias, "must_exist": True}},
                    {"add": {"index": third, "alias": index.alias}},
                ]
            )
        assert backend.indices_of_alias(index.alias) == [second]

    def test_missing_things_are_empty_answers(
        self, backend: SearchBackend, search_settings: SearchSettings
    ) -> None:
        prefix = search_settings.index_prefix
        assert backend.indices_of_alias(f"{prefix}-nothing") == []
        assert backend.indices(f"{prefix}-nothing") == []
        backend.delete_index(f"{prefix}-nothing")  # no error
        assert backend.get_documents(f"{prefix}-orders", []) == {}
