"""Exactly-once that holds under kills and rebalances: a small, documented layer over Faust.

faust-streaming's exactly-once mode keeps one transactional producer per input
partition, but three details of faust-streaming (read in 0.15.3) break the promise:

1. ``TransactionManager.send`` picks the transactional producer from the
   *destination* partition of each record. A command read from partition 2
   whose result is keyed to partition 0 is sent in partition 0's transaction,
   while partition 2's offset commits in another one: a crash between the two
   commits repeats the command. On a worker that does not own partition 0 the
   send fails outright ("No transaction producer found").
2. When the consumer has no metadata for the destination topic (topics the app
   writes but never reads: ``events``, ``command-results``), no transactional id
   is chosen at all and the record goes out on the plain, non-transactional
   producer — visible at once and never rolled back.
3. Table writes reach the changelog through a background buffer, and the
   commit timer can run between two sends of one event; either way part of an
   event's output can commit in one transaction and its offset in the next.

This module fixes those at their root, and nowhere else:

- every record sent while an event is processed goes through the transaction
  of the event's *source* partition (the one its offset commits with);
- an event is processed inside a *boundary* lock that a commit also takes
  while it chooses the offsets and commits them, and the event is acknowledged
  before the lock is released, so an event's outputs, table write and offset
  always commit together;
- table writes are sent explicitly to the changelog partition of the source
  partition inside the scope (``put``), instead of through Faust's buffer.

Zombie fencing is Faust's: transactional ids are ``<app>-<group>-<partition>``,
so whoever takes a partition over aborts what its previous owner left open.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable
from contextlib import asynccontextmanager
from contextvars import ContextVar
from typing import Any

import faust
from faust.transport.consumer import TransactionManager
from faust.transport.drivers.aiokafka import Consumer as AIOKafkaConsumer
from faust.transport.drivers.aiokafka import Transport as AIOKafkaTransport
from faust.types import TP, EventT, TableT, TransportT
from faust.types.transports import TPorTopicSet
from faust.types.tuples import RecordMetadata

from cqrs.errors import ConfigurationError


class ConsumerStoppedError(RuntimeError):
    """A commit was refused because an event failed half-way through its output."""


_source: ContextVar[TP | None] = ContextVar("cqrs_source_partition", default=None)


class EventScopedTransactions(TransactionManager):
    """Faust's transaction manager, with each event's output in its source's transaction."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Held while one event is processed and while offsets are chosen and committed,
        # so a commit never falls between two sends of one event or before its ack.
        self.boundary = asyncio.Lock()
        self.poisoned: BaseException | None = None

    async def on_partitions_revoked(self, revoked: set[TP]) -> None:
        # A commit still in flight must land before the partitions move: the next owner
        # reads the committed offsets as soon as this member rejoins.
        async with self.boundary:
            await super().on_partitions_revoked(revoked)

    def transactional_id(self, source: TP) -> str:
        group = self.app.assignor.group_for_topic(source.topic)
        return f"{self.app.conf.id}-{group}-{source.partition}"

    async def send(  # noqa: PLR0917 - Faust's signature
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        partition: int | None,
        timestamp: float | None,
        headers: Any,
        *,
        transactional_id: str | None = None,
    ) -> Awaitable[RecordMetadata]:
        source = _source.get()
        if source is None:
            # Faust's own writes outside any event (none of the product's agents do this).
            return await super().send(topic, key, value, partition, timestamp, headers)
        return await self.producer.send(
            topic,
            key,
            value,
            partition,  # None: the transactional producer partitions by key (murmur2)
            timestamp,
            headers,
            transactional_id=self.transactional_id(source),
        )


class _Consumer(AIOKafkaConsumer):
    async def force_commit(
        self, topics: TPorTopicSet | None = None, start_new_transaction: bool = True
    ) -> bool:
        transactions = self.transactions
        if not self.in_transaction or not isinstance(transactions, EventScopedTransactions):
            committed: bool = await super().force_commit(topics, start_new_transaction)
            return committed
        # Offsets are chosen inside the boundary: exactly the events whose output was sent.
        async with transactions.boundary:
            if transactions.poisoned is not None:
                raise ConsumerStoppedError(
                    f"not committing after a failed event: {transactions.poisoned!r}"
                )
            committed = await super().force_commit(topics, start_new_transaction)
        return committed


class _Transport(AIOKafkaTransport):
    Consumer = _Consumer
    TransactionManager = EventScopedTransactions


class PipelineApp(faust.App):
    """A Faust app whose exactly-once mode uses ``EventScopedTransactions``."""

    def _new_transport(self) -> TransportT:
        return _Transport(self.conf.broker_consumer, self)


@asynccontextmanager
async def processing(app: faust.App, event: EventT[bytes]) -> AsyncIterator[None]:
    """Process ``event`` so that all it sends, and its offset, commit in one transaction."""
    message = event.message
    if not app.in_transaction:
        yield  # at-least-once: Faust acknowledges the event after the agent's step
        return
    # Faust creates a transaction manager whatever the guarantee; only ours scopes events.
    transactions = app.consumer.transactions
    if not isinstance(transactions, EventScopedTransactions):
        raise ConfigurationError("exactly-once agents must run in a PipelineApp")
    async with transactions.boundary:
        token = _source.set(message.tp)
        try:
            yield
        except asyncio.CancelledError as stopped:
            transactions.poisoned = stopped  # stopping mid-event: the open transaction is void
            raise
        except Exception as error:
            # Part of this event's output may be in the open transaction: it must never
            # commit. Faust would acknowledge the event and go on, so stop the worker; the
            # next owner of the partition aborts the transaction and processes the event again.
            transactions.poisoned = error
            asyncio.get_running_loop().create_task(app.crash(error))
            raise
        finally:
            _source.reset(token)
        # Acknowledged inside the boundary: the next commit includes this offset with its output.
        if event.ack():
            app.sensors.on_message_out(message.tp, message.offset, message)


async def put(table: TableT[bytes, bytes], event: EventT[bytes], key: bytes, value: bytes) -> None:
    """Write a table entry in the event's transaction (changelog) and local store."""
    await table.changelog_topic.send(key=key, value=value, partition=event.message.partition)
    table.data[key] = value
