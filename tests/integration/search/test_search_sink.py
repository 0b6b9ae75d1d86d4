"""The search sink's writes against the real OpenSearch node: folding, versions, refusals.

Batches are handed to the sink directly here (no Kafka), so each property of
the write path is checked on its own; the runner-driven path is in
``test_search_pipeline``.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import pytest

from aggregates.read_side.search_orders import ORDER_MAPPINGS, OrdersSearch
from core.errors import SinkError
from core.settings import SearchSettings, Settings
from sinks import registry
from sinks.base import EventRecord
from sinks.search.backend import SearchBackend
from sinks.search.mapping import index_settings
from sinks.search.sink import SearchSink
from tests.unit.search.events import Refusals, cancelled, confirmed, placed, shipped


@pytest.fixture
def sink_settings(local_stack: Settings, search_settings: SearchSettings) -> Settings:
    return local_stack.model_copy(update={"search": search_settings})


def new_sink(settings: Settings, backend: SearchBackend, refusals: Refusals) -> SearchSink:
    sink = SearchSink(OrdersSearch(), settings, backend, refusals)
    sink.setup()
    return sink


@pytest.fixture
def refusals() -> Refusals:
    return Refusals()


@pytest.fixture
def sink(
    sink_settings: Settings, backend: SearchBackend, refusals: Refusals
) -> Iterator[SearchSink]:
    yield new_sink(sink_settings, backend, refusals)


def write(sink: SearchSink, events: Sequence[EventRecord], first_offset: int = 0) -> None:
    for offset, event in enumerate(events, start=first_offset):
        sink.add(event, "events", 0, offset)
    sink.flush({("events", 0): first_offset + len(events)})


def stored(backend: SearchBackend, sink: SearchSink, *ids: str) -> dict[str, dict[str, object]]:
    documents = backend.get_documents(sink.target, list(ids))
    return {order_id: dict(doc.source) for order_id, doc in documents.items()}


def test_a_batch_becomes_one_document_per_order_with_its_latest_state(
    sink: SearchSink, backend: SearchBackend
) -> None:
    write(sink, [placed("o-1"), placed("o-2"), confirmed("o-1"), shipped("o-1")])
    documents = backend.get_documents(sink.target, ["o-1", "o-2"])
    assert {k: (d.version, d.source["status"]) for k, d in documents.items()} == {
        "o-1": (3, "SHIPPED"),
        "o-2": (1, "PLACED"),
    }
    assert documents["o-1"].source["customer_id"] == "c-ada"
    assert documents["o-1"].source["total_cents"] == 4900


def test_redelivered_batches_change_nothing(
    sink: SearchSink, backend: SearchBackend, refusals: Refusals
) -> None:
    events = [placed("o-1"), confirmed("o-1")]
    write(sink, events)
    before = stored(backend, sink, "o-1")
    write(sink, events)  # the same records again, as after a crash before the commit
    assert stored(backend, sink, "o-1") == before
    assert refusals.refused == []


def test_after_a_restart_later_events_apply_to_the_stored_document(
    sink_settings: Settings, sink: SearchSink, backend: SearchBackend, refusals: Refusals
) -> None:
    write(sink, [placed("o-1"), confirmed("o-1")])
    restarted = new_sink(sink_settings, backend, refusals)  # empty cache: reads the index
    write(restarted, [confirmed("o-1"), cancelled("o-1", 3, "out of budget")], first_offset=2)
    document = stored(backend, restarted, "o-1")["o-1"]
    assert (document["status"], document["status_reason"], document["version"]) == (
        "CANCELLED",
        "out of budget",
        3,
    )
    assert document["item_count"] == 5  # from OrderPlaced, kept across the restart


def test_a_late_or_zombie_write_never_replaces_newer_data(
    sink_settings: Settings, sink: SearchSink, backend: SearchBackend, refusals: Refusals
) -> None:
    write(sink, [placed("o-1"), confirmed("o-1"), shipped("o-1")])
    zombie = new_sink(sink_settings, backend, refusals)
    write(zombie, [placed("o-1"), confirmed("o-1")])  # an older owner replaying the start
    document = stored(backend, sink, "o-1")["o-1"]
    assert (document["status"], document["version"]) == ("SHIPPED", 3)


def test_events_of_orders_never_placed_are_refused_and_the_rest_written(
    sink: SearchSink, backend: SearchBackend, refusals: Refusals
) -> None:
    write(sink, [confirmed("o-ghost"), placed("o-1")])
    assert refusals.refused == [("o-ghost", 2, "ORDER_NOT_PLACED")]
    assert set(stored(backend, sink, "o-ghost", "o-1")) == {"o-1"}
    assert refusals.flushes >= 1


def test_a_document_the_mapping_refuses_is_dead_lettered_and_the_batch_goes_on(
    sink_settings: Settings,
    backend: SearchBackend,
    search_settings: SearchSettings,
    refusals: Refusals,
) -> None:
    # An index whose mapping disagrees with the documents (customer ids as numbers).
    mappings = {
        **ORDER_MAPPINGS,
        "properties": {**ORDER_MAPPINGS["properties"], "customer_id": {"type": "long"}},
    }
    alias = f"{search_settings.index_prefix}-orders"
    backend.create_index(
        f"{alias}-000001", settings=index_settings(search_settings), mappings=mappings, alias=alias
    )
    sink = new_sink(sink_settings, backend, refusals)
    write(sink, [placed("o-1", customer_id="c-ada"), placed("o-2", customer_id="42")])
    assert [(order, code) for order, _, code in refusals.refused] == [
        ("o-1", "SEARCH_DOCUMENT_REFUSED")
    ]
    assert set(stored(backend, sink, "o-1", "o-2")) == {"o-2"}


def test_a_vanished_index_is_a_retryable_failure_and_the_batch_is_kept(
    sink: SearchSink, backend: SearchBackend, search_settings: SearchSettings
) -> None:
    write(sink, [placed("o-1")])
    live = backend.indices_of_alias(sink.target)[0]
    backend.delete_index(live)
    sink.add(confirmed("o-1"), "events", 0, 1)
    sink.add(placed("o-2"), "events", 0, 2)
    with pytest.raises(SinkError) as failed:
        sink.flush({("events", 0): 3})
    assert failed.value.retryable
    assert sink.buffered == 2  # kept for the runner's retry
    backend.create_index(
        live,
        settings=index_settings(search_settings),
        mappings=ORDER_MAPPINGS,
        alias=sink.target,
    )
    sink.flush({("events", 0): 3})
    assert sink.buffered == 0
    # o-1's placement was lost with the index: its confirmation cannot apply alone.
    assert set(stored(backend, sink, "o-1", "o-2")) == {"o-2"}


def test_migrate_creates_the_first_generation_once(
    sink_settings: Settings, backend: SearchBackend, search_settings: SearchSettings
) -> None:
    entry = registry.projection("search-orders", sink_settings)
    alias = f"{search_settings.index_prefix}-orders"
    assert entry.migrate(sink_settings) == [f"index {alias}-000001 behind alias {alias}"]
    assert entry.migrate(sink_settings) == []
    assert backend.indices_of_alias(alias) == [f"{alias}-000001"]
