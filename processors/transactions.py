"""Exactly-once that holds under kills and rebalances: a small, documented layer over Faust.

faust-streaming (read in 0.15.3) keeps one transactional producer per input
partition, and details of its exactly-once mode break the promise:

1. ``TransactionManager.send`` picks the transactional producer from the
   *destination* partition of each record, so a command's result can commit in
   another transaction than the command's offset (a crash between the two
   commits repeats the command), or fail with "No transaction producer found".
2. Records for topics the app writes but never reads (``events``,
   ``command-results``) go out on the plain, non-transactional producer.
3. Table writes reach the changelog through a background buffer, and the
   commit timer can run between two sends of one event.

And one producer per partition is slow: every commit interval ends one
transaction per partition, each with its own partitions, offsets and end
markers — six of them made a worker saturate below 500 commands/s.

This module replaces that at its root:

- a worker has **one** transactional producer for every partition it owns
  (Kafka's KIP-447 model, as Kafka Streams' ``exactly_once_v2``): its offsets are
  committed under the consumer group's generation and member id, so the group
  coordinator refuses them from a worker whose partitions have moved, and a new
  owner reads committed offsets only once no open transaction holds them
  (``processors.group_transactions``);
- an event is processed inside a *boundary* lock that a commit also takes while
  it chooses the offsets and commits them, and the event is acknowledged before
  the lock is released, so an event's outputs, table write and offset always
  commit together;
- table writes are sent explicitly to the changelog partition of the source
  partition inside the scope (``put``), instead of through Faust's buffer.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Mapping
from contextlib import asynccontextmanager
from contextvars import ContextVar
from functools import partial
from typing import Any, cast

import faust
from aiokafka.structs import TopicPartition
from faust.transport.consumer import RecordMap, TransactionManager
from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread
from faust.transport.drivers.aiokafka import Consumer as AIOKafkaConsumer
from faust.transport.drivers.aiokafka import Producer as AIOKafkaProducer
from faust.transport.drivers.aiokafka import Transport as AIOKafkaTransport
from faust.types import TP, AppT, EventT, TableT, TransportT
from faust.types.transports import TPorTopicSet
from faust.types.tuples import RecordMetadata

from cqrs.errors import ConfigurationError
from processors.group_transactions import GroupMetadata, GroupTransactionalProducer
from processors.instance import InstanceClaim
from processors.partition_ledger import Admission, PartitionLedger


class ConsumerStoppedError(RuntimeError):
    """A commit was refused because an event failed half-way through its output."""


log = logging.getLogger("cqrs.transactions")
# A fetched record that never reaches the agent, with nothing after it, is re-read
# after this long without progress on its partition.
STALLED_AFTER_S = 60.0
_source: ContextVar[TP | None] = ContextVar("cqrs_source_partition", default=None)
# A transaction begun right after a commit meets CONCURRENT_TRANSACTIONS until the
# coordinator has written the previous one's markers, usually within milliseconds.
# aiokafka retries AddOffsetsToTxn, EndTxn and most AddPartitionsToTxn after its
# default 100 ms backoff, which stalled a worker's output for that long each time.
# Kafka's own clients retry this after 20 ms; this producer retries everything so.
TRANSACTION_RETRY_BACKOFF_MS = 20


class EventScopedTransactions(TransactionManager):
    """Faust's transaction manager, with one transaction per worker for all its partitions.

    It also decides which events are processed and which offsets commit, with a
    ``PartitionLedger`` in place of Faust's acknowledgement lists.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Held while one event is processed and while offsets are chosen and committed,
        # so a commit never falls between two sends of one event or before its ack.
        self.boundary = asyncio.Lock()
        self.poisoned: BaseException | None = None
        self.ledger = PartitionLedger()
        self.group: GroupMetadata | None = None  # the membership the owned partitions came with

    @property
    def transactional_id(self) -> str:
        return cast(PipelineApp, self.app).instance.transactional_id

    async def commit_processed(self, start_new_transaction: bool = True) -> dict[TP, int]:
        """Commit the transaction with every processed offset; hold ``boundary``.

        Always every one: the one transaction carries the output of every owned
        partition, so no subset of the offsets may commit with it.
        """
        if self.poisoned is not None:
            raise ConsumerStoppedError(f"not committing after a failed event: {self.poisoned!r}")
        offsets = self.ledger.to_commit()
        if not offsets:
            return {}
        try:
            await self.commit(offsets, start_new_transaction=start_new_transaction)
        except Exception as error:
            # The transaction's outcome is unknown, or the group fenced this worker:
            # nothing more may join it, and the worker must stop.
            self.poisoned = error
            log.error("the transaction did not commit: %r; stopping the worker", error)
            asyncio.get_running_loop().create_task(self.app.crash(error))
            raise
        self.ledger.committed(offsets)
        return offsets

    async def commit(self, offsets: Mapping[TP, int], start_new_transaction: bool = True) -> bool:
        if self.group is None:
            raise ConsumerStoppedError("offsets to commit before any partition was assigned")
        producer = cast(_Producer, self.producer)
        await producer.commit_worker_transaction(
            self.transactional_id,
            {TopicPartition(tp.topic, tp.partition): offset for tp, offset in offsets.items()},
            self.group,
            start_new_transaction=start_new_transaction,
        )
        return True

    async def on_partitions_revoked(self, revoked: set[TP]) -> None:
        # Commit what was processed before the partitions move (no commit is in flight:
        # the boundary is held), so the next owner starts where this one stopped; then
        # never process or commit them again until they are assigned anew.
        async with self.boundary:
            if self.poisoned is None:
                await self.commit_processed()
            self.ledger.revoked(revoked)
            await super().on_partitions_revoked(revoked)

    async def on_rebalance(
        self, assigned: set[TP], revoked: set[TP], newly_assigned: set[TP]
    ) -> None:
        """Take the new assignment over; Faust restores the tables right after this.

        Starting the worker's producer settles what its predecessor under the same
        transactional id left open. Waiting for stable offsets settles what any
        other previous owner left holding offsets; only then are the changelogs'
        last stable offsets (where the restore stops) and the committed offsets
        (where the consumer seeks) final.
        """
        async with self.boundary:
            app = cast(PipelineApp, self.app)
            producer = await cast(_Producer, self.producer).worker_transaction(
                self.transactional_id
            )
            generation, member_id = cast(_Consumer, self.consumer).membership()
            self.group = GroupMetadata(app.conf.id, generation, member_id)
            agent_topics = {
                topic for agent in app.agents.values() for topic in agent.channel.topics
            }
            sources = {
                source
                for source in assigned
                if source.topic in agent_topics and not app.assignor.is_standby(source)
            }
            await producer.wait_for_stable_offsets(
                app.conf.id,
                [TopicPartition(source.topic, source.partition) for source in sources],
                timeout_s=app.stable_offsets_timeout_s,
            )
            self.ledger.assigned(sources)  # also forgets every partition not assigned any more

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
        if _source.get() is None:
            # Faust's own writes outside any event (none of the product's agents do this).
            return await super().send(topic, key, value, partition, timestamp, headers)
        return await self.producer.send(
            topic,
            key,
            value,
            partition,  # None: the transactional producer partitions by key (murmur2)
            timestamp,
            headers,
            transactional_id=self.transactional_id,
        )


