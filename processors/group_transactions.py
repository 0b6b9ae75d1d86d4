"""One transactional producer per worker, fenced by the consumer group (Kafka's KIP-447).

Kafka's newer exactly-once protocol lets one producer carry the output of every
partition a worker owns: the offsets it commits in a transaction name the
consumer group's generation and member id (``TxnOffsetCommit`` v3), so the
group coordinator refuses them from a worker that has lost its partitions, and
the worker taking partitions over asks for committed offsets with
``require_stable`` (``OffsetFetch`` v7), which waits out a previous owner's
transaction that still holds offsets. aiokafka 0.14 implements neither request
version; this module adds them to its producer and nothing else:

- ``GroupTransactionalProducer.send_offsets_to_transaction`` takes the group's
  metadata (generation, member id) instead of a bare group id;
- ``GroupTransactionalProducer.wait_for_stable_offsets`` returns once no open
  transaction holds offsets of the given partitions.

A refusal by generation or member id is ``GroupFencedError``: the worker must
stop, because another one owns its partitions now.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import aiokafka.errors as kafka_errors
from aiokafka import AIOKafkaProducer
from aiokafka.client import CoordinationType
from aiokafka.producer.sender import Sender, TxnOffsetCommitHandler
from aiokafka.protocol.api import Request, RequestStruct, Response
from aiokafka.protocol.types import (
    Boolean,
    CompactArray,
    CompactString,
    Int16,
    Int32,
    Int64,
    Schema,
    TaggedFields,
)
from aiokafka.structs import TopicPartition

log = logging.getLogger("cqrs.transactions")

UNSTABLE_OFFSET_COMMIT = 88  # pending transactional offsets (require_stable)
_FENCING_ERRORS = frozenset(
    {
        kafka_errors.IllegalGenerationError.errno,
        kafka_errors.UnknownMemberIdError.errno,
        82,  # FENCED_INSTANCE_ID
    }
)
_RETRIABLE_COORDINATOR_ERRORS = frozenset(
    {
        kafka_errors.CoordinatorNotAvailableError.errno,
        kafka_errors.NotCoordinatorError.errno,
        kafka_errors.CoordinatorLoadInProgressError.errno,
        kafka_errors.RequestTimedOutError.errno,
    }
)


class GroupFencedError(kafka_errors.KafkaError):  # type: ignore[misc]
    """The group coordinator refused this worker's offsets: its partitions have moved."""


@dataclass(frozen=True)
class GroupMetadata:
    """The consumer group membership a transaction's offsets are committed under."""

    group_id: str
    generation_id: int
    member_id: str


_STRING = CompactString("utf-8")  # nullable too: None encodes as null


def _per_topic(*partition_fields: tuple[str, Any]) -> CompactArray:
    """The ``[topic [partition ...]]`` nesting of the flexible group requests and responses."""
    return CompactArray(
        ("name", _STRING),
        ("partitions", CompactArray(*partition_fields, ("tags", TaggedFields))),
        ("tags", TaggedFields),
    )


# -- TxnOffsetCommit v3 (first flexible version; adds generation, member and instance id) --
class _TxnOffsetCommitResponseV3(Response):  # type: ignore[misc]
    API_KEY = 28
    API_VERSION = 3
    SCHEMA = Schema(
        ("throttle_time_ms", Int32),
        ("topics", _per_topic(("partition_index", Int32), ("error_code", Int16))),
        ("tags", TaggedFields),
    )


class _TxnOffsetCommitRequestV3(RequestStruct):  # type: ignore[misc]
    FLEXIBLE_VERSION = True
    API_KEY = 28
    API_VERSION = 3
    RESPONSE_TYPE = _TxnOffsetCommitResponseV3
    SCHEMA = Schema(
        ("transactional_id", _STRING),
        ("group_id", _STRING),
        ("producer_id", Int64),
        ("producer_epoch", Int16),
        ("generation_id", Int32),
        ("member_id", _STRING),
        ("group_instance_id", _STRING),
        (
            "topics",
            _per_topic(
                ("partition_index", Int32),
                ("committed_offset", Int64),
                ("committed_leader_epoch", Int32),
                ("committed_metadata", _STRING),
            ),
        ),
        ("tags", TaggedFields),
    )


