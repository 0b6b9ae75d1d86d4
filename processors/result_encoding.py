"""The Avro body of a ``CommandResult``, written by hand: one per command, at a third of
fastavro's cost.

Every command gets a result, so its encoding is on the hot path; fastavro's
generic writer walks the schema for each one (about 7.5 µs, 6 % of a worker's
time per command). The schema is the product's own envelope record
(``schemas/avro/envelope/CommandResult.avsc``), so its binary layout is fixed:
strings as zig-zag length plus UTF-8, unions as a branch index, the enum as its
index, the array as one block. ``ResultEncoder.verified`` checks the hand-written
bytes against fastavro's for the schema actually loaded and falls back to
fastavro when they differ (a changed envelope), so a drift can cost speed but
never produce other bytes.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

Encode = Callable[[Mapping[str, Any]], bytes]
STATUS = {"ACCEPTED": b"\x00", "REJECTED": b"\x02"}  # enum index 0, 1 as zig-zag longs


def _long(value: int) -> bytes:
    zigzag = (value << 1) ^ (value >> 63)
    if zigzag < 0x80:
        return _ONE_BYTE[zigzag]
    out = bytearray()
    while zigzag > 0x7F:
        out.append((zigzag & 0x7F) | 0x80)
        zigzag >>= 7
    out.append(zigzag)
    return bytes(out)


_ONE_BYTE = [bytes((n,)) for n in range(0x80)]
# Lengths of strings, and small versions, come up again and again: their varints, once.
_LONGS = [_long(n) for n in range(4096)]


def _varint(value: int) -> bytes:
    return _LONGS[value] if 0 <= value < 4096 else _long(value)


class _LastTimestamp:
    """Commands of one batch share a millisecond or a few: its encoding, remembered."""

    __slots__ = ("encoded", "value")

    def __init__(self) -> None:
        self.value, self.encoded = 0, _long(0)

    def __call__(self, value: int) -> bytes:
        if value != self.value:
            self.value, self.encoded = value, _long(value)
        return self.encoded


_timestamp = _LastTimestamp()


def result_body(result: Mapping[str, Any]) -> bytes:
    """The Avro binary of a CommandResult (no framing)."""
    varint = _varint
    command_id = result["command_id"].encode()
    command_type = result["command_type"].encode()
    aggregate_id = result["aggregate_id"]
    version = result["version"]
    event_ids = result["event_ids"]
    rejection = result["rejection"]
    parts = [varint(len(command_id)), command_id, varint(len(command_type)), command_type]
    if aggregate_id is None:
        parts.append(b"\x00")
    else:
        encoded = aggregate_id.encode()
        parts += (b"\x02", varint(len(encoded)), encoded)
    parts.append(STATUS[result["status"]])
    parts.append(b"\x00" if version is None else b"\x02" + varint(version))
    if event_ids:
        parts.append(varint(len(event_ids)))
        for event_id in event_ids:
            encoded = event_id.encode()
            parts += (varint(len(encoded)), encoded)
    parts.append(b"\x00")  # the end of the array's blocks
    if rejection is None:
        parts.append(b"\x00")
    else:
        code, reason = rejection["code"].encode(), rejection["reason"].encode()
        current = rejection["current_version"]
        parts += (b"\x02", varint(len(code)), code, varint(len(reason)), reason)
        parts.append(b"\x00" if current is None else b"\x02" + varint(current))
    parts.append(_timestamp(result["processed_at"]))
    return b"".join(parts)


SAMPLES: tuple[dict[str, Any], ...] = (
    {
        "command_id": "c-1",
        "command_type": "x.commands.Do",
        "aggregate_id": "a-ü",
        "status": "ACCEPTED",
        "version": 300,
        "event_ids": ["e-1", "e-2"],
        "rejection": None,
        "processed_at": 1_796_000_000_000,
    },
    {
        "command_id": "c-2",
        "command_type": "",
        "aggregate_id": None,
        "status": "REJECTED",
        "version": None,
        "event_ids": [],
        "rejection": {"code": "NOPE", "reason": "no" * 70, "current_version": None},
        "processed_at": 0,
    },
    {
        "command_id": "c-3",
        "command_type": "x.commands.Do",
        "aggregate_id": "a",
        "status": "REJECTED",
        "version": None,
        "event_ids": [],
        "rejection": {"code": "VERSION_CONFLICT", "reason": "r", "current_version": 7},
        "processed_at": 64,
    },
)


def verified(generic: Encode) -> Encode:
    """``result_body`` if it writes what ``generic`` (fastavro with the loaded schema)
    writes for every sample, else ``generic``."""
    if all(result_body(sample) == generic(sample) for sample in SAMPLES):
        return result_body
    return generic