class _ConsumerThread(AIOKafkaConsumerThread):
    async def _highwaters(self, partitions: list[TP]) -> Mapping[TP, int]:
        # Under exactly-once Faust reads the last stable offset from the fetcher's cache,
        # which is empty (-1) until a partition's first fetch: a table restore right after
        # a quick second rebalance then fails with a ConsistencyError. A read_committed
        # consumer's end offsets are the last stable offsets, asked of the broker.
        end_offsets = await self._ensure_consumer().end_offsets(partitions)
        return cast(Mapping[TP, int], end_offsets)

    def membership(self) -> tuple[int, str]:
        coordinator = self._ensure_consumer()._coordinator
        return int(coordinator.generation), str(coordinator.member_id)


class _Consumer(AIOKafkaConsumer):
    """Tells the ledger what was fetched and where the consumer was sent.

    Fetches and seeks are serialised, so every fetched batch is known to come
    entirely before or entirely after a seek.
    """

    _fetch_lock: asyncio.Lock | None = None
    _fetched: dict[TP, int] | None = None  # highest offset fetched per partition since a seek

    def _new_consumer_thread(self) -> AIOKafkaConsumerThread:
        return _ConsumerThread(self, loop=self.loop, beacon=self.beacon)

    def membership(self) -> tuple[int, str]:
        """The consumer group generation and member id of the current assignment."""
        return cast(_ConsumerThread, self._thread).membership()

    def _ledger(self) -> PartitionLedger | None:
        transactions = self.transactions
        if self.in_transaction and isinstance(transactions, EventScopedTransactions):
            return transactions.ledger
        return None

    def _fetching(self) -> asyncio.Lock:
        if self._fetch_lock is None:
            self._fetch_lock = asyncio.Lock()
        return self._fetch_lock

    async def _getmany(self, active_partitions: set[TP] | None, timeout: float) -> RecordMap:
        async with self._fetching():
            records = await super()._getmany(active_partitions, timeout)
            fetched = self._fetched_offsets()
            for source, batch in records.items():
                if batch:
                    key = TP(source.topic, source.partition)
                    fetched[key] = max(fetched.get(key, -1), batch[-1].offset)
            ledger = self._ledger()
            if ledger is not None and records:
                for source, batch in records.items():
                    ledger.fetched(TP(source.topic, source.partition), (r.offset for r in batch))
            return records

    def _fetched_offsets(self) -> dict[TP, int]:
        if self._fetched is None:
            self._fetched = {}
        return self._fetched

    async def position(self, tp: TP) -> int | None:
        """The fetch position; for a changelog partition in recovery, not past records
        that were fetched but not yet taken by the recovery.

        Faust's recovery (0.15.3) asks for the position only to detect that the rest
        of a changelog partition is aborted transactions: when the position reaches
        the highwater before the recovery has seen the last record, it declares the
        partition restored. But the position moves at fetch time, ahead of the
        records still on their way to the recovery queue, and a queue timeout left
        over from before the rebalance can fire at once: the partition's records
        were then all dropped, and a worker took over aggregates as if new.
        """
        position: int | None = await super().position(tp)
        recovery = cast(Any, self.app.tables).recovery
        fetched = self._fetched_offsets().get(tp)
        if position is None or fetched is None or tp not in recovery.active_tps:
            return position
        taken = recovery.active_offsets.get(tp)
        if taken is None or taken < fetched:
            return fetched  # below the highwater: not restored yet
        return position

    async def seek_wait(self, partitions: Mapping[TP, int]) -> None:
        # The recovery's seeks (to where each changelog partition is read from).
        for partition in partitions:
            self._fetched_offsets().pop(partition, None)
        await super().seek_wait(partitions)

    async def _seek(self, partition: TP, offset: int) -> None:
        async with self._fetching():
            self._fetched_offsets().pop(partition, None)
            await super()._seek(partition, offset)
            ledger = self._ledger()
            if ledger is not None:
                ledger.sought_one(partition, offset, time.monotonic())

    async def perform_seek(self) -> None:
        async with self._fetching():
            self._fetched_offsets().clear()
            await super().perform_seek()
            ledger = self._ledger()
            if ledger is not None:
                committed = {TP(tp.topic, tp.partition): o for tp, o in self._read_offset.items()}
                ledger.sought(committed, time.monotonic())

    async def force_commit(
        self, topics: TPorTopicSet | None = None, start_new_transaction: bool = True
    ) -> bool:
        transactions = self.transactions
        if not self.in_transaction or not isinstance(transactions, EventScopedTransactions):
            committed: bool = await super().force_commit(topics, start_new_transaction)
            return committed
        # Faust's own offsets come from its acknowledgement lists and gap trees, which
        # can run ahead of an event's output; the transaction manager's cannot.
        async with transactions.boundary:
            sensor_state = self.app.sensors.on_commit_initiated(self)
            # ``topics`` cannot narrow it: every processed offset commits with the transaction.
            offsets = await transactions.commit_processed(start_new_transaction)
            if offsets:
                self.app.tables.on_commit(offsets)
                self._committed_offset.update(offsets)
                self.app.monitor.on_tp_commit(offsets)
            for source in offsets:  # Faust's lists are not read in this mode: keep them small
                self._acked.pop(source, None)
                self._acked_index.pop(source, None)
                self._gap.pop(source, None)
            self.app.sensors.on_commit_completed(self, sensor_state)
            # Inside the boundary: no event is processed while a partition is sent back.
            stalled = transactions.ledger.stalled(time.monotonic(), STALLED_AFTER_S)
            for source, offset in stalled.items():
                log.warning(
                    "no event of %s[%s] arrived for %.0f s although records were fetched: "
                    "reading again from offset %s",
                    source.topic,
                    source.partition,
                    STALLED_AFTER_S,
                    offset,
                )
                await self.seek(source, offset)
        return bool(offsets)