class _GroupTxnOffsetCommitRequest(Request[_TxnOffsetCommitRequestV3]):  # type: ignore[misc]
    API_KEY = 28

    def __init__(
        self, transactional_id: str, producer: tuple[int, int], group: GroupMetadata, topics: Any
    ) -> None:
        self._fields: tuple[Any, ...] = (
            transactional_id,
            group.group_id,
            producer[0],
            producer[1],
            group.generation_id,
            group.member_id,
            None,
            topics,
            {},
        )

    def build(self, request_struct_class: type[_TxnOffsetCommitRequestV3]) -> Any:
        return request_struct_class(*self._fields)


# -- OffsetFetch v7 (adds require_stable) --------------------------------------------------
class _OffsetFetchResponseV7(Response):  # type: ignore[misc]
    API_KEY = 9
    API_VERSION = 7
    SCHEMA = Schema(
        ("throttle_time_ms", Int32),
        (
            "topics",
            _per_topic(
                ("partition_index", Int32),
                ("committed_offset", Int64),
                ("committed_leader_epoch", Int32),
                ("metadata", _STRING),
                ("error_code", Int16),
            ),
        ),
        ("error_code", Int16),
        ("tags", TaggedFields),
    )


class _OffsetFetchRequestV7(RequestStruct):  # type: ignore[misc]
    FLEXIBLE_VERSION = True
    API_KEY = 9
    API_VERSION = 7
    RESPONSE_TYPE = _OffsetFetchResponseV7
    SCHEMA = Schema(
        ("group_id", _STRING),
        (
            "topics",
            CompactArray(
                ("name", _STRING),
                ("partition_indexes", CompactArray(Int32)),
                ("tags", TaggedFields),
            ),
        ),
        ("require_stable", Boolean),
        ("tags", TaggedFields),
    )


class _StableOffsetFetchRequest(Request[_OffsetFetchRequestV7]):  # type: ignore[misc]
    API_KEY = 9

    def __init__(self, group_id: str, partitions: Iterable[TopicPartition]) -> None:
        by_topic = _by_topic((tp, tp.partition) for tp in partitions)
        self._fields: tuple[Any, ...] = (group_id, by_topic, True, {})

    def build(self, request_struct_class: type[_OffsetFetchRequestV7]) -> Any:
        return request_struct_class(*self._fields)


def _by_topic(entries: Iterable[tuple[TopicPartition, Any]]) -> list[tuple[str, list[Any], Any]]:
    """``(topic, [entry per partition], tags)`` in partition order: the requests' nesting."""
    grouped: dict[str, list[Any]] = collections.defaultdict(list)
    for partition, entry in sorted(entries, key=lambda item: item[0]):
        grouped[partition.topic].append(entry)
    return [(topic, partitioned, {}) for topic, partitioned in grouped.items()]


def _unstable_partitions(response: Any, asked: set[TopicPartition]) -> set[TopicPartition]:
    """Partitions whose offsets a still-open transaction holds; raise on other errors."""
    _raise_for(response.error_code, "OffsetFetch")
    unstable: set[TopicPartition] = set()
    for name, partitions, _ in response.topics:
        for partition_index, _offset, _epoch, _metadata, error_code, _ in partitions:
            if error_code == UNSTABLE_OFFSET_COMMIT:
                unstable.add(TopicPartition(name, partition_index))
            else:
                _raise_for(error_code, f"OffsetFetch of {name}[{partition_index}]")
    if response.error_code == UNSTABLE_OFFSET_COMMIT and not unstable:
        return asked  # reported for the group only
    return unstable


def _raise_for(error_code: int, request: str) -> None:
    if error_code in {0, UNSTABLE_OFFSET_COMMIT}:
        return
    error = kafka_errors.for_code(error_code)
    if error_code in _FENCING_ERRORS:
        raise GroupFencedError(f"{request}: {error.__name__}")
    raise error(request)


