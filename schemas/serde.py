"""Avro in the Confluent wire format: magic byte 0, 4-byte big-endian schema id, Avro body.

Subjects follow the TopicRecordNameStrategy (``<topic>-<record full name>``),
because several record types share a topic. Encoding uses the local schema
(registered once per subject, then cached). Decoding looks the writer schema up
by id once, then reads with the current local schema through Avro schema
resolution, applying upcasters for old revisions. Per writer id, everything the
decode needs is prepared once, so the hot path is a dict look-up and fastavro.
"""

from __future__ import annotations

import io
import json
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

import fastavro
from fastavro.types import Schema as ParsedSchema

from core.errors import (
    AvroDecodeError,
    AvroEncodeError,
    NotConfluentFramedError,
    SerializationError,
    UnknownRecordTypeError,
    UpcastError,
)
from core.upcasting import Record, Upcaster, Upcasters
from schemas.catalog import SchemaCatalog, qualified_name, revision_of
from schemas.registry_client import RegistryClient

MAGIC = b"\x00"
HEADER = struct.Struct(">bI")


class Decoded(NamedTuple):
    """A decoded record; a tuple because sinks build one per event (a frozen dataclass costs
    several times more to create)."""

    full_name: str
    value: Record
    schema_id: int
    writer_revision: int


@dataclass(frozen=True)
class _ReadPlan:
    full_name: str
    writer: ParsedSchema
    reader: ParsedSchema | None  # None: writer and reader are the same schema
    writer_revision: int
    upcasters: tuple[Upcaster, ...]
    current: ParsedSchema


def subject_for(topic: str, full_name: str) -> str:
    """TopicRecordNameStrategy."""
    return f"{topic}-{full_name}"


def frame(schema_id: int, body: bytes) -> bytes:
    return HEADER.pack(0, schema_id) + body


def unframe(data: bytes) -> tuple[int, bytes]:
    """Split a Confluent-framed message into schema id and Avro body."""
    if len(data) < HEADER.size or data[:1] != MAGIC:
        first = data[:1].hex() or "nothing"
        raise NotConfluentFramedError(
            f"not Confluent-framed Avro: expected magic byte 00 and a 4-byte schema id, got "
            f"{len(data)} bytes starting with {first}"
        )
    _, schema_id = HEADER.unpack_from(data)
    return schema_id, data[HEADER.size :]


class AvroSerde:
    """Encode and decode the catalog's records; thread-safe after warm-up."""

    def __init__(
        self,
        registry: RegistryClient,
        catalog: SchemaCatalog,
        upcasters: Upcasters | None = None,
        *,
        auto_register: bool = True,
    ) -> None:
        self._registry = registry
        self._catalog = catalog
        self._upcasters = upcasters or Upcasters()
        self._auto_register = auto_register
        self._headers: dict[tuple[str, str], bytes] = {}
        self._plans: dict[int, _ReadPlan] = {}

    def schema_id(self, topic: str, full_name: str) -> int:
        """The id the local schema has under the topic's subject (registered if allowed)."""
        subject = subject_for(topic, full_name)
        text = self._catalog.canonical_text(full_name)
        if self._auto_register:
            return self._registry.register(subject, text)
        return self._registry.lookup(subject, text).id

    def encode(self, topic: str, full_name: str, value: Mapping[str, Any]) -> bytes:
        header = self._headers.get((topic, full_name))
        if header is None:
            header = HEADER.pack(0, self.schema_id(topic, full_name))
            self._headers[(topic, full_name)] = header
        buffer = io.BytesIO()
        buffer.write(header)
        try:
            fastavro.schemaless_writer(buffer, self._catalog.parsed(full_name), value)
        except (ValueError, TypeError, KeyError, AttributeError, OverflowError) as error:
            raise AvroEncodeError(f"{full_name} value does not fit its schema: {error}") from error
        return buffer.getvalue()

    def record_name(self, data: bytes) -> str:
        """The full name of the record in ``data``, from its header alone (the body unread).

        Lets a reader skip records it has no use for without paying for their decoding;
        SerializationError when the bytes are not framed or the schema id is unknown.
        """
        return self._plan_of(data)[1].full_name

    def decode(self, data: bytes) -> Decoded:
        """The record in its current shape; SerializationError (poison) when impossible."""
        schema_id, plan = self._plan_of(data)
        buffer = io.BytesIO(data)  # shares the bytes; seeking past the header copies nothing
        buffer.seek(HEADER.size)
        try:
            value = fastavro.schemaless_reader(buffer, plan.writer, plan.reader)
        except Exception as error:  # fastavro raises EOFError, ValueError, IndexError...
            raise AvroDecodeError(
                f"Avro body of schema id {schema_id} ({plan.full_name}) is corrupt: {error!r}"
            ) from error
        if not isinstance(value, dict):
            raise AvroDecodeError(f"schema id {schema_id} is not a record schema")
        if plan.upcasters:
            value = self._upcast(plan, value)
        return Decoded(plan.full_name, value, schema_id, plan.writer_revision)

    def _plan_of(self, data: bytes) -> tuple[int, _ReadPlan]:
        if len(data) < HEADER.size or data[0] != 0:
            unframe(data)  # raises the descriptive error
        schema_id = int.from_bytes(data[1:5], "big")
        return schema_id, self._plans.get(schema_id) or self._plan(schema_id)

    def _plan(self, schema_id: int) -> _ReadPlan:
        writer_json = json.loads(self._registry.schema_by_id(schema_id))
        if not isinstance(writer_json, dict) or writer_json.get("type") != "record":
            raise UnknownRecordTypeError(f"schema id {schema_id} is not an Avro record schema")
        full_name = qualified_name(str(writer_json["name"]), writer_json.get("namespace"))
        if full_name not in self._catalog:
            raise UnknownRecordTypeError(
                f"schema id {schema_id} writes {full_name}, which this build has no schema for"
            )
        writer = fastavro.parse_schema(writer_json)
        current = self._catalog.parsed(full_name)
        writer_revision = revision_of(writer_json)
        steps = self._upcasters.steps(full_name, writer_revision, self._catalog.revision(full_name))
        same = json.dumps(writer_json, sort_keys=True) == json.dumps(
            self._catalog.self_contained(full_name), sort_keys=True
        )
        reader = None if same or steps else current
        plan = _ReadPlan(full_name, writer, reader, writer_revision, tuple(steps), current)
        self._plans[schema_id] = plan
        return plan

    def _upcast(self, plan: _ReadPlan, value: Record) -> Record:
        try:
            for step in plan.upcasters:
                value = step(value)
            # Conform to the current schema: defaults filled, leftovers dropped, shape checked.
            buffer = io.BytesIO()
            fastavro.schemaless_writer(buffer, plan.current, value)
            buffer.seek(0)
            conformed = fastavro.schemaless_reader(buffer, plan.current, None)
        except SerializationError:
            raise
        except Exception as error:
            raise UpcastError(
                f"upcasting {plan.full_name} from revision {plan.writer_revision} failed: {error!r}"
            ) from error
        assert isinstance(conformed, dict)
        return conformed