class _Producer(AIOKafkaProducer):
    """Faust's producer, whose transactional producer is the worker's one, fenced by group."""

    def _new_producer(self, transactional_id: str | None = None) -> Any:
        if transactional_id is None:
            return super()._new_producer()
        app = cast(PipelineApp, self.app)
        settings = {**self._settings_default(), **self._settings_auth(), **self._settings_extra()}
        return GroupTransactionalProducer(
            **{**settings, "retry_backoff_ms": TRANSACTION_RETRY_BACKOFF_MS},
            transactional_id=transactional_id,
            transaction_timeout_ms=int(app.transaction_timeout_s * 1000),
        )

    async def worker_transaction(self, transactional_id: str) -> GroupTransactionalProducer:
        """The worker's transactional producer, started once, with a transaction begun.

        Unlike Faust's ``begin_transaction``, a failure here is raised, not logged.
        """
        producer = self._transaction_producers.get(transactional_id)
        if producer is None:
            producer = self._new_producer(transactional_id=transactional_id)
            await producer.start()  # fences the previous process with this id
            self._transaction_producers[transactional_id] = producer
            self._trn_locks[transactional_id] = asyncio.Lock()
        if not producer._txn_manager.is_in_transaction():
            await producer.begin_transaction()
        return cast(GroupTransactionalProducer, producer)

    async def commit_worker_transaction(
        self,
        transactional_id: str,
        offsets: Mapping[TopicPartition, int],
        group: GroupMetadata,
        *,
        start_new_transaction: bool,
    ) -> None:
        async with self._trn_locks[transactional_id]:
            producer = self._transaction_producers[transactional_id]
            await producer.send_offsets_to_transaction(offsets, group)
            await producer.commit_transaction()
            if start_new_transaction:
                await producer.begin_transaction()


