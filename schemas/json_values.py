"""JSON values to the Python values fastavro writes, by the record's schema.

JSON has no timestamps, dates, decimals or bytes, so a command written as JSON
(by the HTTP gateway's callers, or ``cqrs send --json``) says them as text:
timestamps and dates in ISO 8601 (or epoch milliseconds for timestamps),
decimals as strings or numbers, bytes as base64. Everything else passes as it
is, and fastavro checks it against the schema. ``JsonValueError`` names the
field that could not be read, e.g. ``lines[2].quantity``.
"""

from __future__ import annotations

import base64
import binascii
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from core.errors import JsonValueError

Named = dict[str, Any]


def from_json(schema: Any, value: Any, *, omit: frozenset[str] = frozenset()) -> Any:
    """``value`` (parsed JSON) as fastavro writes ``schema`` (a fastavro parsed schema);
    ``omit`` names fields of a top-level record that someone else fills in."""
    named = schema.get("__named_schemas", {}) if isinstance(schema, dict) else {}
    if omit and isinstance(schema, dict) and schema.get("type") == "record":
        fields = [field for field in schema["fields"] if field["name"] not in omit]
        schema = {**schema, "fields": fields}
    return _convert(schema, value, "", named)


def _convert(schema: Any, value: Any, path: str, named: Named) -> Any:
    if isinstance(schema, str) and schema in named:
        schema = named[schema]  # a named type used again is referred to by its name
    if isinstance(schema, list):
        return _union(schema, value, path, named)
    if isinstance(schema, str) or not isinstance(schema, dict):
        return _primitive(schema, value, path)
    logical = schema.get("logicalType")
    if logical is not None and value is not None:
        return _logical(str(logical), schema, value, path, named)
    kind = schema.get("type")
    if kind == "record":
        return _record(schema, value, path, named)
    if kind == "array":
        if not isinstance(value, list):
            raise JsonValueError(path, "expected an array")
        return [
            _convert(schema["items"], item, f"{path}[{i}]", named) for i, item in enumerate(value)
        ]
    if kind == "map":
        if not isinstance(value, dict):
            raise JsonValueError(path, "expected an object")
        return {
            key: _convert(schema["values"], item, _join(path, key), named)
            for key, item in value.items()
        }
    if kind == "enum":
        if value not in schema["symbols"]:
            raise JsonValueError(path, f"expected one of {', '.join(schema['symbols'])}")
        return value
    return _convert(kind, value, path, named)


def _record(schema: dict[str, Any], value: Any, path: str, named: Named) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise JsonValueError(path, f"expected an object ({schema.get('name')})")
    fields = {field["name"]: field for field in schema["fields"]}
    unknown = sorted(set(value) - set(fields))
    if unknown:
        raise JsonValueError(_join(path, unknown[0]), f"no such field in {schema.get('name')}")
    return {
        name: _convert(fields[name]["type"], item, _join(path, name), named)
        for name, item in value.items()
    }


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def _union(branches: list[Any], value: Any, path: str, named: Named) -> Any:
    if value is None:
        return None
    problems = []
    for branch in branches:
        if branch == "null":
            continue
        try:
            return _convert(branch, value, path, named)
        except JsonValueError as error:
            problems.append(str(error))
    raise JsonValueError(
        path, "fits no branch of its union" + (f" ({problems[0]})" if problems else "")
    )


def _primitive(kind: Any, value: Any, path: str) -> Any:
    if kind == "bytes" and isinstance(value, str):
        try:
            return base64.b64decode(value, validate=True)
        except binascii.Error:
            raise JsonValueError(path, "expected base64 bytes") from None
    if kind in ("float", "double") and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value


def _logical(logical: str, schema: dict[str, Any], value: Any, path: str, named: Named) -> Any:
    if logical in ("timestamp-millis", "timestamp-micros", "local-timestamp-millis"):
        if isinstance(value, int) and not isinstance(value, bool):
            return datetime.fromtimestamp(value / 1000, UTC)
        if isinstance(value, str):
            try:
                parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
            except ValueError:
                raise JsonValueError(path, "expected an ISO 8601 timestamp") from None
            return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
        raise JsonValueError(path, "expected an ISO 8601 timestamp or epoch milliseconds")
    if logical == "date" and isinstance(value, str):
        try:
            return date.fromisoformat(value)
        except ValueError:
            raise JsonValueError(path, "expected an ISO 8601 date") from None
    if (
        logical == "decimal"
        and isinstance(value, str | int | float)
        and not isinstance(value, bool)
    ):
        try:
            return Decimal(str(value))
        except InvalidOperation:
            raise JsonValueError(path, "expected a decimal number") from None
    return _convert(schema["type"], value, path, named)
