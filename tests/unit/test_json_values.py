"""JSON values read by an Avro schema, as the command gateway reads payloads."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

import fastavro
import pytest

from core.errors import JsonValueError
from schemas.json_values import from_json

SCHEMA = fastavro.parse_schema(
    {
        "type": "record",
        "name": "t.Sample",
        "fields": [
            {"name": "at", "type": {"type": "long", "logicalType": "timestamp-millis"}},
            {
                "name": "day",
                "type": ["null", {"type": "int", "logicalType": "date"}],
                "default": None,
            },
            {
                "name": "price",
                "type": {"type": "bytes", "logicalType": "decimal", "precision": 9, "scale": 2},
            },
            {"name": "blob", "type": "bytes", "default": ""},
            {
                "name": "lines",
                "type": {
                    "type": "array",
                    "items": {
                        "type": "record",
                        "name": "t.Line",
                        "fields": [{"name": "quantity", "type": "int"}],
                    },
                },
            },
            {"name": "last", "type": ["null", "t.Line"], "default": None},
            {"name": "kind", "type": {"type": "enum", "name": "t.Kind", "symbols": ["A", "B"]}},
            {"name": "ratio", "type": "double", "default": 0},
        ],
    }
)


def test_text_becomes_the_values_fastavro_writes() -> None:
    value = from_json(
        SCHEMA,
        {
            "at": "2026-01-02T03:04:05Z",
            "day": "2026-01-02",
            "price": "12.50",
            "blob": "AAE=",
            "lines": [{"quantity": 2}],
            "last": {"quantity": 1},
            "kind": "B",
            "ratio": 2,
        },
    )
    assert value["at"] == datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert value["day"] == date(2026, 1, 2)
    assert value["price"] == Decimal("12.50")
    assert value["blob"] == b"\x00\x01"
    assert value["ratio"] == 2.0 and isinstance(value["ratio"], float)
    assert from_json(SCHEMA, {"at": 0})["at"] == datetime(1970, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    ("value", "path"),
    [
        ({"at": "soon"}, "at"),
        ({"at": 0, "day": "2026-13-01"}, "day"),
        ({"at": 0, "price": "cheap"}, "price"),
        ({"at": 0, "lines": [{"quantity": 1}, {"qty": 1}]}, "lines[1].qty"),
        ({"at": 0, "kind": "C"}, "kind"),
        ({"at": 0, "blob": "***"}, "blob"),
        ({"at": 0, "lines": {}}, "lines"),
    ],
)
def test_what_cannot_be_read_names_its_field(value: dict[str, object], path: str) -> None:
    with pytest.raises(JsonValueError) as refused:
        from_json(SCHEMA, value)
    assert refused.value.path == path


def test_omitted_fields_are_left_to_the_caller() -> None:
    with pytest.raises(JsonValueError):
        from_json(SCHEMA, {"at": 0, "extra": 1})
    assert from_json(SCHEMA, {"lines": []}, omit=frozenset({"at"})) == {"lines": []}
