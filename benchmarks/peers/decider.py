"""What a Python peer does per command, in plain code: decode, decide, encode.

The command is Confluent-framed Avro, its writer schema read by id from the
registry; the rules are those of ``aggregates/inventory.py`` for RegisterItem and
AdjustStock; the event (ItemRegistered or StockAdjusted) and the CommandResult are
encoded with fastavro and framed with the registry ids of their subjects
(``<topic>-<record full name>``), as the worker writes them. The state is a dict,
which the caller stores (its changelog, or its framework's state).
"""

from __future__ import annotations

import argparse
import io
import json
import struct
import time
import urllib.request
import uuid
from dataclasses import dataclass
from typing import Any

import fastavro

ADJUST = "cqrs.commands.AdjustStock"
REGISTER = "cqrs.commands.RegisterItem"
ADJUSTED = "cqrs.events.StockAdjusted"
REGISTERED = "cqrs.events.ItemRegistered"
RESULT = "cqrs.envelope.CommandResult"
MAX_UNITS = 2**31 - 1  # aggregates/limits.py
EVENT_ID_NAMESPACE = uuid.UUID("6b1f3a52-3c1e-4d8e-9a57-0c3e3c0f2b11")  # the worker's
HEADER = struct.Struct(">bI")
State = dict[str, Any]
INITIAL: State = {"registered": False, "name": "", "on_hand": 0, "reserved": 0, "version": 0}


class RejectedError(Exception):
    def __init__(self, code: str, reason: str) -> None:
        super().__init__(f"{code}: {reason}")
        self.code, self.reason = code, reason


@dataclass(frozen=True)
class Decision:
    event: bytes | None  # None: rejected
    result_key: bytes  # the command id
    result: bytes
    state: State  # after the command (the same state when rejected)


class Registry:
    """The two reads a peer needs from a Confluent-API schema registry."""

    def __init__(self, url: str) -> None:
        self._url = url.rstrip("/")

    def get(self, path: str) -> Any:
        with urllib.request.urlopen(self._url + path, timeout=10) as response:
            return json.load(response)

    def latest(self, subject: str) -> tuple[int, Any]:
        body = self.get(f"/subjects/{subject}/versions/latest")
        return int(body["id"]), fastavro.parse_schema(json.loads(body["schema"]))

    def by_id(self, schema_id: int) -> tuple[str, Any]:
        raw = json.loads(self.get(f"/schemas/ids/{schema_id}")["schema"])
        name = raw["name"] if "." in raw["name"] else f"{raw.get('namespace')}.{raw['name']}"
        return name, fastavro.parse_schema(raw)


class Decider:
    def __init__(self, registry_url: str, events_topic: str, results_topic: str) -> None:
        self._registry = Registry(registry_url)
        self._readers: dict[int, tuple[str, Any]] = {}
        self._writers: dict[str, tuple[bytes, Any]] = {}
        for topic, name in ((events_topic, ADJUSTED), (events_topic, REGISTERED)):
            self._writers[name] = self._writer(topic, name)
        self._writers[RESULT] = self._writer(results_topic, RESULT)

    def _writer(self, topic: str, name: str) -> tuple[bytes, Any]:
        schema_id, schema = self._registry.latest(f"{topic}-{name}")
        return HEADER.pack(0, schema_id), schema

    def decide(self, value: bytes, state: State | None) -> Decision:
        name, command = self._decode(value)
        metadata = command["metadata"]
        current = state or INITIAL
        try:
            event_name, payload, after = _decide(current, name, command)
        except RejectedError as rejection:
            result = self._result(
                name,
                metadata,
                version=None,
                event_id=None,
                rejection=rejection,
                current_version=current["version"],
            )
            return Decision(None, metadata["command_id"].encode(), result, current)
        version = current["version"] + 1
        after["version"] = version
        event_id = str(uuid.uuid5(EVENT_ID_NAMESPACE, f"{metadata['command_id']}/0"))
        event = self._encode(
            event_name, {"metadata": _event_metadata(metadata, event_id, version), **payload}
        )
        result = self._result(
            name,
            metadata,
            version=version,
            event_id=event_id,
            rejection=None,
            current_version=version,
        )
        return Decision(event, metadata["command_id"].encode(), result, after)

    def _decode(self, value: bytes) -> tuple[str, Any]:
        schema_id = int.from_bytes(value[1:5], "big")
        reader = self._readers.get(schema_id)
        if reader is None:
            reader = self._readers[schema_id] = self._registry.by_id(schema_id)
        buffer = io.BytesIO(value)
        buffer.seek(HEADER.size)
        return reader[0], fastavro.schemaless_reader(buffer, reader[1], None)

    def _encode(self, name: str, value: dict[str, Any]) -> bytes:
        header, schema = self._writers[name]
        buffer = io.BytesIO()
        buffer.write(header)
        fastavro.schemaless_writer(buffer, schema, value)
        return buffer.getvalue()

    def _result(
        self,
        name: str,
        metadata: dict[str, Any],
        *,
        version: int | None,
        event_id: str | None,
        rejection: RejectedError | None,
        current_version: int,
    ) -> bytes:
        why: dict[str, Any] | None = None
        if rejection is not None:
            why = {"code": rejection.code, "reason": rejection.reason}
            why["current_version"] = current_version
        result = {
            "command_id": metadata["command_id"],
            "command_type": name,
            "aggregate_id": metadata["aggregate_id"],
            "status": "REJECTED" if rejection else "ACCEPTED",
            "version": version,
            "event_ids": [event_id] if event_id else [],
            "rejection": why,
            "processed_at": time.time_ns() // 1_000_000,
        }
        return self._encode(RESULT, result)


