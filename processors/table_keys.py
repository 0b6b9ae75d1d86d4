"""Keys of the command processor's table: an aggregate's record and its idempotency window.

One aggregate owns three kinds of entries, all written to the changelog
partition of the aggregate's command partition, so they move, restore and
commit together:

- ``Order:o-1``: the aggregate record (state, version, commands decided, and
  the newest command's result);
- ``~result:<n>:Order:o-1:<command id>``: the encoded result an older command
  of the window got, sent again unchanged when the command is repeated;
- ``~slot:<n>:Order:o-1:<i>``: which command's result occupies slot ``i`` of
  the aggregate's window, so the oldest can be deleted when a new one arrives.

``n`` is the length of the aggregate key, so ids holding ``:`` cannot make two
keys alike; ``~`` cannot start an aggregate key, whose kinds are identifiers.
"""

from __future__ import annotations

from typing import NamedTuple

RESULT = "~result"
SLOT = "~slot"


class ParsedKey(NamedTuple):
    entry: str  # "record", RESULT or SLOT
    aggregate_key: str
    detail: str  # command id, slot number, or "" for a record


def record_key(kind: str, aggregate_id: str) -> bytes:
    return f"{kind}:{aggregate_id}".encode()


def result_key(aggregate_key: bytes, command_id: str) -> bytes:
    return _entry(RESULT, aggregate_key, command_id)


def slot_key(aggregate_key: bytes, slot: int) -> bytes:
    return _entry(SLOT, aggregate_key, str(slot))


def _entry(entry: str, aggregate_key: bytes, detail: str) -> bytes:
    aggregate = aggregate_key.decode()
    return f"{entry}:{len(aggregate)}:{aggregate}:{detail}".encode()


def parse(key: str) -> ParsedKey:
    """What a table key names; ValueError for a key the processor never writes."""
    if not key.startswith("~"):
        if ":" not in key:
            raise ValueError(f"not a command processor table key: {key!r}")
        return ParsedKey("record", key, "")
    entry, _, rest = key.partition(":")
    length_text, _, rest = rest.partition(":")
    if entry not in {RESULT, SLOT} or not length_text.isdigit():
        raise ValueError(f"not a command processor table key: {key!r}")
    length = int(length_text)
    aggregate_key, separator, detail = rest[:length], rest[length : length + 1], rest[length + 1 :]
    if separator != ":" or ":" not in aggregate_key:
        raise ValueError(f"not a command processor table key: {key!r}")
    return ParsedKey(entry, aggregate_key, detail)


def aggregate_id(key: str) -> str:
    """The aggregate a table key belongs to (it decides the key's partition)."""
    return parse(key).aggregate_key.split(":", 1)[1]