class _Transport(AIOKafkaTransport):
    Consumer = _Consumer
    Producer = _Producer
    TransactionManager = EventScopedTransactions


class PipelineApp(faust.App):
    """A Faust app whose exactly-once mode uses ``EventScopedTransactions``."""

    def __init__(
        self,
        id: str,
        *,
        instance: InstanceClaim,
        transaction_timeout_s: float,
        **options: Any,
    ) -> None:
        super().__init__(id, **options)
        self.instance = instance
        self.transaction_timeout_s = transaction_timeout_s

    @property
    def stable_offsets_timeout_s(self) -> float:
        # A previous owner's open transaction ends by the transaction timeout at the
        # latest (the broker's abort sweep runs every 10 s by default).
        return 3 * self.transaction_timeout_s + 30

    def _new_transport(self) -> TransportT:
        return _Transport(self.conf.broker_consumer, self)


@asynccontextmanager
async def processing(app: faust.App, event: EventT[bytes]) -> AsyncIterator[bool]:
    """Scope ``event``'s processing so that all it sends, and its offset, commit together.

    Yields whether the event is this worker's to process: an event of a partition
    revoked while it waited, or one already processed in this ownership (delivered
    again after a seek), must be skipped.
    """
    message = event.message
    if not app.in_transaction:
        yield True  # at-least-once: Faust acknowledges the event after the agent's step
        return
    # Faust creates a transaction manager whatever the guarantee; only ours scopes events.
    transactions = app.consumer.transactions
    if not isinstance(transactions, EventScopedTransactions):
        raise ConfigurationError("exactly-once agents must run in a PipelineApp")
    async with transactions.boundary:
        admission = transactions.ledger.admit(message.tp, message.offset)
        if admission is not Admission.PROCESS:
            await _skip(app, transactions.ledger, event, admission)
            yield False
            return
        token = _source.set(message.tp)
        try:
            yield True
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
        # Recorded inside the boundary: the next commit takes this offset with its output.
        transactions.ledger.processed(message.tp, message.offset, time.monotonic())
        if event.ack():
            app.sensors.on_message_out(message.tp, message.offset, message)


