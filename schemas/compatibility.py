"""Schema compatibility by Avro's resolution rules, in Confluent's modes.

The reader/writer check itself is Apache Avro's own (``avro.compatibility``, a
port of the Java reference implementation that Confluent's registry uses); this
module only maps the registry's modes onto it:

- BACKWARD: the new schema can read data written with the latest one.
- FORWARD: the latest schema can read data written with the new one.
- FULL: both. ``*_TRANSITIVE``: against every earlier version, not just the latest.
- NONE: no check.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from enum import StrEnum

import avro.errors
import avro.schema
from avro.compatibility import ReaderWriterCompatibilityChecker, SchemaCompatibilityType

from core.errors import InvalidSchemaError


class CompatibilityMode(StrEnum):
    NONE = "NONE"
    BACKWARD = "BACKWARD"
    BACKWARD_TRANSITIVE = "BACKWARD_TRANSITIVE"
    FORWARD = "FORWARD"
    FORWARD_TRANSITIVE = "FORWARD_TRANSITIVE"
    FULL = "FULL"
    FULL_TRANSITIVE = "FULL_TRANSITIVE"


def parse(schema_text: str) -> avro.schema.Schema:
    """Parse with Apache Avro, turning its many error types into one."""
    try:
        json.loads(schema_text)
        return avro.schema.parse(schema_text)
    except json.JSONDecodeError as error:
        raise InvalidSchemaError(f"schema is not valid JSON: {error}") from error
    except (avro.errors.AvroException, avro.errors.SchemaParseException) as error:
        raise InvalidSchemaError(f"invalid Avro schema: {error}") from error
    except (TypeError, AttributeError, KeyError, ValueError) as error:
        raise InvalidSchemaError(f"invalid Avro schema: {error!r}") from error


def incompatibilities(new: str, existing: Sequence[str], mode: CompatibilityMode) -> list[str]:
    """Why ``new`` may not follow ``existing`` (oldest first) under ``mode``; empty if it may."""
    if mode is CompatibilityMode.NONE or not existing:
        return []
    transitive = mode.endswith("_TRANSITIVE")
    against = list(existing) if transitive else [existing[-1]]
    new_schema = parse(new)
    problems: list[str] = []
    checker = ReaderWriterCompatibilityChecker()  # type: ignore[no-untyped-call]
    for index, old_text in enumerate(against):
        old_schema = parse(old_text)
        label = "an earlier version" if transitive and index < len(against) - 1 else "the latest"
        if mode.startswith(("BACKWARD", "FULL")):
            problems += _check(checker, new_schema, old_schema, f"new schema cannot read {label}")
        if mode.startswith(("FORWARD", "FULL")):
            problems += _check(checker, old_schema, new_schema, f"{label} cannot read new schema")
    return problems


def _check(
    checker: ReaderWriterCompatibilityChecker,
    reader: avro.schema.Schema,
    writer: avro.schema.Schema,
    what: str,
) -> list[str]:
    result = checker.get_compatibility(reader, writer)
    if result.compatibility is SchemaCompatibilityType.compatible:
        return []
    kinds = ", ".join(sorted({kind.name for kind in result.incompatibilities}))
    locations = ", ".join(sorted(result.locations))
    details = ", ".join(sorted(result.messages))
    return [f"{what}: {kinds} ({details}) at {locations}"]
