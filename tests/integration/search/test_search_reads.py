"""Search reads against the stack's real OpenSearch: exact hits for text, filters, ranges,
sort orders and pages, and real-time reads of one document.

Five orders are indexed under a unique alias (the ``search_settings`` prefix)
with the search sink's own index set-up and external versions.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from aggregates.read_side.search_orders import (
    OrderDocument,
    OrderItem,
    OrdersSearch,
    ShippingAddress,
)
from core.errors import UnknownProjectionError
from core.settings import SearchSettings, Settings
from cqrs.query.search_query import SearchPage
from cqrs.query.search_reads import SearchReader
from sinks.search.backend import IndexOperation, SearchBackend
from sinks.search.index import SearchIndex

PROJECTION = "search-orders"
CITIES = {
    "London": ("GB", "Ada Lovelace"),
    "Paris": ("FR", "Bob Marley"),
    "Berlin": ("DE", "Cyd Charisse"),
}


def order(
    order_id: str,
    customer: str,
    status: str,
    city: str,
    day: int,
    version: int,
    items: list[tuple[str, int, int]],
    **more: Any,
) -> OrderDocument:
    country, name = CITIES[city]
    lines = tuple(OrderItem(sku, quantity, price) for sku, quantity, price in items)
    placed_at = f"2026-03-0{day}T09:00:00.000Z"
    return OrderDocument(
        order_id=order_id,
        customer_id=customer,
        status=status,
        items=lines,
        currency="EUR",
        total_cents=sum(line.amount_cents for line in lines),
        shipping_address=ShippingAddress(name, f"{day} Main Street", city, f"P{day}", country),
        placed_at=placed_at,
        updated_at=placed_at,
        version=version,
        last_event_id=f"{order_id}-e{version}",
        **more,
    )


REASON = "changed my mind"
ORDERS = [
    order("o-1", "c-ada", "PLACED", "London", 1, 1, [("mug-blue", 2, 1250), ("tea", 3, 800)]),
    order("o-2", "c-bob", "CONFIRMED", "Paris", 2, 2, [("mug-red", 1, 1500)]),
    order("o-3", "c-ada", "CANCELLED", "London", 3, 3, [("tea", 5, 600)], status_reason=REASON),
    order("o-4", "c-cyd", "SHIPPED", "Berlin", 4, 3, [("mug-blue", 4, 3000)], carrier="DHL"),
    order("o-5", "c-bob", "PLACED", "Paris", 5, 1, [("tea", 1, 1500)]),
]


def write(backend: SearchBackend, alias: str, *documents: OrderDocument) -> None:
    operations = [IndexOperation(d.order_id, d.to_source(), d.version) for d in documents]
    results = backend.bulk_index(alias, operations, require_alias=True)
    assert all(result.ok for result in results), results


@pytest.fixture
def quiet_settings(search_settings: SearchSettings) -> SearchSettings:
    # No periodic refresh: a write becomes searchable at a refresh only.
    return search_settings.model_copy(update={"refresh_interval": "-1"})


@pytest.fixture
def reader(
    local_stack: Settings, quiet_settings: SearchSettings, backend: SearchBackend
) -> Iterator[SearchReader]:
    alias = SearchIndex(backend, quiet_settings, OrdersSearch()).alias
    SearchIndex(backend, quiet_settings, OrdersSearch()).ensure()
    write(backend, alias, *ORDERS)
    backend.refresh(alias)
    opened = SearchReader(
        local_stack.model_copy(update={"search": quiet_settings}), default_size=3, max_size=3
    )
    assert opened.alias(PROJECTION) == alias
    yield opened
    opened.close()


def search(reader: SearchReader, **params: str) -> SearchPage:
    return reader.search(PROJECTION, {name: [value] for name, value in params.items()})


def ids(page: SearchPage) -> list[str]:
    return [hit["order_id"] for hit in page.hits]


def test_the_domain_has_one_search_projection_and_names_it_when_asked_for_another(
    reader: SearchReader,
) -> None:
    assert reader.projections() == [PROJECTION]
    assert "shipping_address.country" in reader.fields(PROJECTION).filters
    with pytest.raises(UnknownProjectionError, match="search projections: search-orders"):
        reader.search("order-summary", {})


def test_free_text_finds_all_words_in_any_text_field(reader: SearchReader) -> None:
    london = search(reader, q="london")
    assert (london.total, ids(london)) == (2, ["o-1", "o-3"])
    assert ids(search(reader, q="changed mind")) == ["o-3"]
    assert search(reader, q="changed paris").total == 0  # every word must match
    assert ids(search(reader, q="c-cyd")) == ["o-4"]  # a keyword copied to search_text
    assert ids(search(reader, q="lond*")) == ["o-1", "o-3"]


def test_broken_or_heavy_free_text_is_still_a_search(reader: SearchReader) -> None:
    assert ids(search(reader, q='"london (')) == ["o-1", "o-3"]
    assert search(reader, q='-+|)(*~"').total == 5  # operators alone exclude nothing
    words = " ".join(f"w{n}*" for n in range(32))
    assert search(reader, q=words).total == 0


def test_exact_filters_any_of_and_within_one_nested_line(reader: SearchReader) -> None:
    placed_or_confirmed = search(reader, status="PLACED,CONFIRMED")
    assert (placed_or_confirmed.total, ids(placed_or_confirmed)) == (3, ["o-1", "o-2", "o-5"])
    assert ids(search(reader, **{"shipping_address.country": "FR"})) == ["o-2", "o-5"]
    assert ids(search(reader, **{"items.sku": "tea", "status": "PLACED"})) == ["o-1", "o-5"]
    # o-1 has mug-blue x2 and tea x3: no one line of it matches both.
    assert ids(search(reader, **{"items.sku": "mug-blue", "items.quantity__gte": "3"})) == ["o-4"]


def test_ranges_convert_numbers_and_dates(reader: SearchReader) -> None:
    assert ids(search(reader, total_cents__gte="3000")) == ["o-1", "o-3", "o-4"]
    assert ids(search(reader, total_cents__gt="1500", total_cents__lte="3000")) == ["o-3"]
    days = search(reader, placed_at__gte="2026-03-02", placed_at__lt="2026-03-04T00:00:00+00:00")
    assert ids(days) == ["o-2", "o-3"]
    assert ids(search(reader, version__gt="1", q="london")) == ["o-3"]


def test_sort_orders_break_ties_by_order_id(reader: SearchReader) -> None:
    by_total = reader.search(PROJECTION, {"sort": ["-total_cents"], "size": ["3"]})
    assert ids(by_total) == ["o-4", "o-1", "o-3"]
    rest = reader.search(PROJECTION, {"sort": ["-total_cents"], "size": ["3"], "page": ["2"]})
    assert ids(rest) == ["o-2", "o-5"]  # 1500 each: the tie-breaker decides
    assert ids(search(reader, sort="customer_id,-placed_at", size="3")) == ["o-3", "o-1", "o-5"]


def test_pages_follow_each_other_to_the_end(reader: SearchReader) -> None:
    pages = [search(reader, size="2", page=str(n)) for n in (1, 2, 3)]
    assert [ids(page) for page in pages] == [["o-1", "o-2"], ["o-3", "o-4"], ["o-5"]]
    assert [(page.total, page.next_page) for page in pages] == [(5, 2), (5, 3), (5, None)]
    beyond = search(reader, size="2", page="4")
    assert (beyond.hits, beyond.total, beyond.next_page) == ([], 5, None)
    assert len(search(reader).hits) == 3  # the reader's max_size is its default here


def test_get_and_version_read_one_document_in_real_time(
    reader: SearchReader, backend: SearchBackend
) -> None:
    assert reader.get(PROJECTION, "o-3") == ORDERS[2].to_source()
    assert reader.version(PROJECTION, "o-3") == 3
    assert (reader.get(PROJECTION, "o-9"), reader.version(PROJECTION, "o-9")) == (None, 0)
    newer = ORDERS[0]._replace(status="CONFIRMED", version=2)
    write(backend, reader.alias(PROJECTION), newer)
    assert reader.version(PROJECTION, "o-1") == 2  # seen before any refresh
    assert search(reader, status="CONFIRMED").total == 1  # not searchable yet
    reader.refresh(PROJECTION)
    assert ids(search(reader, status="CONFIRMED")) == ["o-1", "o-2"]


def test_a_projection_without_an_index_yet_reads_as_empty(
    local_stack: Settings, search_settings: SearchSettings
) -> None:
    untouched = search_settings.model_copy(
        update={"index_prefix": f"{search_settings.index_prefix}-none"}
    )
    with SearchReader(local_stack.model_copy(update={"search": untouched})) as empty:
        page = empty.search(PROJECTION, {"q": ["london"]})
        assert (page.hits, page.total, page.next_page) == ([], 0, None)
        assert (empty.get(PROJECTION, "o-1"), empty.version(PROJECTION, "o-1")) == (None, 0)
        empty.refresh(PROJECTION)
