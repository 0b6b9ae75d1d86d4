"""Consistency tokens: "read at least what my command wrote", for any projection.

A command's events are committed in one transaction on the aggregate's
partition of ``events``, with the result. When the gateway has the result, it
takes that partition's last stable offset ``L``: every record before it is
decided, and ``L - 1`` is the commit marker of the last committed transaction
(one transactional writer per partition), at or after the command's events. The
token carries the aggregate, its version and ``(topic, partition, L - 1)``: the
topic is the events topic of the aggregate's type (``events`` for a domain with one
shared pair).

A projection has read the command's events once its sink's consumer group
committed an offset of at least ``L - 1`` on that partition: the sinks commit
only after their store holds the batch, and a caught-up sink's committed offset
is the marker's (``L - 1``), which is why the token does not demand ``L``. This
works alike for PostgreSQL and search projections, whatever their key.

The ``PositionWatcher`` polls the committed offsets of the groups somebody
waits for (one admin request per group and round, every 100 ms), never while
nobody waits.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import json
import logging
from dataclasses import dataclass
from typing import Any

from confluent_kafka import ConsumerGroupTopicPartitions, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient

from core.errors import TokenError
from sinks.base import Partition
from sinks.runner import sink_group

__all__ = ["ConsistencyToken", "PositionWatcher", "sink_group"]

log = logging.getLogger("cqrs.query")

TOKEN_PREFIX = "c2."
SHARED_TOKEN_PREFIX = "c1."  # tokens without a topic: the shared ``events``
POLL_S = 0.1


@dataclass(frozen=True)
class ConsistencyToken:
    aggregate_id: str
    version: int
    partition: int  # of the events topic
    offset: int  # a projection that committed this offset has read the command's events
    topic: str = "events"  # the events topic, before the topic prefix

    def encode(self) -> str:
        body = json.dumps(
            [self.aggregate_id, self.version, self.topic, self.partition, self.offset]
        )
        return TOKEN_PREFIX + base64.urlsafe_b64encode(body.encode()).decode().rstrip("=")

    @classmethod
    def decode(cls, text: str) -> ConsistencyToken:
        shared = text.startswith(SHARED_TOKEN_PREFIX)
        if not shared and not text.startswith(TOKEN_PREFIX):
            raise TokenError("not a consistency token (take it from a command's answer)")
        raw = text[len(TOKEN_PREFIX) :]
        try:
            fields = json.loads(base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)))
        except (binascii.Error, ValueError, UnicodeDecodeError):
            raise TokenError("a damaged consistency token") from None
        if shared and isinstance(fields, list) and len(fields) == 4:
            fields = [*fields[:2], "events", *fields[2:]]
        if (
            not isinstance(fields, list)
            or len(fields) != 5
            or not isinstance(fields[0], str)
            or not isinstance(fields[2], str)
            or not all(isinstance(fields[i], int) and fields[i] >= 0 for i in (1, 3, 4))
        ):
            raise TokenError("a damaged consistency token")
        return cls(fields[0], fields[1], fields[3], fields[4], fields[2])


class PositionWatcher:
    """Waits until consumer groups have committed given offsets of the event topics."""

    def __init__(self, admin: AdminClient) -> None:
        self._admin = admin
        # group -> [((topic, partition), offset, future)]
        self._waits: dict[str, list[tuple[Partition, int, asyncio.Future[None]]]] = {}
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="position-watcher")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def wait(self, group: str, partition: Partition, offset: int, timeout_s: float) -> bool:
        """True once ``group`` committed ``offset`` or more on ``(topic, partition)``; False
        on timeout."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        entry = (partition, offset, future)
        self._waits.setdefault(group, []).append(entry)
        self._wake.set()
        try:
            await asyncio.wait_for(asyncio.shield(future), timeout_s)
            return True
        except TimeoutError:
            return False
        finally:
            waiting = self._waits.get(group, [])
            if entry in waiting:
                waiting.remove(entry)
            if not waiting:
                self._waits.pop(group, None)

    async def committed(self, group: str, partitions: list[Partition]) -> dict[Partition, int]:
        """The group's committed offsets of ``partitions`` (absent: nothing committed)."""
        request = ConsumerGroupTopicPartitions(
            group, [TopicPartition(topic, number) for topic, number in partitions]
        )

        def ask() -> Any:
            futures = self._admin.list_consumer_group_offsets(
                [request], require_stable=True, request_timeout=5
            )
            return futures[group].result(timeout=10)

        answer = await asyncio.to_thread(ask)
        return {
            (tp.topic, tp.partition): tp.offset
            for tp in answer.topic_partitions
            if tp.error is None and tp.offset >= 0
        }

    async def _run(self) -> None:
        while True:
            if not self._waits:
                self._wake.clear()
                await self._wake.wait()
            for group, waiting in list(self._waits.items()):
                partitions = sorted({partition for partition, _, _ in waiting})
                try:
                    committed = await self.committed(group, partitions)
                except KafkaException as error:
                    log.warning("query: cannot read the offsets of %s: %s", group, error)
                    continue
                for partition, offset, future in list(waiting):
                    if committed.get(partition, -1) >= offset and not future.done():
                        future.set_result(None)
            await asyncio.sleep(POLL_S)
