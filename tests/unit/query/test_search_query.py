"""Search parameters → the engine's request, and its answer → a page: pure, no engine."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from aggregates.read_side.search_orders import ORDER_MAPPINGS
from core.errors import SearchParameterError
from cqrs.query.search_query import (
    MAX_QUERY_LENGTH,
    SearchFields,
    SearchRequest,
    build_search,
    search_fields,
    search_page,
)

ORDERS = search_fields(ORDER_MAPPINGS)
TEXT_FIELDS = [
    "status_reason",
    "shipping_address.name",
    "shipping_address.street",
    "shipping_address.city",
    "search_text",
]
TIE = {"order_id": {"order": "asc"}}
# Every type a filter converts, in one mapping.
TYPED = search_fields(
    {
        "properties": {
            "id": {"type": "keyword"},
            "paid": {"type": "boolean"},
            "weight": {"type": "float"},
            "ratio": {"type": "double"},
            "price": {"type": "scaled_float", "scaling_factor": 100},
            "rank": {"type": "short"},
            "at": {"type": "date"},
        }
    }
)


def body(**params: str | list[str]) -> dict[str, Any]:
    return build_search(ORDERS, query(**params)).body


def query(**params: str | list[str]) -> dict[str, list[str]]:
    return {name: [value] if isinstance(value, str) else value for name, value in params.items()}


def filters(fields: SearchFields = ORDERS, **params: str | list[str]) -> list[dict[str, Any]]:
    built = build_search(fields, query(**params)).body
    clauses: list[dict[str, Any]] = built["query"]["bool"]["filter"]
    return clauses


def refused(
    params: Mapping[str, Sequence[str]],
    fields: SearchFields = ORDERS,
    *,
    default_size: int = 20,
    max_size: int = 100,
    max_window: int = 10_000,
) -> str:
    with pytest.raises(SearchParameterError) as error:
        build_search(
            fields, params, default_size=default_size, max_size=max_size, max_window=max_window
        )
    return f"{error.value.parameter}|{error.value}"


def test_the_order_mapping_yields_its_fields_by_what_they_can_do() -> None:
    assert list(ORDERS.text) == TEXT_FIELDS
    assert ORDERS.filters["status"] == "keyword"
    assert ORDERS.filters["status_reason.keyword"] == "keyword"  # the text's multi-field
    assert ORDERS.filters["shipping_address.country"] == "keyword"
    assert ORDERS.filters["items.quantity"] == "integer"
    assert ORDERS.filters["placed_at"] == "date"
    assert "status_reason" not in ORDERS.filters and "search_text" not in ORDERS.filters
    assert dict(ORDERS.nested) == dict.fromkeys(
        ["items.sku", "items.quantity", "items.unit_price_cents", "items.amount_cents"], "items"
    )
    assert "shipping_address.city.keyword" in ORDERS.sortable
    assert not {"status_reason", "items.sku", "search_text"} & set(ORDERS.sortable)
    assert list(ORDERS.ranged) == [
        "items.quantity",
        "items.unit_price_cents",
        "items.amount_cents",
        "item_count",
        "total_cents",
        "placed_at",
        "updated_at",
        "shipped_at",
        "version",
    ]
    assert ORDERS.tie_breaker == "order_id"
    assert search_fields(ORDER_MAPPINGS) == ORDERS


def test_text_sub_fields_count_and_disabled_or_doubly_nested_objects_do_not() -> None:
    fields = search_fields(
        {
            "properties": {
                "code": {"type": "keyword", "fields": {"words": {"type": "text"}}},
                "raw": {"type": "object", "enabled": False},
                "lines": {
                    "type": "nested",
                    "properties": {
                        "note": {"type": "text"},
                        "parts": {"type": "nested", "properties": {"n": {"type": "long"}}},
                    },
                },
            }
        }
    )
    assert fields.text == ("code.words",)
    assert dict(fields.filters) == {"code": "keyword"}


@pytest.mark.parametrize(
    ("properties", "tie_breaker"),
    [
        ({"a_id": {"type": "keyword"}, "id": {"type": "keyword"}}, "id"),
        ({"name": {"type": "keyword"}, "sku_id": {"type": "keyword"}}, "sku_id"),
        ({"id": {"type": "long"}, "version": {"type": "long"}}, "version"),
        ({"name": {"type": "text"}}, None),
    ],
)
def test_the_tie_breaker_is_an_id_keyword_else_the_version_else_none(
    properties: dict[str, Any], tie_breaker: str | None
) -> None:
    assert search_fields({"properties": properties}).tie_breaker == tie_breaker


def test_an_explicit_id_field_must_be_a_sortable_keyword() -> None:
    assert search_fields(ORDER_MAPPINGS, id_field="last_event_id").tie_breaker == "last_event_id"
    for wrong in ("total_cents", "items.sku", "nope"):
        with pytest.raises(ValueError, match=wrong):
            search_fields(ORDER_MAPPINGS, id_field=wrong)


def test_no_parameters_match_everything_in_id_order() -> None:
    assert body() == {
        "query": {"match_all": {}},
        "sort": [TIE],
        "from": 0,
        "size": 20,
        "track_total_hits": True,
    }


def test_typical_parameters_make_this_body() -> None:
    assert body(
        q=" ada  lovelace ",
        status="PLACED,CONFIRMED",
        total_cents__gte="1000",
        placed_at__lt="2026-03-02",
        sort="-total_cents",
        page="2",
        size="10",
    ) == {
        "query": {
            "bool": {
                "must": [
                    {
                        "simple_query_string": {
                            "query": "ada  lovelace",
                            "fields": TEXT_FIELDS,
                            "default_operator": "and",
                        }
                    }
                ],
                "filter": [
                    {"range": {"placed_at": {"lt": "2026-03-02T00:00:00.000Z"}}},
                    {"terms": {"status": ["PLACED", "CONFIRMED"]}},
                    {"range": {"total_cents": {"gte": 1000}}},
                ],
            }
        },
        "sort": [{"total_cents": {"order": "desc"}}, {"_score": {"order": "desc"}}, TIE],
        "from": 10,
        "size": 10,
        "track_total_hits": True,
    }


def test_filters_on_one_nested_object_share_one_nested_query() -> None:
    assert filters(
        ORDERS, **{"items.sku": "mug-blue", "items.quantity__gt": "2", "currency": "EUR"}
    ) == [
        {"terms": {"currency": ["EUR"]}},
        {
            "nested": {
                "path": "items",
                "query": {
                    "bool": {
                        "filter": [
                            {"range": {"items.quantity": {"gt": 2}}},
                            {"terms": {"items.sku": ["mug-blue"]}},
                        ]
                    }
                },
            }
        },
    ]


def test_comma_lists_and_repeats_mean_any_of_once_each() -> None:
    assert filters(status=["PLACED, SHIPPED", "PLACED", "CANCELLED"]) == [
        {"terms": {"status": ["PLACED", "SHIPPED", "CANCELLED"]}}
    ]
    assert filters(item_count="1,2") == [{"terms": {"item_count": [1, 2]}}]


@pytest.mark.parametrize(
    ("parameter", "raw", "value"),
    [
        ("rank__gte", "-32768", -32768),
        ("rank__lt", "+7", 7),
        ("weight__gt", "1.5", 1.5),
        ("ratio__lte", "2e3", 2000.0),
        ("price__gte", ".25", 0.25),
        ("at__gte", "2026-03-01", "2026-03-01T00:00:00.000Z"),
        ("at__gte", "2026-03-01T10:30:00Z", "2026-03-01T10:30:00.000Z"),
        ("at__lt", "2026-03-01T10:30:00.123456+02:00", "2026-03-01T08:30:00.123Z"),
        ("at__lt", "2026-03-01T10:30", "2026-03-01T10:30:00.000Z"),  # no zone: UTC
    ],
)
def test_range_values_are_converted_by_field_type(parameter: str, raw: str, value: Any) -> None:
    field, _, operator = parameter.partition("__")
    assert filters(TYPED, **{parameter: raw}) == [{"range": {field: {operator: value}}}]


def test_bounds_of_one_field_make_one_range_and_exact_values_convert_too() -> None:
    assert filters(TYPED, rank__gte="1", rank__lt="5", paid="true,false", at="2026-03-01") == [
        {"terms": {"at": ["2026-03-01T00:00:00.000Z"]}},
        {"terms": {"paid": [True, False]}},
        {"range": {"rank": {"gte": 1, "lt": 5}}},
    ]


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"colour": ["red"]}, "colour|colour: unknown parameter; accepted: page, q, size, sort"),
        ({"status__gte": ["A"]}, "status__gte|status__gte: status is a keyword field"),
        ({"status__like": ["A"]}, "status__like|status__like: unknown parameter"),
        ({"status": [""]}, "status|status: empty value"),
        ({"status": ["A,,B"]}, "status|status: empty value"),
        ({"status": [",".join(["x"] * 101)]}, "status|status: at most 100 values"),
        ({"status": ["x" * 501]}, "status|status: values are at most 500 characters"),
        ({"item_count": ["two"]}, "item_count|item_count: expected a whole number from -2147"),
        ({"item_count": ["2147483648"]}, "item_count|item_count: expected a whole number"),
        ({"item_count": ["1_0"]}, "item_count|item_count: expected a whole number"),
        ({"total_cents__gt": ["1.5"]}, "total_cents__gt|total_cents__gt: expected a whole"),
        ({"total_cents__gt": ["1", "2"]}, "total_cents__gt|total_cents__gt: give it once"),
        ({"total_cents__gt": ["1"], "total_cents__gte": ["1"]}, "total_cents__gte|"),
        ({"placed_at__gte": ["yesterday"]}, "placed_at__gte|placed_at__gte: expected an ISO"),
        ({"placed_at__gte": ["2026-02-30"]}, "placed_at__gte|placed_at__gte: expected an ISO"),
        ({"placed_at__gte": ["20260301"]}, "placed_at__gte|placed_at__gte: expected an ISO"),
        ({"sort": ["colour"]}, "sort|sort: 'colour' cannot sort; give <field> or -<field> of"),
        ({"sort": ["status_reason"]}, "sort|sort: 'status_reason' cannot sort"),
        ({"sort": ["items.sku"]}, "sort|sort: 'items.sku' cannot sort"),
        ({"sort": ["status,-status"]}, "sort|sort: status is given twice"),
        ({"page": ["0"]}, "page|page: expected a whole number from 1 to 10000, got '0'"),
        ({"page": ["1", "2"]}, "page|page: give it once"),
        ({"size": ["101"]}, "size|size: expected a whole number from 1 to 100, got '101'"),
        ({"size": ["-1"]}, "size|size: expected a whole number"),
        ({"size": ["١٢"]}, "size|size: expected a whole number"),
        ({"q": ["a", "b"]}, "q|q: give it once, not 2 times"),
        ({"q": [" ".join(["w"] * 33)]}, "q|q: at most 32 words"),
    ],
)
def test_each_refusal_names_its_parameter_and_what_it_accepts(
    params: dict[str, list[str]], expected: str
) -> None:
    assert refused(params).startswith(expected)


def test_typed_refusals_say_what_the_type_accepts() -> None:
    assert "true or false" in refused({"paid": ["yes"]}, TYPED)
    assert "a decimal number" in refused({"weight": ["nan"]}, TYPED)
    assert "a decimal number" in refused({"weight": ["1e39"]}, TYPED)  # beyond a float
    assert "a decimal number" in refused({"ratio": ["1e400"]}, TYPED)
    assert "from -32768 to 32767" in refused({"rank": ["40000"]}, TYPED)


def test_q_is_capped_in_length_and_needs_text_fields() -> None:
    longest = ("a" * 9 + " ") * (MAX_QUERY_LENGTH // 10 - 1) + "a" * 10
    assert len(longest) == MAX_QUERY_LENGTH
    assert "at most 500 characters, got 501" in refused({"q": [longest + "b"]})
    words = " ".join(["w" * 14] * 32)
    assert len(words) < MAX_QUERY_LENGTH
    assert body(q=words)["query"]["bool"]["must"][0]["simple_query_string"]["query"] == words
    assert "no free-text fields" in refused({"q": ["x"]}, TYPED)
    assert body(q="  ")["query"] == {"match_all": {}}


def test_pages_stay_within_the_window() -> None:
    deepest = build_search(ORDERS, query(page="500", size="20"))
    assert (deepest.body["from"], deepest.body["size"]) == (9980, 20)
    reason = refused(query(page="501", size="20"))
    assert reason.startswith("page|page: page 501 of 20 hits reaches past the first 10000")
    assert "the last page at this size is 500" in reason
    assert refused(query(page="3"), max_window=10, max_size=5, default_size=5).startswith("page|")
    assert build_search(ORDERS, {}, default_size=7).size == 7
    with pytest.raises(ValueError, match=r"most \(20000\) <= window \(10000\)"):
        build_search(ORDERS, {}, max_size=20_000)


def test_sort_keys_end_in_the_tie_breaker_once() -> None:
    assert body(sort="-placed_at,status")["sort"] == [
        {"placed_at": {"order": "desc"}},
        {"status": {"order": "asc"}},
        TIE,
    ]
    assert body(sort=["-order_id", "version"])["sort"] == [
        {"order_id": {"order": "desc"}},
        {"version": {"order": "asc"}},
    ]
    assert body(q="ada")["sort"] == [{"_score": {"order": "desc"}}, TIE]
    assert build_search(TYPED, {}).body["sort"] == [{"id": {"order": "asc"}}]


def test_parameters_the_caller_handles_are_ignored_when_named() -> None:
    params = query(status="PLACED", min_version="3")
    assert "min_version|" in refused(params)
    built = build_search(ORDERS, params, ignored={"min_version"})
    assert built.body["query"]["bool"]["filter"] == [{"terms": {"status": ["PLACED"]}}]


def answer(total: Any, *sources: dict[str, Any]) -> dict[str, Any]:
    return {"hits": {"total": total, "hits": [{"_id": "x", "_source": s} for s in sources]}}


def test_a_page_reads_either_engines_total_and_knows_whether_more_follow() -> None:
    request = SearchRequest({}, page=1, size=2)
    first = search_page(answer({"value": 3, "relation": "eq"}, {"a": 1}, {"a": 2}), request)
    assert (first.hits, first.total, first.page, first.size) == ([{"a": 1}, {"a": 2}], 3, 1, 2)
    assert first.next_page == 2
    last = search_page(answer(3, {"a": 3}), SearchRequest({}, page=2, size=2))
    assert (last.total, last.next_page) == (3, None)
    exact = search_page(answer(4, {"a": 3}, {"a": 4}), SearchRequest({}, page=2, size=2))
    assert exact.next_page is None
    at_window = SearchRequest({}, page=2, size=4, window=10)
    assert search_page(answer(100), at_window).next_page is None


KNOWN = sorted(
    [*ORDERS.filters, *(f"{f}__{op}" for f in ORDERS.ranged for op in ("gte", "gt", "lte", "lt"))]
)


@given(
    q=st.text(max_size=600),
    parameter=st.sampled_from([*KNOWN, "sort", "page", "size"]),
    values=st.lists(st.text(max_size=40), min_size=1, max_size=3),
)
def test_any_text_builds_a_body_or_is_refused_by_name(
    q: str, parameter: str, values: list[str]
) -> None:
    try:
        built = build_search(ORDERS, {"q": [q], parameter: values})
    except SearchParameterError as error:
        assert error.parameter in {"q", parameter}
    else:
        json.dumps(built.body, allow_nan=False)  # what the engine will receive
