"""Checks every projection makes of an event's envelope."""

from __future__ import annotations

from datetime import datetime

from core.errors import InvalidEventError
from sinks.base import EventRecord


def require_envelope(record: EventRecord, aggregate_type: str) -> datetime:
    """The event's business time, after checking the envelope fits the aggregate."""
    found = record.metadata.get("aggregate_type")
    if found != aggregate_type:
        raise InvalidEventError(
            "WRONG_AGGREGATE_TYPE",
            f"{record.event_type} belongs to {aggregate_type} aggregates, got {found!r}",
        )
    if not record.aggregate_id.strip():
        raise InvalidEventError("MISSING_AGGREGATE_ID", f"{record.event_type} has no aggregate id")
    if record.sequence < 1:
        raise InvalidEventError(
            "INVALID_SEQUENCE", f"{record.event_type} has sequence {record.sequence}; 1 or more"
        )
    occurred_at = record.occurred_at
    if occurred_at is None:
        raise InvalidEventError("MISSING_TIMESTAMP", f"{record.event_type} has no occurred_at")
    return occurred_at


def require_positive(record: EventRecord, field: str) -> int:
    value = int(record.value.get(field) or 0)
    if value <= 0:
        raise InvalidEventError(
            "INVALID_QUANTITY",
            f"{record.event_type} of {record.aggregate_id} has {field} {value}; must be positive",
        )
    return value