def _decide(state: State, name: str, command: dict[str, Any]) -> tuple[str, dict[str, Any], State]:
    """The event's name, its payload and the new state; RejectedError by the inventory rules."""
    expected = command["metadata"].get("expected_version")
    if expected is not None and expected != state["version"]:
        raise RejectedError("VERSION_CONFLICT", f"expected version {expected}")
    if name == REGISTER:
        if state["registered"]:
            raise RejectedError("ITEM_ALREADY_REGISTERED", "this SKU is already registered")
        return (
            REGISTERED,
            {"name": command["name"]},
            {**state, "registered": True, "name": command["name"]},
        )
    if name != ADJUST:
        raise RejectedError("UNKNOWN_COMMAND_TYPE", f"{name} is not handled here")
    delta = command["delta"]
    if not state["registered"]:
        raise RejectedError("ITEM_NOT_REGISTERED", "no item with this SKU is registered")
    if delta == 0:
        raise RejectedError("ZERO_ADJUSTMENT", "a stock adjustment must change the stock")
    if command["reason"] == "RESTOCK" and delta < 0:
        raise RejectedError("NEGATIVE_RESTOCK", "a restock adds units; use CORRECTION to remove")
    if state["on_hand"] - state["reserved"] + delta < 0:
        raise RejectedError("STOCK_BELOW_RESERVED", f"removing {-delta} units would leave too few")
    if state["on_hand"] + delta > MAX_UNITS:
        raise RejectedError("STOCK_LIMIT_EXCEEDED", f"adding {delta} units exceeds {MAX_UNITS}")
    payload = {"delta": delta, "reason": command["reason"], "note": command["note"]}
    return ADJUSTED, payload, {**state, "on_hand": state["on_hand"] + delta}


def _event_metadata(command: dict[str, Any], event_id: str, sequence: int) -> dict[str, Any]:
    return {
        "event_id": event_id,
        "aggregate_type": "InventoryItem",
        "aggregate_id": command["aggregate_id"],
        "sequence": sequence,
        "command_id": command["command_id"],
        "correlation_id": command.get("correlation_id") or command["command_id"],
        "causation_id": command["command_id"],
        "occurred_at": command["issued_at"],
        "recorded_at": time.time_ns() // 1_000_000,
    }


def peer_options() -> argparse.Namespace:
    """The command line every Python peer takes from the benchmark."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--registry", required=True)
    parser.add_argument("--prefix", required=True, help="topic prefix of the round")
    parser.add_argument("--group", required=True, help="consumer group / application id")
    parser.add_argument("--state-dir", required=True)
    parser.add_argument("--commit-interval", type=float, default=0.05)
    return parser.parse_args()
