"""Deciding one command: decode, deduplicate, check the version, decide, evolve, encode.

No Kafka here: the task hands in the raw record and a reader of its state,
and gets back what to write. Everything a command leads to (events, result,
new state) is returned together, so the loop can write it in one Kafka
transaction.
"""

from __future__ import annotations

import base64
import hashlib
import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any, Literal, NamedTuple

import orjson

from core.domain import Aggregate, check_expected_version
from core.errors import DomainError, InputRejectedError, InvalidCommandError, SerializationError
from processors.messages import MessageTypes
from processors.partitioning import partition_for
from processors.result_encoding import SAMPLES, verified
from processors.structs import build, plain
from processors.table_keys import record_key, result_key, slot_key
from schemas.serde import HEADER, AvroSerde

RESULT_RECORD = "cqrs.envelope.CommandResult"
PARSED_RECORDS_MAX = 200_000  # parsed aggregate records kept; about 1 kB each
EVENT_ID_NAMESPACE = uuid.UUID("6b1f3a52-3c1e-4d8e-9a57-0c3e3c0f2b11")
Clock = Callable[[], datetime]


# The carriers below are NamedTuples, not dataclasses: several are built for every
# command, and a frozen dataclass pays an object.__setattr__ per field.
class Envelope(NamedTuple):
    command_id: str
    aggregate_id: str
    correlation_id: str
    causation_id: str | None
    expected_version: int | None
    issued_at: datetime
    issued_by: str


class IncomingCommand(NamedTuple):
    avro_name: str
    kind: Aggregate[Any]
    command: Any
    envelope: Envelope

    table_key: bytes  # the aggregate's record in the table (``table_keys.record_key``)


class AggregateRecord(NamedTuple):
    """An aggregate's table record: state, version, how many commands it decided, and the
    newest command's result.

    The older results that make repeated commands idempotent are entries of their own
    (``processors.table_keys``), so a record stays as small as the state however
    large the window: rewriting a window of a thousand results with every
    command made a busy aggregate's changelog writes grow to hundreds of kB. The
    newest rides in the record, which is written with every command anyway, so an
    aggregate that decided one command is one changelog entry, not three.
    """

    kind: str
    version: int
    state: Any
    decided: int = 0  # commands decided (accepted or rejected): numbers the window's slots
    last: tuple[str, bytes] | None = None  # (command id, encoded result) of the newest

    def to_bytes(self) -> bytes:
        # Written for every command: orjson is several times faster than json here.
        fields: dict[str, Any] = {
            "kind": self.kind,
            "version": self.version,
            "state": self.state,  # orjson writes dataclasses, enums and tuples as plain()
            "decided": self.decided,
        }
        if self.last is not None:
            fields["last"] = (self.last[0], base64.b64encode(self.last[1]).decode())
        return orjson.dumps(fields)

    @classmethod
    def from_bytes(cls, data: bytes, kinds: dict[str, Aggregate[Any]]) -> AggregateRecord:
        raw = orjson.loads(data)
        kind = kinds[raw["kind"]]
        # Records from before the window had entries of their own carry no count (and a
        # "recent" map, not read): their window starts afresh. Records from before the
        # newest result rode along carry no "last": all their results are entries.
        decided = raw.get("decided", 0)
        found = raw.get("last")
        last = None if found is None else (found[0], base64.b64decode(found[1]))
        state = build(type(kind.initial), raw["state"])
        return cls(raw["kind"], raw["version"], state, decided, last)


TableReader = Callable[[bytes], bytes | None]
TableWrite = tuple[bytes, bytes | None]  # None deletes the entry


class Outcome(NamedTuple):
    events: list[tuple[bytes, bytes]]  # (key, value)
    result_key: bytes
    result: bytes
    status: Literal["accepted", "rejected", "repeated"]
    writes: list[TableWrite]  # table entries, in order; none for a repeated command
    # A command whose own data breaks a rule is bad input: answered, and dead-lettered too.
    invalid: InvalidCommandError | None = None
    version: int | None = None  # the aggregate's, once accepted (for traces)


