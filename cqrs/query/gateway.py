"""The command gateway: a command as JSON over HTTP, produced through the same client.

The body is ``{"aggregate_id": ..., "expected_version": optional, "payload":
{...}}``; the payload's JSON values are read by the command's Avro record
(``schemas.json_values``). An ``Idempotency-Key`` becomes the command id, so a
retried request is answered with the original result (the command processor
remembers it). An accepted command's answer carries a consistency token.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from confluent_kafka import IsolationLevel, KafkaException
from confluent_kafka.admin import AdminClient
from confluent_kafka.admin._listoffsets import OffsetSpec

from core import tracing
from core.domain import load_domain
from core.errors import JsonValueError, SerializationError, UnknownCommandError
from core.settings import Settings
from cqrs.client import CommandClient, CommandResult
from cqrs.query.consistency import ConsistencyToken
from cqrs.query.problems import Problem, bad_parameter, not_found
from cqrs.tracing import GatewayTracing
from processors.partitioning import partition_for
from schemas.catalog import SchemaCatalog
from schemas.json_values import from_json
from schemas.partition_offsets import partition_offsets

# Rejections of the command's form (422) rather than of the aggregate's state (409).
MALFORMED = frozenset(
    {
        "EMPTY_RECORD",
        "UNKNOWN_COMMAND_TYPE",
        "MISSING_COMMAND_ID",
        "MISSING_AGGREGATE_ID",
        "INVALID_COMMAND",
        "KEY_MISMATCH",
        "WRONG_PARTITION",
    }
)
MAX_ID = 256
RECENT_RESULTS = 100_000  # results kept for GET /command-results/{id}


@dataclass(frozen=True)
class CommandRequest:
    command: str
    aggregate_id: str
    expected_version: int | None
    payload: dict[str, Any]
    command_id: str | None


def parse_request(command: str, body: object, idempotency_key: str | None) -> CommandRequest:
    """The gateway's body, checked for its shape (the payload's fields are checked later)."""
    if not isinstance(body, dict):
        raise bad_parameter("body", "expected a JSON object with aggregate_id and payload")
    unknown = sorted(set(body) - {"aggregate_id", "expected_version", "payload"})
    if unknown:
        raise bad_parameter(unknown[0], "not a member of a command request")
    aggregate_id = body.get("aggregate_id")
    if not isinstance(aggregate_id, str) or not 0 < len(aggregate_id) <= MAX_ID:
        raise bad_parameter("aggregate_id", f"expected a string of 1 to {MAX_ID} characters")
    expected = body.get("expected_version")
    if expected is not None and (
        not isinstance(expected, int) or isinstance(expected, bool) or expected < 0
    ):
        raise bad_parameter("expected_version", "expected a whole number ≥ 0 or null")
    payload = body.get("payload", {})
    if not isinstance(payload, dict):
        raise bad_parameter("payload", "expected a JSON object of the command's fields")
    if "metadata" in payload:
        raise bad_parameter("payload.metadata", "set by the gateway, not by the caller")
    if idempotency_key is not None and not 0 < len(idempotency_key) <= MAX_ID:
        raise bad_parameter("Idempotency-Key", f"expected 1 to {MAX_ID} characters")
    return CommandRequest(command, aggregate_id, expected, payload, idempotency_key)


def result_document(result: CommandResult, token: str | None) -> dict[str, Any]:
    document: dict[str, Any] = {
        "command_id": result.command_id,
        "status": result.status,
        "aggregate_id": result.aggregate_id,
        "version": result.version,
        "event_ids": result.event_ids,
    }
    if token is not None:
        document["consistency_token"] = token
    return document


def rejection_problem(result: CommandResult) -> Problem:
    code = result.rejection_code or "REJECTED"
    status = 422 if code in MALFORMED else 409
    return Problem(
        status,
        "command-rejected",
        "Command rejected",
        result.rejection_reason or code,
        code=code,
        command_id=result.command_id,
        aggregate_id=result.aggregate_id,
        current_version=result.current_version,
    )


class Gateway:
    def __init__(self, settings: Settings, admin: AdminClient, catalog: SchemaCatalog) -> None:
        self._settings = settings
        self._admin = admin
        self._catalog = catalog
        self._client = CommandClient(settings, catalog, remember=RECENT_RESULTS)
        self._prefix = settings.kafka.topic_prefix
        domain = load_domain(settings.domain)
        # The events topic of each command's aggregate type (before the topic prefix).
        self._events_of = {
            name: domain.writer_of(aggregate.name).events
            for name, (aggregate, _) in domain.command_types.items()
        }
        self._first_events = self._prefix + domain.event_topics[0]
        self._partitions: int | None = None
        tracer = tracing.tracer()
        self._tracing = None if tracer is None else GatewayTracing(tracer)

    def close(self) -> None:
        self._client.close()

    @property
    def commands(self) -> list[str]:
        return self._client.command_names()

    def recent_result(self, command_id: str) -> CommandResult | None:
        return self._client.recent_result(command_id)

    def record_of(self, command: str) -> str:
        try:
            return self._client.command_record(command)
        except UnknownCommandError as error:
            raise not_found("command", str(error)) from None

    def payload_of(self, request: CommandRequest) -> dict[str, Any]:
        """The payload as the Avro record wants it (timestamps, decimals, bytes read from JSON)."""
        schema = self._catalog.parsed(self.record_of(request.command))
        try:
            return dict(from_json(schema, request.payload, omit=frozenset({"metadata"})))
        except JsonValueError as error:
            raise bad_parameter(_payload_path(error.path), error.reason) from None

    async def send(
        self,
        request: CommandRequest,
        *,
        wait: bool,
        timeout_s: float,
        http_headers: Mapping[str, str] | None = None,
    ) -> CommandResult | str:
        """The command's result, or (``wait`` false) its command id once it is durable;
        traced as a child of the caller's ``traceparent`` in ``http_headers``, if any."""
        if self._tracing is None:
            return await self._send(request, wait=wait, timeout_s=timeout_s)
        with self._tracing.request(request.command, http_headers or {}):
            return await self._send(request, wait=wait, timeout_s=timeout_s)

    async def _send(
        self, request: CommandRequest, *, wait: bool, timeout_s: float
    ) -> CommandResult | str:
        payload = self.payload_of(request)
        options: dict[str, Any] = {
            "expected_version": request.expected_version,
            "issued_by": "cqrs-gateway",
        }
        try:
            if not wait:
                return await asyncio.to_thread(
                    self._client.send,
                    request.command,
                    request.aggregate_id,
                    payload,
                    command_id=request.command_id,
                    **options,
                )
            future = self._client.submit(
                request.command,
                request.aggregate_id,
                payload,
                command_id=request.command_id,
                **options,
            )
        except SerializationError as error:
            raise bad_parameter("payload", str(error)) from None
        try:
            return await asyncio.wait_for(asyncio.wrap_future(future), timeout_s)
        except TimeoutError:
            future.cancel()
            raise Problem(
                504,
                "command-timeout",
                "No result in time",
                f"no result for the command within {timeout_s:g}s; it may still be decided: "
                "repeat the request with the same Idempotency-Key to get its result",
            ) from None

    async def token(self, result: CommandResult) -> str | None:
        """The consistency token of an accepted command (None if Kafka does not say in time)."""
        if not result.accepted or result.aggregate_id is None or result.version is None:
            return None
        topic = self._events_of.get(result.command_type or "")
        if topic is None:
            return None
        events = self._prefix + topic
        try:
            partition = await self.partition_of(result.aggregate_id)
            offsets = await asyncio.to_thread(
                partition_offsets,
                self._admin,
                [(events, partition)],
                OffsetSpec.latest(),  # type: ignore[no-untyped-call]
                IsolationLevel.READ_COMMITTED,
                5.0,
            )
        except KafkaException:
            return None
        stable = offsets[(events, partition)]
        return ConsistencyToken(
            result.aggregate_id, result.version, partition, stable - 1, topic
        ).encode()

    async def partition_of(self, aggregate_id: str) -> int:
        """An aggregate's partition of the event topics (all have the same count)."""
        if self._partitions is None:
            events = self._first_events
            metadata = await asyncio.to_thread(self._admin.list_topics, events, 10)
            self._partitions = len(metadata.topics[events].partitions)
        return partition_for(aggregate_id.encode(), self._partitions)


def _payload_path(path: str) -> str:
    return f"payload.{path}" if path else "payload"
