"""The compatibility case table: each rule of Avro schema resolution, per registry mode.

Each case is (old schema, new schema, expected verdict for BACKWARD, FORWARD, FULL).
BACKWARD: the new schema reads old data. FORWARD: the old schema reads new data.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from core.errors import InvalidSchemaError
from schemas.compatibility import CompatibilityMode, incompatibilities

OK, NO = True, False


def record(*fields: dict[str, Any], name: str = "Order", aliases: list[str] | None = None) -> str:
    schema: dict[str, Any] = {
        "type": "record",
        "name": name,
        "namespace": "t",
        "fields": list(fields),
    }
    if aliases:
        schema["aliases"] = aliases
    return json.dumps(schema)


def f(name: str, type_: Any, **extra: Any) -> dict[str, Any]:
    return {"name": name, "type": type_, **extra}


ID = f("id", "string")
ENUM_ABC = {"type": "enum", "name": "Status", "symbols": ["A", "B", "C"]}
ENUM_AB = {"type": "enum", "name": "Status", "symbols": ["A", "B"]}
ENUM_AB_DEFAULT = {"type": "enum", "name": "Status", "symbols": ["A", "B"], "default": "A"}
LINE = {"type": "record", "name": "Line", "fields": [f("sku", "string")]}
LINE_WITH_QTY = {
    "type": "record",
    "name": "Line",
    "fields": [f("sku", "string"), f("qty", "int", default=1)],
}
LINE_WITH_QTY_NO_DEFAULT = {
    "type": "record",
    "name": "Line",
    "fields": [f("sku", "string"), f("qty", "int")],
}

CASES: list[tuple[str, str, str, bool, bool, bool]] = [
    # name, old, new, BACKWARD, FORWARD, FULL
    ("identical", record(ID), record(ID), OK, OK, OK),
    ("add field with default", record(ID), record(ID, f("note", "string", default="")), OK, OK, OK),
    ("add field without default", record(ID), record(ID, f("note", "string")), NO, OK, NO),
    (
        "remove field with default",
        record(ID, f("note", "string", default="")),
        record(ID),
        OK,
        OK,
        OK,
    ),
    ("remove field without default", record(ID, f("note", "string")), record(ID), OK, NO, NO),
    (
        "rename field via alias",
        record(ID, f("qty", "int")),
        record(ID, f("quantity", "int", aliases=["qty"])),
        OK,
        NO,
        NO,
    ),
    (
        "rename field without alias",
        record(ID, f("qty", "int")),
        record(ID, f("quantity", "int")),
        NO,
        NO,
        NO,
    ),
    (
        "rename record via alias",
        record(ID, name="Order"),
        record(ID, name="Purchase", aliases=["t.Order"]),
        OK,
        NO,
        NO,
    ),
    ("int promoted to long", record(f("n", "int")), record(f("n", "long")), OK, NO, NO),
    ("int promoted to double", record(f("n", "int")), record(f("n", "double")), OK, NO, NO),
    ("long promoted to float", record(f("n", "long")), record(f("n", "float")), OK, NO, NO),
    ("float promoted to double", record(f("n", "float")), record(f("n", "double")), OK, NO, NO),
    ("long narrowed to int", record(f("n", "long")), record(f("n", "int")), NO, OK, NO),
    ("string to bytes", record(f("s", "string")), record(f("s", "bytes")), OK, OK, OK),
    ("string to int", record(f("s", "string")), record(f("s", "int")), NO, NO, NO),
    ("enum symbol added", record(f("s", ENUM_AB)), record(f("s", ENUM_ABC)), OK, NO, NO),
    ("enum symbol removed", record(f("s", ENUM_ABC)), record(f("s", ENUM_AB)), NO, OK, NO),
    (
        "enum symbol removed, reader has default",
        record(f("s", ENUM_ABC)),
        record(f("s", ENUM_AB_DEFAULT)),
        OK,
        OK,
        OK,
    ),
    (
        "field made nullable",
        record(f("n", "string")),
        record(f("n", ["null", "string"], default=None)),
        OK,
        NO,
        NO,
    ),
    (
        "nullable made required",
        record(f("n", ["null", "string"], default=None)),
        record(f("n", "string")),
        NO,
        OK,
        NO,
    ),
    (
        "union branch added",
        record(f("v", ["null", "string"])),
        record(f("v", ["null", "string", "long"])),
        OK,
        NO,
        NO,
    ),
    (
        "nested record field added with default",
        record(f("line", LINE)),
        record(f("line", LINE_WITH_QTY)),
        OK,
        OK,
        OK,
    ),
    (
        "nested record field added without default",
        record(f("line", LINE)),
        record(f("line", LINE_WITH_QTY_NO_DEFAULT)),
        NO,
        OK,
        NO,
    ),
    (
        "array items promoted",
        record(f("xs", {"type": "array", "items": "int"})),
        record(f("xs", {"type": "array", "items": "long"})),
        OK,
        NO,
        NO,
    ),
    (
        "array of nested records evolves",
        record(f("xs", {"type": "array", "items": LINE})),
        record(f("xs", {"type": "array", "items": LINE_WITH_QTY})),
        OK,
        OK,
        OK,
    ),
    (
        "array changed to map",
        record(f("xs", {"type": "array", "items": "int"})),
        record(f("xs", {"type": "map", "values": "int"})),
        NO,
        NO,
        NO,
    ),
    (
        "map values promoted",
        record(f("m", {"type": "map", "values": "int"})),
        record(f("m", {"type": "map", "values": "long"})),
        OK,
        NO,
        NO,
    ),
    (
        "named type renamed without alias",
        record(f("line", LINE)),
        record(f("line", {**LINE, "name": "Item"})),
        NO,
        NO,
        NO,
    ),
]


@pytest.mark.parametrize(
    ("name", "old", "new", "backward", "forward", "full"), CASES, ids=[case[0] for case in CASES]
)
def test_case_table(
    name: str, old: str, new: str, backward: bool, forward: bool, full: bool
) -> None:
    verdicts = {
        mode: not incompatibilities(new, [old], mode)
        for mode in (CompatibilityMode.BACKWARD, CompatibilityMode.FORWARD, CompatibilityMode.FULL)
    }
    assert verdicts == {
        CompatibilityMode.BACKWARD: backward,
        CompatibilityMode.FORWARD: forward,
        CompatibilityMode.FULL: full,
    }
    assert incompatibilities(new, [old], CompatibilityMode.NONE) == []


@pytest.mark.parametrize(
    ("mode", "history", "new", "compatible"),
    [
        (
            CompatibilityMode.BACKWARD,
            [record(ID), record(ID, f("a", "int", default=0))],
            record(ID, f("a", "int", default=0), f("b", "string")),
            False,
        ),
        (
            CompatibilityMode.BACKWARD,
            [record(ID, f("b", "string")), record(ID)],
            record(ID, f("b", "string", default="")),
            True,
        ),
        (
            CompatibilityMode.BACKWARD_TRANSITIVE,
            [record(ID, f("b", "int")), record(ID)],
            record(ID, f("b", "string", default="")),
            False,
        ),
        (
            CompatibilityMode.FORWARD,
            [record(ID), record(ID, f("b", "string"))],
            record(ID, f("b", "string"), f("c", "int")),
            True,
        ),
        (
            CompatibilityMode.FORWARD_TRANSITIVE,
            [record(ID, f("b", "int", default=0)), record(ID)],
            record(ID, f("b", "string")),
            False,
        ),
        (
            CompatibilityMode.FORWARD,
            [record(ID, f("b", "int", default=0)), record(ID)],
            record(ID, f("b", "string")),
            True,
        ),
        (
            CompatibilityMode.FULL_TRANSITIVE,
            [record(ID, f("b", "int", default=0)), record(ID)],
            record(ID, f("b", "string", default="")),
            False,
        ),
        (
            CompatibilityMode.FULL,
            [record(ID, f("b", "int", default=0)), record(ID)],
            record(ID, f("b", "string", default="")),
            True,
        ),
    ],
    ids=lambda value: value if isinstance(value, str) else None,
)
def test_transitive_modes_check_every_earlier_version(
    mode: CompatibilityMode, history: list[str], new: str, compatible: bool
) -> None:
    assert (not incompatibilities(new, history, mode)) is compatible


def test_messages_say_what_broke_and_where() -> None:
    problems = incompatibilities(
        record(ID, f("note", "string")), [record(ID)], CompatibilityMode.BACKWARD
    )
    assert len(problems) == 1
    assert "READER_FIELD_MISSING_DEFAULT_VALUE" in problems[0].upper()
    assert "note" in problems[0]


def test_first_version_is_always_compatible() -> None:
    assert incompatibilities(record(ID), [], CompatibilityMode.FULL_TRANSITIVE) == []


@pytest.mark.parametrize(
    "text", ["{not json", '{"type": "record", "name": "X"}', '"nonsense_type"']
)
def test_invalid_schemas_are_reported(text: str) -> None:
    with pytest.raises(InvalidSchemaError):
        incompatibilities(text, [record(ID)], CompatibilityMode.BACKWARD)