class CommandProcessor:
    def __init__(
        self,
        serde: AvroSerde,
        types: MessageTypes,
        topics: dict[str, str],
        *,
        clock: Clock | None = None,
        dedup_window: int = 1000,
        command_partitions: int | None = None,
    ) -> None:
        self._serde = serde
        self._types = types
        self._command_partitions = command_partitions
        self._events_topic = topics["events"]
        self._results_topic = topics["command-results"]
        self._clock = clock or (lambda: datetime.now(UTC))
        self._dedup_window = dedup_window
        self._parsed: dict[bytes, tuple[bytes, AggregateRecord]] = {}
        self._partitions: dict[bytes, int] = {}  # murmur2 of each key seen, once
        self._now_ms = 0
        self._result_encoder: Callable[[dict[str, Any]], bytes] | None = None

    # -- input ------------------------------------------------------------------

    def read(self, value: bytes | None) -> IncomingCommand:
        """The command in a record; InputRejectedError when it is not a decidable command."""
        if value is None:
            raise InputRejectedError("EMPTY_RECORD", "the record has no value")
        try:
            decoded = self._serde.decode(value)
        except SerializationError as error:
            raise InputRejectedError(error.code, str(error)) from error
        found = decoded.value.get("metadata")
        metadata: dict[str, Any] = found if isinstance(found, dict) else {}
        command_id = metadata.get("command_id")
        aggregate_id = metadata.get("aggregate_id")
        if decoded.full_name not in self._types.commands:
            raise InputRejectedError(
                "UNKNOWN_COMMAND_TYPE",
                f"{decoded.full_name} is not a command this processor handles",
                command_id or None,
                aggregate_id,
                decoded.full_name,
            )
        if not command_id or not str(command_id).strip():
            raise InputRejectedError(
                "MISSING_COMMAND_ID",
                "metadata.command_id is empty",
                None,
                aggregate_id,
                decoded.full_name,
            )
        if not aggregate_id or not str(aggregate_id).strip():
            raise InputRejectedError(
                "MISSING_AGGREGATE_ID",
                "metadata.aggregate_id is empty",
                command_id,
                None,
                decoded.full_name,
            )
        kind, command_class = self._types.commands[decoded.full_name]
        payload = {k: v for k, v in decoded.value.items() if k != "metadata"}
        try:
            command: Any = build(command_class, payload)
        except (TypeError, ValueError, KeyError) as error:
            raise InputRejectedError(
                "INVALID_COMMAND",
                f"payload does not fit {command_class.__name__}: {error}",
                command_id,
                aggregate_id,
                decoded.full_name,
            ) from error
        envelope = Envelope(
            command_id=command_id,
            aggregate_id=aggregate_id,
            correlation_id=metadata.get("correlation_id") or command_id,
            causation_id=metadata.get("causation_id"),
            expected_version=metadata.get("expected_version"),
            issued_at=metadata["issued_at"],
            issued_by=metadata.get("issued_by", ""),
        )
        table_key = record_key(kind.name, envelope.aggregate_id)
        return IncomingCommand(decoded.full_name, kind, command, envelope, table_key)

    def check_placement(self, incoming: IncomingCommand, key: bytes | None, partition: int) -> None:
        """One writer per aggregate holds only if every producer keys and partitions alike.

        A command keyed by something else than its aggregate id, or placed by a
        partitioner other than Kafka's default murmur2 (librdkafka's default is
        CRC32), would be decided by a second writer with a second copy of the
        state; it is rejected instead.
        """
        aggregate_id = incoming.envelope.aggregate_id
        details = (incoming.envelope.command_id, aggregate_id, incoming.avro_name)
        if key != aggregate_id.encode():
            raise InputRejectedError(
                "KEY_MISMATCH",
                f"the record key must be the aggregate id {aggregate_id!r}, got {key!r}",
                *details,
            )
        if self._command_partitions is None:
            return
        expected = self._partitions.get(key)
        if expected is None:
            if len(self._partitions) >= PARSED_RECORDS_MAX:
                self._partitions.clear()
            expected = self._partitions[key] = partition_for(key, self._command_partitions)
        if partition != expected:
            raise InputRejectedError(
                "WRONG_PARTITION",
                f"aggregate {aggregate_id!r} belongs on partition {expected}, not {partition}; "
                "produce with Kafka's murmur2 partitioner (confluent-kafka: "
                "partitioner=murmur2_random)",
                *details,
            )

    def rejection_for(self, error: InputRejectedError) -> tuple[bytes, bytes] | None:
        """The command result answering a rejected input, when it carried a command id."""
        if not error.command_id:
            return None
        self._tick()
        result = self._result(
            error.command_id,
            command_type=error.command_type,
            aggregate_id=error.aggregate_id,
            version=None,
            event_ids=[],
            rejection={"code": error.code, "reason": error.reason, "current_version": None},
        )
        return error.command_id.encode(), self._encode_result(result)

    # -- decision ---------------------------------------------------------------

    def process(self, incoming: IncomingCommand, table: TableReader) -> Outcome:
        """Everything one command leads to; a repeat gets its original result and no events."""
        self._tick()
        kind, envelope = incoming.kind, incoming.envelope
        aggregate_key = incoming.table_key
        stored = table(aggregate_key)
        record = self._record_of(aggregate_key, stored) if stored else None
        original = self._original(record, aggregate_key, envelope.command_id, table)
        if original is not None:
            return Outcome([], envelope.command_id.encode(), original, "repeated", [])
        record = record or AggregateRecord(kind.name, 0, kind.initial)
        try:
            check_expected_version(envelope.expected_version, record.version)
            domain_events = kind.decide(record.state, incoming.command)
        except DomainError as error:
            rejection = {
                "code": error.code,
                "reason": error.reason,
                "current_version": record.version,
            }
            outcome = self._conclude(incoming, record, [], rejection, table)
            if isinstance(error, InvalidCommandError):
                return outcome._replace(invalid=error)
            return outcome
        state, events = record.state, []
        for index, domain_event in enumerate(domain_events):
            state = kind.evolve(state, domain_event)
            sequence = record.version + index + 1
            event_id = event_id_for(envelope.command_id, index)
            value = {
                "metadata": self._event_metadata(incoming, event_id, sequence),
                **plain(domain_event),
            }
            events.append((event_id, self._encode_event(incoming, domain_event, value)))
        updated = record._replace(version=record.version + len(events), state=state)
        return self._conclude(incoming, updated, events, None, table)

    @staticmethod
    def _original(
        record: AggregateRecord | None, aggregate_key: bytes, command_id: str, table: TableReader
    ) -> bytes | None:
        """The result this command already got, while the aggregate's window remembers it."""
        if record is not None and record.last is not None and record.last[0] == command_id:
            return record.last[1]
        return table(result_key(aggregate_key, command_id))

    def _tick(self) -> None:
        """Read the clock once per command: its events and its result share the instant
        (as epoch milliseconds, which the Avro timestamps carry without conversion)."""
        self._now_ms = int(self._clock().timestamp() * 1000)

    def _record_of(self, aggregate_key: bytes, stored: bytes) -> AggregateRecord:
        """The stored record, parsed once: the table hands back the very bytes object this
        processor wrote, so a record parsed (or written) before is reused while it is the
        one stored. An aborted write leaves other bytes in the table, and they are parsed."""
        parsed = self._parsed.get(aggregate_key)
        if parsed is not None and parsed[0] is stored:
            return parsed[1]
        record = AggregateRecord.from_bytes(stored, self._types.kinds)
        self._remember(aggregate_key, stored, record)
        return record

    def _remember(self, aggregate_key: bytes, stored: bytes, record: AggregateRecord) -> None:
        if len(self._parsed) >= PARSED_RECORDS_MAX:
            self._parsed.clear()
        self._parsed[aggregate_key] = (stored, record)

    def _conclude(
        self,
        incoming: IncomingCommand,
        record: AggregateRecord,
        events: list[tuple[str, bytes]],
        rejection: dict[str, Any] | None,
        table: TableReader,
    ) -> Outcome:
        envelope = incoming.envelope
        result = self._encode_result(
            self._result(
                envelope.command_id,
                command_type=incoming.avro_name,
                aggregate_id=envelope.aggregate_id,
                version=None if rejection else record.version,
                event_ids=[event_id for event_id, _ in events],
                rejection=rejection,
            )
        )
        key = envelope.aggregate_id.encode()
        aggregate_key = incoming.table_key
        stored, writes = window_writes(
            aggregate_key,
            record,
            command_id=envelope.command_id,
            result=result,
            table=table,
            window=self._dedup_window,
        )
        self._remember(aggregate_key, writes[-1][1] or b"", stored)
        return Outcome(
            events=[(key, encoded) for _, encoded in events],
            result_key=envelope.command_id.encode(),
            result=result,
            status="rejected" if rejection else "accepted",
            writes=writes,
            version=None if rejection else record.version,
        )

    def _encode_event(self, incoming: IncomingCommand, domain_event: Any, value: Any) -> bytes:
        name = self._types.name_of(domain_event)
        try:
            return self._serde.encode(self._events_topic, name, value)
        except SerializationError as error:
            # The domain accepted what its contracts cannot carry (a defect of its limits):
            # answered and dead-lettered, so the partition goes on and nothing is emitted.
            envelope = incoming.envelope
            raise InputRejectedError(
                "EVENT_NOT_ENCODABLE",
                f"{name} does not fit its schema: {error}",
                envelope.command_id,
                envelope.aggregate_id,
                incoming.avro_name,
            ) from error

    def _event_metadata(
        self, incoming: IncomingCommand, event_id: str, sequence: int
    ) -> dict[str, Any]:
        envelope = incoming.envelope
        return {
            "event_id": event_id,
            "aggregate_type": incoming.kind.name,
            "aggregate_id": envelope.aggregate_id,
            "sequence": sequence,
            "command_id": envelope.command_id,
            "correlation_id": envelope.correlation_id,
            "causation_id": envelope.command_id,
            "occurred_at": envelope.issued_at,
            "recorded_at": self._now_ms,
        }

    def _result(
        self,
        command_id: str,
        *,
        command_type: str,
        aggregate_id: str | None,
        version: int | None,
        event_ids: list[str],
        rejection: dict[str, Any] | None,
    ) -> dict[str, Any]:
        return {
            "command_id": command_id,
            "command_type": command_type,
            "aggregate_id": aggregate_id,
            "status": "REJECTED" if rejection else "ACCEPTED",
            "version": version,
            "event_ids": event_ids,
            "rejection": rejection,
            "processed_at": self._now_ms,
        }

    def _encode_result(self, result: dict[str, Any]) -> bytes:
        encoder = self._result_encoder
        if encoder is None:
            encoder = self._result_encoder = self._result_encoding()
        return encoder(result)

    def _result_encoding(self) -> Callable[[dict[str, Any]], bytes]:
        """Framing from the serde (registering the schema on first use), the body by hand
        when it matches fastavro's for the loaded schema (``processors.result_encoding``)."""
        serde, topic = self._serde, self._results_topic

        def generic(value: Mapping[str, Any]) -> bytes:
            return serde.encode(topic, RESULT_RECORD, value)[HEADER.size :]

        header = serde.encode(topic, RESULT_RECORD, SAMPLES[0])[: HEADER.size]
        body = verified(generic)
        return lambda result: header + body(result)


