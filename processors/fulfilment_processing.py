"""The fulfilment process manager's IO-free half: route events, react, encode commands.

Two steps, each one Kafka transaction in its agent:

1. ``route``: an event from ``events`` (keyed by aggregate id) that the saga
   observes is forwarded unchanged to the ``fulfilment-inbox`` topic keyed by
   its order id, so that every fact about one order reaches one partition — the
   one that holds the order's saga state.
2. ``process``: the saga state for that order, the pure ``react`` from
   ``aggregates.fulfilment``, and the commands it issues, encoded for
   ``commands`` with ids derived from the causing event's id (so a re-delivered
   event re-issues the same command ids, which the aggregates deduplicate).

The stored record also remembers the last event ids it applied, so a
re-delivered event changes nothing even before the aggregates see it.
"""

from __future__ import annotations

import json
import typing
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from aggregates import fulfilment
from aggregates.fulfilment import Fulfilment, Observed
from processors.messages import EVENT_TYPES, command_name
from processors.structs import build, plain
from schemas.serde import AvroSerde

ISSUER = "cqrs-fulfilment"
COMMAND_ID_NAMESPACE = uuid.UUID("0f6a3b8e-2f55-4c4b-8d0e-6a1b7f3c9e42")
OBSERVED_TYPES: tuple[type, ...] = tuple(
    cls for _, cls in EVENT_TYPES.values() if cls in typing.get_args(Observed)
)


@dataclass(frozen=True)
class ObservedEvent:
    """An event the saga reacts to, with what it needs of the envelope."""

    order_id: str
    source_id: str  # the aggregate that emitted it: the order, or a SKU
    event_id: str
    correlation_id: str
    recorded_at: datetime
    event: Observed


@dataclass
class SagaRecord:
    """What the saga table holds per order: state and recently applied event ids."""

    state: Fulfilment
    applied: list[str] = field(default_factory=list)

    def to_bytes(self) -> bytes:
        return json.dumps({"state": plain(self.state), "applied": self.applied}).encode()

    @classmethod
    def from_bytes(cls, data: bytes) -> SagaRecord:
        raw = json.loads(data)
        return cls(build(Fulfilment, raw["state"]), raw["applied"])


@dataclass(frozen=True)
class Reaction:
    record: SagaRecord | None  # None: a repeated event, nothing to store
    commands: list[tuple[bytes, bytes]]  # (key = target aggregate id, framed Avro)


class FulfilmentProcessor:
    def __init__(self, serde: AvroSerde, commands_topic: str, remembered: int = 200) -> None:
        self._serde = serde
        self._commands_topic = commands_topic
        self._remembered = remembered

    def read(self, value: bytes | None) -> ObservedEvent | None:
        """The event in a record when the saga observes it; None for every other event.

        Raises ``SerializationError`` for bytes that are not a known event, so
        the agent can dead-letter them.
        """
        if value is None:
            return None
        decoded = self._serde.decode(value)
        known = EVENT_TYPES.get(decoded.full_name)
        if known is None or known[1] not in OBSERVED_TYPES:
            return None
        metadata: dict[str, Any] = decoded.value["metadata"]
        payload = {k: v for k, v in decoded.value.items() if k != "metadata"}
        event: Observed = build(known[1], payload)
        order_id = payload.get("order_id") or metadata["aggregate_id"]
        return ObservedEvent(
            order_id=order_id,
            source_id=metadata["aggregate_id"],
            event_id=metadata["event_id"],
            correlation_id=metadata.get("correlation_id") or metadata["event_id"],
            recorded_at=metadata["recorded_at"],
            event=event,
        )

    def process(self, observed: ObservedEvent, stored: SagaRecord | None) -> Reaction:
        record = stored or SagaRecord(Fulfilment())
        if observed.event_id in record.applied:
            return Reaction(None, [])
        state, issues = fulfilment.react(
            record.state, observed.order_id, observed.source_id, observed.event
        )
        applied = [*record.applied, observed.event_id][-self._remembered :]
        commands = [self._encode(observed, index, issue) for index, issue in enumerate(issues)]
        return Reaction(SagaRecord(state, applied), commands)

    def _encode(
        self, observed: ObservedEvent, index: int, issue: fulfilment.Issue
    ) -> tuple[bytes, bytes]:
        command_id = str(uuid.uuid5(COMMAND_ID_NAMESPACE, f"{observed.event_id}/{index}"))
        metadata = {
            "command_id": command_id,
            "aggregate_id": issue.aggregate_id,
            "correlation_id": observed.correlation_id,
            "causation_id": observed.event_id,
            "expected_version": None,
            # The causing event's time, not the clock: a re-issued command is identical.
            "issued_at": observed.recorded_at,
            "issued_by": ISSUER,
        }
        value = self._serde.encode(
            self._commands_topic,
            command_name(issue.command),
            {"metadata": metadata, **plain(issue.command)},
        )
        return issue.aggregate_id.encode(), value
