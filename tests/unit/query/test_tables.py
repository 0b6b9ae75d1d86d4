"""Lists of a PostgreSQL view: what a query string may ask and the SQL it becomes."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from psycopg import sql

from core.errors import QueryParameterError
from cqrs.query.tables import (
    Column,
    ReadTable,
    by_id_statement,
    decode_cursor,
    encode_cursor,
    list_statement,
    page_of,
    parse_list,
)

TABLE = ReadTable(
    projection="order-summary",
    base="read_models",
    view="order_summary",
    columns=(
        Column("order_id", "text", True),
        Column("customer_id", "text", True),
        Column("total_cents", "bigint", True),
        Column("lines", "jsonb", True),
        Column("placed_at", "timestamp with time zone", True),
        Column("shipped_at", "timestamp with time zone", False),
        Column("version", "bigint", True),
    ),
    key=("order_id",),
    version="version",
)


def rendered(statement: sql.Composed) -> str:
    # Rendering needs no connection for identifiers and literals of plain text.
    return statement.as_string(None)


def parse(*params: tuple[str, str]) -> object:
    return parse_list(TABLE, list(params), default_limit=50, max_limit=500)


def test_filters_order_and_limit_become_one_parameterised_statement() -> None:
    query = parse_list(
        TABLE,
        [
            ("customer_id", "c1,c2"),
            ("total_cents__gte", "100"),
            ("order", "-placed_at"),
            ("limit", "3"),
        ],
        default_limit=50,
        max_limit=500,
    )
    statement, params = list_statement(TABLE, query)
    assert rendered(statement) == (
        'SELECT * FROM "read_models"."order_summary" WHERE "customer_id" IN '
        '(CAST(%s AS text), CAST(%s AS text)) AND "total_cents" >= CAST(%s AS bigint) '
        'ORDER BY "placed_at" DESC, "order_id" DESC LIMIT 4'
    )
    assert params == ["c1", "c2", "100"]


def test_the_cursor_continues_after_the_last_row_in_the_same_order() -> None:
    first = parse(("order", "total_cents"), ("limit", "2"))
    rows = [
        {"order_id": "a", "total_cents": 5},
        {"order_id": "b", "total_cents": 5},
        {"order_id": "c", "total_cents": 9},
    ]
    page, cursor = page_of(rows, first)  # type: ignore[arg-type]
    assert [row["order_id"] for row in page] == ["a", "b"]
    assert cursor is not None
    second = parse(("order", "total_cents"), ("limit", "2"), ("after", cursor))
    statement, params = list_statement(TABLE, second)  # type: ignore[arg-type]
    assert '("total_cents", "order_id") > (CAST(%s AS bigint), CAST(%s AS text))' in rendered(
        statement
    )
    assert params == ["5", "b"]
    assert page_of(rows[:2], first) == (rows[:2], None)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("params", "parameter", "says"),
    [
        ([("nope", "1")], "nope", "filter on one of order_id, customer_id"),
        ([("lines", "x")], "lines", "cannot be filtered"),
        ([("total_cents", "ten")], "total_cents", "not a bigint"),
        ([("placed_at__gt", "yesterday")], "placed_at__gt", "not a timestamp"),
        ([("total_cents__like", "1")], "total_cents__like", "unknown operator"),
        ([("order", "shipped_at")], "order", "cannot order by 'shipped_at'"),
        ([("limit", "0")], "limit", "from 1 to 500"),
        ([("limit", "501")], "limit", "from 1 to 500"),
        ([("after", "!!")], "after", "not a cursor"),
        ([("after", encode_cursor(["x", "y"]))], "after", "not a cursor"),
    ],
)
def test_what_cannot_be_answered_is_named(
    params: list[tuple[str, str]], parameter: str, says: str
) -> None:
    with pytest.raises(QueryParameterError) as refused:
        parse(*params)
    assert refused.value.parameter == parameter
    assert says in refused.value.reason


def test_a_cursor_of_the_wrong_type_is_refused() -> None:
    cursor = encode_cursor(["not-a-number", "a"])
    with pytest.raises(QueryParameterError, match="not a bigint"):
        parse(("order", "total_cents"), ("after", cursor))


@given(st.lists(st.one_of(st.text(), st.integers(), st.booleans()), min_size=1, max_size=4))
def test_cursors_round_trip(values: list[object]) -> None:
    texts = decode_cursor(encode_cursor(values), len(values))
    assert len(texts) == len(values)
    assert all(isinstance(text, str) for text in texts)


@given(st.text(max_size=40), st.text(max_size=40))
def test_any_query_string_parses_or_names_its_parameter(name: str, value: str) -> None:
    try:
        parse((name, value))
    except QueryParameterError as error:
        assert error.parameter in (name, "after", "limit", "order")


def test_a_read_by_id_casts_the_id_to_the_key_type() -> None:
    assert rendered(by_id_statement(TABLE)) == (
        'SELECT * FROM "read_models"."order_summary" WHERE "order_id" = CAST(%s AS text)'
    )