def window_writes(
    aggregate_key: bytes,
    record: AggregateRecord,
    *,
    command_id: str,
    result: bytes,
    table: TableReader,
    window: int,
) -> tuple[AggregateRecord, list[TableWrite]]:
    """The record a decided command leaves and its table writes, the record last.

    The new result rides in the record; the one it displaces (the previous command's)
    moves to slot ``n % (window - 1)`` of the aggregate's window, ``n`` being that
    command's number, as an entry of its own, and the result that slot held is
    deleted. So the window remembers exactly ``window`` results, newest first, with
    a constant number of small writes per command however large the window. (A record
    written before results rode along has every result in entries, numbered
    ``% window``; they leave the window as new results displace them, but for the one
    in slot ``window - 1``, remembered until it is repeated or the aggregate is.)"""
    writes: list[TableWrite] = []
    if record.last is not None and window > 1:
        displaced_id, displaced = record.last
        slot = slot_key(aggregate_key, (record.decided - 1) % (window - 1))
        evicted = table(slot)
        if evicted is not None:
            writes.append((result_key(aggregate_key, evicted.decode()), None))
        writes += [
            (result_key(aggregate_key, displaced_id), displaced),
            (slot, displaced_id.encode()),
        ]
    stored = record._replace(decided=record.decided + 1, last=(command_id, result))
    writes.append((aggregate_key, stored.to_bytes()))
    return stored, writes


def event_id_for(command_id: str, index: int) -> str:
    """``uuid5(EVENT_ID_NAMESPACE, "<command id>/<index>")`` as text, without building a UUID
    object (this runs for every event): SHA-1 of namespace and name, version 5, RFC 4122."""
    digest = bytearray(hashlib.sha1(_NAMESPACE_BYTES + f"{command_id}/{index}".encode()).digest())
    digest[6] = (digest[6] & 0x0F) | 0x50
    digest[8] = (digest[8] & 0x3F) | 0x80
    text = digest[:16].hex()
    return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"


_NAMESPACE_BYTES = EVENT_ID_NAMESPACE.bytes


def apply_writes(table: dict[bytes, bytes], writes: list[TableWrite]) -> None:
    """``writes`` applied to a table held in a dict, as the agent applies them to its store."""
    for key, value in writes:
        if value is None:
            table.pop(key, None)
        else:
            table[key] = value
