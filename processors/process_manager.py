"""A process manager's IO-free half: read an observed event, react, encode the commands.

Two steps, each one Kafka transaction in its task (``process_manager_task``):

1. route: an event from ``events`` (keyed by aggregate id) of a type the process
   manager observes is forwarded unchanged to its inbox ``<name>-inbox``, keyed
   by the flow instance ``correlate`` names, so that every fact about one
   instance reaches one partition: the one holding the instance's state.
2. react: the instance's state, the domain's pure ``react``, and the commands it
   issues, encoded for ``commands`` with ids derived from the causing event's id
   (an event delivered again issues the same command ids, which the aggregates
   answer once).

The stored record also remembers the last event ids it applied, so an event
delivered again changes nothing even before the aggregates see it.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from core.domain import Issue, Observation, ProcessManager
from processors.messages import MessageTypes
from processors.structs import build, plain
from schemas.serde import AvroSerde

COMMAND_ID_NAMESPACE = uuid.UUID("0f6a3b8e-2f55-4c4b-8d0e-6a1b7f3c9e42")


@dataclass(frozen=True)
class Observed:
    """An observed event with the instance it belongs to and its flow's correlation."""

    key: str  # the flow instance (``ProcessManager.correlate``)
    correlation_id: str
    seen: Observation[Any]


@dataclass
class InstanceRecord:
    """What the state table holds per instance: state and recently applied event ids."""

    state: Any
    applied: list[str] = field(default_factory=list)

    def to_bytes(self) -> bytes:
        return orjson.dumps({"state": plain(self.state), "applied": self.applied})

    @classmethod
    def from_bytes(cls, data: bytes, state_type: type) -> InstanceRecord:
        raw = orjson.loads(data)
        return cls(build(state_type, raw["state"]), raw["applied"])


@dataclass(frozen=True)
class Reaction:
    record: InstanceRecord | None  # None: a repeated event, nothing to store
    commands: list[tuple[str, bytes, bytes]]  # (topic, key = target aggregate id, framed Avro)


class ProcessManagerProcessor:
    def __init__(
        self,
        serde: AvroSerde,
        types: MessageTypes,
        manager: ProcessManager[Any],
        commands_topics: Mapping[str, str],
        remembered: int = 200,
    ) -> None:
        """``commands_topics``: aggregate type → the topic its commands travel on."""
        self.manager = manager
        self._serde, self._types = serde, types
        self._commands_topics = commands_topics
        self._remembered = remembered
        self._observes = frozenset(manager.observes)
        self._state_type = type(manager.initial)
        self._issuer = f"cqrs-{manager.name}"

    def read(self, value: bytes | None) -> Observed | None:
        """The event in a record when the process manager observes it; None for every
        other event. Raises ``SerializationError`` for bytes that are not a known event,
        so the task can dead-letter them."""
        if value is None:
            return None
        decoded = self._serde.decode(value)
        known = self._types.events.get(decoded.full_name)
        if known is None or known[1] not in self._observes:
            return None
        metadata: dict[str, Any] = decoded.value["metadata"]
        payload = {k: v for k, v in decoded.value.items() if k != "metadata"}
        seen: Observation[Any] = Observation(
            event=build(known[1], payload),
            aggregate_type=known[0].name,
            aggregate_id=metadata["aggregate_id"],
            event_id=metadata["event_id"],
            recorded_at=metadata["recorded_at"],
        )
        correlation = metadata.get("correlation_id") or metadata["event_id"]
        return Observed(self.manager.correlate(seen), correlation, seen)

    def process(self, observed: Observed, stored: bytes | None) -> Reaction:
        record = (
            InstanceRecord.from_bytes(stored, self._state_type)
            if stored
            else InstanceRecord(self.manager.initial)
        )
        event_id = observed.seen.event_id
        if event_id in record.applied:
            return Reaction(None, [])
        state, issues = self.manager.react(record.state, observed.key, observed.seen)
        applied = [*record.applied, event_id][-self._remembered :]
        commands = [self._encode(observed, index, issue) for index, issue in enumerate(issues)]
        return Reaction(InstanceRecord(state, applied), commands)

    def _encode(self, observed: Observed, index: int, issue: Issue) -> tuple[str, bytes, bytes]:
        seen = observed.seen
        command_id = str(uuid.uuid5(COMMAND_ID_NAMESPACE, f"{seen.event_id}/{index}"))
        metadata = {
            "command_id": command_id,
            "aggregate_id": issue.aggregate_id,
            "correlation_id": observed.correlation_id,
            "causation_id": seen.event_id,
            "expected_version": None,
            # The causing event's time, not the clock: a re-issued command is identical.
            "issued_at": seen.recorded_at,
            "issued_by": self._issuer,
        }
        name = self._types.name_of(issue.command)
        topic = self._commands_topics[self._types.all_commands[name][0].name]
        value = self._serde.encode(topic, name, {"metadata": metadata, **plain(issue.command)})
        return topic, issue.aggregate_id.encode(), value