async def _skip(
    app: faust.App, ledger: PartitionLedger, event: EventT[bytes], admission: Admission
) -> None:
    message = event.message
    level = logging.DEBUG if admission is Admission.ALREADY_PROCESSED else logging.INFO
    log.log(
        level,
        "skipping %s[%s]@%s: %s",
        message.topic,
        message.partition,
        message.offset,
        admission.value,
    )
    if admission is Admission.DROPPED_BEFORE:
        await app.consumer.seek(message.tp, ledger.reread_from(message.tp))
    event.ack()  # for Faust's rebalance, which waits for every event in flight


def stopped_cleanly(app: faust.App) -> bool:
    """No crash, and no event left half-way through a transaction."""
    if app.crash_reason is not None:
        return False
    transactions = app.consumer.transactions if app.in_transaction else None
    return not isinstance(transactions, EventScopedTransactions) or transactions.poisoned is None


async def emit(
    app: AppT,
    topic: str,
    key: bytes | None,
    value: bytes | None,
    *,
    partition: int | None = None,
    headers: list[tuple[str, bytes]] | None = None,
) -> None:
    """Send a record of the event being processed on the producer of its transaction.

    Straight to Faust's producer: a Faust ``Topic.send`` builds a message, a future
    message, a pending send and sensor calls around every record, which cost the
    command processor more CPU than the send itself. A failed delivery stops the
    worker: under exactly-once its transaction could not commit anyway, and under
    at-least-once the offset must not commit past an output that never arrived.
    """
    transactional_id = None
    if _source.get() is not None:
        transactional_id = cast(EventScopedTransactions, app.consumer.transactions).transactional_id
    delivery = await app.producer.send(
        topic, key, value, partition, None, headers, transactional_id=transactional_id
    )
    cast("asyncio.Future[Any]", delivery).add_done_callback(partial(_delivered, app, topic))


def _delivered(app: AppT, topic: str, delivery: asyncio.Future[Any]) -> None:
    if delivery.cancelled() or delivery.exception() is None:
        return
    error = delivery.exception()
    log.error("a record for %s was not delivered: %r; stopping the worker", topic, error)
    asyncio.get_running_loop().create_task(app.crash(cast(BaseException, error)))


async def put(
    table: TableT[bytes, bytes], event: EventT[bytes], key: bytes, value: bytes | None
) -> None:
    """Write (or, with None, delete) a table entry in the event's transaction (changelog)
    and local store."""
    changelog = table.changelog_topic.get_topic_name()
    await emit(table.app, changelog, key, value, partition=event.message.partition)
    if value is None:
        table.data.pop(key, None)
    else:
        table.data[key] = value