class _GroupTxnOffsetCommitHandler(TxnOffsetCommitHandler):  # type: ignore[misc]
    """aiokafka's handler, sending v3 with the group's generation and member id."""

    def __init__(self, sender: Sender, offsets: Any, group: GroupMetadata) -> None:
        super().__init__(sender, offsets, group.group_id)
        self._group = group

    def create_request(self) -> _GroupTxnOffsetCommitRequest:
        manager = self._sender._txn_manager
        return _GroupTxnOffsetCommitRequest(
            manager.transactional_id,
            (manager.producer_id, manager.producer_epoch),
            self._group,
            _by_topic(
                (tp, (tp.partition, offset.offset, -1, offset.metadata, {}))
                for tp, offset in self._offsets.items()
            ),
        )

    def handle_response(self, resp: Any) -> float | None:
        # The v3 response nests tags; reshaped to what aiokafka's handling reads.
        for _name, partitions, _ in resp.topics:
            for _partition, error_code, _ in partitions:
                if error_code in _FENCING_ERRORS:
                    error = kafka_errors.for_code(error_code).__name__
                    self._sender._txn_manager.error_transaction(
                        GroupFencedError(f"offsets refused by the group coordinator: {error}")
                    )
                    return None
        reshaped = _Errors([(n, [(p, e) for p, e, _ in ps]) for n, ps, _ in resp.topics])
        result: float | None = super().handle_response(reshaped)
        return result


@dataclass(frozen=True)
class _Errors:
    errors: list[tuple[str, list[tuple[int, int]]]]


class _GroupSender(Sender):  # type: ignore[misc]
    group: GroupMetadata | None = None

    async def _do_txn_offset_commit(self, offsets: Any, group_id: str) -> None:
        if not offsets:
            return
        group = self.group
        if group is None or group.group_id != group_id:
            raise RuntimeError(f"no group membership recorded for {group_id!r}")
        node_id = await self._find_coordinator(CoordinationType.GROUP, group_id)
        await _GroupTxnOffsetCommitHandler(self, offsets, group).do(node_id)


class GroupTransactionalProducer(AIOKafkaProducer):  # type: ignore[misc]
    """An aiokafka transactional producer whose offsets are fenced by group generation."""

    def __init__(self, **settings: Any) -> None:
        super().__init__(**settings)
        old = self._sender
        self._sender: _GroupSender = _GroupSender(
            self.client,
            acks=old._acks,
            txn_manager=old._txn_manager,
            message_accumulator=old._message_accumulator,
            retry_backoff_ms=int(old._retry_backoff * 1000),
            request_timeout_ms=old._request_timeout_ms,
        )

    async def send_offsets_to_transaction(
        self, offsets: Mapping[TopicPartition, int], group: GroupMetadata
    ) -> None:
        self._sender.group = group
        await super().send_offsets_to_transaction(offsets, group.group_id)

    async def wait_for_stable_offsets(
        self, group_id: str, partitions: Iterable[TopicPartition], timeout_s: float
    ) -> None:
        """Return once no open transaction holds committed offsets of ``partitions``.

        A previous owner killed between sending its offsets and ending its
        transaction leaves them pending until the transaction times out (or its
        transactional id is started again); reading the committed offsets before
        then would process its events a second time.
        """
        waiting = set(partitions)
        started = time.monotonic()
        reported = started
        while waiting:
            sender = self._sender
            node_id = await sender._find_coordinator(CoordinationType.GROUP, group_id)
            try:
                response = await self.client.send(
                    node_id, _StableOffsetFetchRequest(group_id, waiting)
                )
                waiting = _unstable_partitions(response, waiting)
            except kafka_errors.KafkaError as error:
                if getattr(error, "errno", None) not in _RETRIABLE_COORDINATOR_ERRORS:
                    raise
                sender._coordinator_dead(CoordinationType.GROUP)
            if not waiting:
                return
            now = time.monotonic()
            if now - started > timeout_s:
                raise TimeoutError(
                    f"offsets of {sorted(waiting)} stayed held by an open transaction for "
                    f"{timeout_s:.0f} s; check the transaction coordinator's log"
                )
            if now - reported >= 5:
                reported = now
                log.info(
                    "waiting for a previous owner's transaction to end before reading the "
                    "committed offsets of %s (%.0f s so far)",
                    ", ".join(f"{tp.topic}[{tp.partition}]" for tp in sorted(waiting)),
                    now - started,
                )
            await asyncio.sleep(0.1)
