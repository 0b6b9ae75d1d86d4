"""The hand-written CommandResult body is byte for byte fastavro's, or it is not used."""

from __future__ import annotations

import io
import random
from collections.abc import Mapping
from typing import Any

import fastavro

from processors.result_encoding import SAMPLES, result_body, verified
from schemas.catalog import SchemaCatalog

RESULT = "cqrs.envelope.CommandResult"


def fastavro_body(value: Mapping[str, Any]) -> bytes:
    buffer = io.BytesIO()
    fastavro.schemaless_writer(buffer, SchemaCatalog().parsed(RESULT), value)
    return buffer.getvalue()


def random_result(chance: random.Random) -> dict[str, Any]:
    def text() -> str:
        return "".join(chance.choice("aé€😀-_0") for _ in range(chance.randrange(0, 90)))

    rejected = chance.random() < 0.5
    return {
        "command_id": text(),
        "command_type": text(),
        "aggregate_id": None if chance.random() < 0.2 else text(),
        "status": "REJECTED" if rejected else "ACCEPTED",
        "version": None if rejected else chance.randrange(0, 2**40),
        "event_ids": [] if rejected else [text() for _ in range(chance.randrange(0, 70))],
        "rejection": {
            "code": text(),
            "reason": text(),
            "current_version": None if chance.random() < 0.3 else chance.randrange(0, 2**62),
        }
        if rejected
        else None,
        "processed_at": chance.choice([0, 1, 63, 64, 2**31, chance.randrange(0, 2**45)]),
    }


def test_the_body_is_fastavros_for_every_shape_of_result() -> None:
    chance = random.Random(7)
    for value in [*SAMPLES, *(random_result(chance) for _ in range(2000))]:
        assert result_body(value) == fastavro_body(value), value


def test_the_shipped_schema_verifies_and_a_different_one_falls_back() -> None:
    assert verified(fastavro_body) is result_body

    def other_schema(value: Mapping[str, Any]) -> bytes:
        return fastavro_body(value) + b"\x00"  # a field more

    assert verified(other_schema) is other_schema
