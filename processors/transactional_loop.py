"""The worker's loop: consume a batch, process it, and commit it exactly once.

This module is the exactly-once core. It runs on librdkafka's own
transactions (confluent-kafka) with KIP-447 fencing, the model of Kafka
Streams' ``exactly_once_v2``: one consumer in the task's consumer group, one
transactional producer for every partition the worker owns, and offsets sent
to the transaction with the consumer's group metadata, so the group
coordinator refuses them from a worker whose partitions have moved.

The checkpoint, in this order (``_checkpoint``):

1. the outputs of every processed record were produced inside the open
   transaction as each record was processed; the changelog records of its
   staged state writes are produced now, one per key (the last write wins, as
   in the compacted changelog);
2. the consumed offsets are sent to the transaction, under the group's
   current generation (``send_offsets_to_transaction``);
3. the transaction commits (``commit_transaction``), and only then
4. the staged state writes are applied to the local tables, and to the local
   store on disk when there is one (``processors.local_store``), with the
   changelog offsets the transaction ended at.

A failure anywhere in between is survived in-process (``_recover``): an
abortable error aborts the transaction and rewinds the consumer to the last
committed offsets, so the same records are processed again in a new
transaction; a fatal error (the producer fenced, its epoch refused after a
broker restart or a transaction timeout) replaces the producer with a new one
under the same transactional id, whose ``init_transactions`` bumps the epoch
and fences anything the old one left open (and whose first transaction closes
what a restarted broker failed to, ``processors.strays``). A commit that
failed so may still have happened: the group's committed offsets tell which
(``processors.commit_outcome``), and the loop goes on from there; a retriable
error (a coordinator moving, a broker briefly away) retries the same call. A
consumer that fails for good (a static member fenced by its own name) gives
up its partitions and is replaced by a new one under the same name.
Local state never holds a write of a transaction that did not commit
(``processors.state``), so nothing needs to be undone there.

Rebalances are cooperative (incremental): a worker keeps processing the
partitions that do not move. Before partitions are revoked, the open
transaction is committed; partitions lost without a revoke (the session
expired) are given up with the transaction aborted. New partitions are paused
until their state is restored from the changelog (``processors.changelog``).

The module is longer than most on purpose: the checkpoint, the recovery paths
and the rebalance callbacks share the transaction's state and must be read
together to be checked.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition

from core.errors import CallOverranError
from core.kafka_fetch import available
from core.metrics import TRANSACTION_COMMIT_SECONDS
from core.observability import WORKER_READY, Health
from core.settings import KafkaConfig
from processors.bounded_call import call_within
from processors.changelog import ChangelogRestore
from processors.commit_outcome import Outcome, committed_offsets, judge
from processors.commit_policy import CommitPolicy
from processors.departed import DepartedMembers, Departures
from processors.local_store import LocalStore
from processors.standby import StandbyFollower
from processors.state import PartitionedState
from processors.strays import Strays, close_strays
from processors.task import Headers, Step, Task

log = logging.getLogger("cqrs.loop")
BATCH_MAX = 2000
RETRY_PAUSE_S = 0.2
ATTEMPT_TIMEOUT_S = 5.0  # one try of a transactional call; retried while retriable


# Outside core.errors: a KafkaException (with a KafkaError) so the loop's librdkafka
# recovery handles it like the call's own failure; it never leaves the loop.
class GaveUpError(KafkaException):
    """A transactional call still failing when its transaction must have expired."""


@dataclass(frozen=True)
class LoopSettings:
    kafka: KafkaConfig  # connection and security only
    group_id: str
    transactional_id: str
    exactly_once: bool = True
    commit_interval_s: float = 0.05
    # Caught up with the input (nothing more waiting), a transaction commits once it is
    # this old instead of waiting out the interval; 0: never early.
    early_commit_s: float = 0.0
    transaction_timeout_s: float = 10.0
    session_timeout_s: float = 10.0
    group_instance_id: str | None = None  # a static member's stable name (KIP-345)
    delete_retention_s: float = 86_400.0  # the changelog's tombstone retention


class TransactionalLoop:
    def __init__(
        self,
        task: Task,
        settings: LoopSettings,
        health: Health | None = None,
        store: LocalStore | None = None,
        standby: StandbyFollower | None = None,
    ) -> None:
        self._task, self._settings, self._health = task, settings, health or Health()
        self._policy = CommitPolicy(settings.commit_interval_s, settings.early_commit_s)
        self._standby = standby if task.state else None
        self._state = PartitionedState()
        self._store = store if task.state else None
        # The input topic whose partitions own the state (None: a stateless task).
        self._source = task.state.source_topic if task.state else None
        self._restore = (
            ChangelogRestore(
                task.state.changelog,
                settings.kafka,
                self._state,
                self._store,
                settings.delete_retention_s,
            )
            if task.state
            else None
        )
        # Per changelog partition, the offset after the open transaction's last record
        # there, from its delivery report: where the local store's position moves to.
        self._changelog_ends: dict[int, int] = {}
        self._stopping = False  # before the first producer, whose start may be retried
        self._consumer = Consumer(self._consumer_config())
        self._producer = self._new_producer()
        self._owned: set[tuple[str, int]] = set()  # assigned and restored: processed
        self._resume: dict[tuple[str, int], int] = {}  # where a rewind seeks to
        self._pending: dict[tuple[str, int], int] = {}  # next offset, processed uncommitted
        self._in_transaction = False
        self._opened_at = 0.0
        self._announced = False
        self._assigned_once = False
        # Static names are transactional ids: a member gone mid-transaction is taken over.
        self._departed: DepartedMembers | None = None
        if settings.exactly_once and settings.group_instance_id == settings.transactional_id:
            self._departed = DepartedMembers(
                Departures(
                    settings.kafka,
                    settings.group_id,
                    settings.transactional_id,
                    self._strays(),
                    settings.transaction_timeout_s,
                )
            )

    # -- configuration ----------------------------------------------------------------

    def _consumer_config(self) -> KafkaConfig:
        s = self._settings
        static = {} if s.group_instance_id is None else {"group.instance.id": s.group_instance_id}
        return {
            **s.kafka,
            **static,
            "group.id": s.group_id,
            "partition.assignment.strategy": "cooperative-sticky",
            "isolation.level": "read_committed" if s.exactly_once else "read_uncommitted",
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "auto.offset.reset": "earliest",
            "session.timeout.ms": int(s.session_timeout_s * 1000),
            "heartbeat.interval.ms": int(min(3.0, s.session_timeout_s / 4) * 1000),
            "fetch.wait.max.ms": 100,
        }

    def _new_producer(self) -> Producer:
        s = self._settings
        config: KafkaConfig = {
            **s.kafka,
            "partitioner": "murmur2_random",  # Kafka's own partitioner: keys land as Java's do
            "linger.ms": 2,
            "enable.idempotence": True,
            # A transaction begun right after a commit can meet CONCURRENT_TRANSACTIONS
            # while the coordinator writes the previous markers; retry it soon.
            "retry.backoff.ms": 20,
        }
        if s.exactly_once:
            config["transactional.id"] = s.transactional_id
            config["transaction.timeout.ms"] = int(s.transaction_timeout_s * 1000)
        while True:
            producer = Producer(config)
            if not s.exactly_once:
                return producer
            try:
                self._retrying("init_transactions", producer.init_transactions)
                self._close_strays(producer)
                return producer
            except KafkaException as exception:
                if self._stopping:
                    raise
                log.warning("init_transactions failed (%s); again with a new producer", exception)
                time.sleep(1.0)

    def _close_strays(self, producer: Producer) -> None:
        """What an earlier producer under this transactional id left open, aborted
        (``processors.strays``) before the new one writes anything."""
        strays = self._strays()
        closed = close_strays(
            producer,
            strays,
            self._retrying,
            time.monotonic() + self._settings.transaction_timeout_s,
        )
        log.info(
            "aborted a fencing record on %d partitions of %s and offsets of group %s",
            closed,
            ", ".join(strays.topics),
            self._settings.group_id,
        )

    def _strays(self) -> Strays:
        """What a new producer of this task closes: every topic it may write to."""
        topics = [*self._task.outputs]
        if self._task.state is not None:
            topics.append(self._task.state.changelog)
        return Strays(self._settings.kafka, self._settings.group_id, topics, self._task.topics[0])

    # -- running ------------------------------------------------------------------

    def stop(self) -> None:
        """Ask the loop to finish its transaction and leave the group (signal-safe)."""
        self._stopping = True

    def _subscribe(self) -> None:
        self._consumer.subscribe(
            self._task.topics,
            on_assign=self._on_assign,
            on_revoke=self._on_revoke,
            on_lost=self._on_lost,
        )

    def run(self) -> None:
        self._subscribe()
        if self._restore is not None:
            self._restore.prepare()  # while the group join goes on in librdkafka's threads
        try:
            while not self._stopping:
                self._health.beat()
                self._advance_restores()
                if self._standby is not None:
                    self._standby.step()
                messages = self._fetch()
                self._process(messages)
                if self._due(caught_up=len(messages) < BATCH_MAX):
                    self._checkpoint()
            if self._in_transaction:
                self._checkpoint()
        finally:
            self._consumer.close()  # leaves the group: revokes (nothing left to commit)
            if self._restore is not None:
                self._restore.close()
            if self._standby is not None:
                self._standby.close()
            if self._departed is not None:
                self._departed.close()
            self._producer.flush(10)
        log.info("%s stopped cleanly", self._task.name)

    def _fetch(self) -> list[Message]:
        """What the consumer holds, up to a batch; else wait for the first record only.

        ``consume(n, timeout)`` waits for ``n`` records or the timeout, which would hold a
        lone command for the whole timeout before its transaction even begins."""
        return available(self._consumer, BATCH_MAX, self._poll_timeout())

    def _poll_timeout(self) -> float:
        if self._restore is not None and self._restore.restoring:
            return 0.0
        if not self._in_transaction:
            return 0.1
        return min(0.1, self._policy.wait_s(time.monotonic() - self._opened_at))

    def _due(self, *, caught_up: bool) -> bool:
        age = time.monotonic() - self._opened_at
        return self._in_transaction and self._policy.due(age, caught_up=caught_up)

    def _process(self, messages: list[Message]) -> None:
        task, state, owned, source = self._task, self._state, self._owned, self._source
        for index, message in enumerate(messages):
            error = message.error()
            if error is not None:
                self._consumer_error(error)
                continue
            topic, partition, offset = message.topic(), message.partition(), message.offset()
            assert topic is not None and partition is not None and offset is not None
            place = (topic, partition)
            if place not in owned:
                continue  # revoked, lost or still restoring: fetched again when owned
            if place not in self._resume:
                self._resume[place] = offset
            reader = state.reader(partition) if topic == source else None
            step = task.process(message, reader)
            try:
                self._send(step, partition if topic == source else None)
            except KafkaException as exception:
                # Everything from this record on is unprocessed: read again after the rewind.
                self._recover(exception, "producing", messages[index:])
                return
            self._pending[place] = offset + 1

    def _send(self, step: Step, state_partition: int | None) -> None:
        """Produce a step's outputs in the open transaction and stage its state writes."""
        if not self._in_transaction:
            self._begin()
        produce = self._produce
        for output in step.outputs:
            produce(output.topic, output.key, output.value, output.headers, output.partition)
        if step.writes and state_partition is not None:
            self._state.stage(state_partition, step.writes)

    def _produce_changelog(self) -> None:
        """The transaction's state writes to the changelog, one record per key: a compacted
        changelog keeps only the last value of a key, so a key written by several records
        of one transaction needs only its last write (Kafka Streams' caching does so too)."""
        if self._task.state is None:
            return
        changelog, produce = self._task.state.changelog, self._produce
        self._changelog_ends = {}
        for partition, writes in self._state.staged():
            last = len(writes) - 1
            for index, (key, value) in enumerate(writes.items()):
                # Only the last record's offset is needed: one report per partition.
                report = self._changelog_end if self._store and index == last else None
                produce(changelog, key, value, None, partition, on_delivery=report)

    def _changelog_end(self, error: KafkaError | None, message: Message) -> None:
        partition, offset = message.partition(), message.offset()
        if error is None and partition is not None and offset is not None and offset >= 0:
            self._changelog_ends[partition] = offset + 1

    def _produce(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        headers: Headers | None,
        partition: int | None,
        *,
        on_delivery: Callable[[KafkaError | None, Message], None] | None = None,
    ) -> None:
        while True:
            try:
                if partition is None:
                    self._producer.produce(topic, value, key, headers=headers)
                elif on_delivery is None:
                    self._producer.produce(topic, value, key, partition, headers=headers)
                else:
                    self._producer.produce(
                        topic, value, key, partition, headers=headers, on_delivery=on_delivery
                    )
                return
            except BufferError:  # the local queue is full: let it drain
                self._producer.poll(0.05)

    def _begin(self) -> None:
        if self._settings.exactly_once:
            self._producer.begin_transaction()
        self._in_transaction = True
        self._opened_at = time.monotonic()

    # -- the checkpoint -------------------------------------------------------------

    def _checkpoint(self) -> None:
        """Commit everything processed since the last checkpoint (or, failing, recover)."""
        offsets = [TopicPartition(t, p, o) for (t, p), o in self._pending.items()]
        started = time.perf_counter()
        try:
            self._produce_changelog()
            if self._settings.exactly_once:
                self._commit_transaction(offsets)
            else:
                self._commit_at_least_once(offsets)
        except KafkaException as error:
            self._recover(error, "committing")
            return
        TRANSACTION_COMMIT_SECONDS.observe(time.perf_counter() - started)
        self._commit_state(known_ends=True)
        for (topic, partition), offset in self._pending.items():
            self._resume[(topic, partition)] = offset
        self._pending.clear()
        self._in_transaction = False

    def _commit_transaction(self, offsets: list[TopicPartition]) -> None:
        producer = self._producer
        # Past the transaction timeout the coordinator aborts it anyway: retrying longer
        # only delays the recovery (a new producer, the records read again).
        deadline = max(
            self._opened_at + self._settings.transaction_timeout_s, time.monotonic() + 1.0
        )
        if offsets:
            metadata = self._consumer.consumer_group_metadata()
            self._retrying(
                "send_offsets_to_transaction",
                lambda timeout: producer.send_offsets_to_transaction(offsets, metadata, timeout),
                deadline,
            )
        self._retrying("commit_transaction", producer.commit_transaction, deadline)

    def _commit_state(self, *, known_ends: bool) -> None:
        """The committed transaction's writes into the tables, and into the local store
        with the changelog offsets they end at (unknown after a commit that failed but
        happened: the store then holds writes past its position, which a restore's
        replay of the log from that position reproduces)."""
        store = self._store
        if store is not None:
            writes = dict(self._state.staged())
            if writes:
                self._producer.poll(0)  # serve the changelog records' delivery reports
                ends = self._changelog_ends if known_ends else {}
                store.apply(writes, {p: e for p, e in ends.items() if p in writes})
        self._changelog_ends = {}
        self._state.commit()

    def _commit_at_least_once(self, offsets: list[TopicPartition]) -> None:
        undelivered = self._producer.flush(self._settings.transaction_timeout_s)
        if undelivered:
            raise KafkaException(KafkaError(KafkaError._TIMED_OUT, f"{undelivered} undelivered"))
        if offsets:
            self._consumer.commit(offsets=offsets, asynchronous=False)

    def _retrying(
        self, what: str, call: Callable[[float], object], deadline: float | None = None
    ) -> None:
        """``call(timeout)`` again while it fails with a retriable error (librdkafka allows
        this for every transactional call) until ``deadline``; then ``GaveUpError``, as
        when a call overruns its timeout (``processors.bounded_call``). Any other error
        is raised as it is."""
        while True:
            attempt = ATTEMPT_TIMEOUT_S
            if deadline is not None:
                attempt = min(attempt, max(0.1, deadline - time.monotonic()))
            try:
                call_within(call, attempt, what)
                return
            except CallOverranError as overran:
                # The producer may be wedged: only a new one is sure to go on.
                raise GaveUpError(KafkaError(KafkaError._TIMED_OUT, str(overran))) from None
            except KafkaException as exception:
                error = exception.args[0]
                if not error.retriable() or self._stopping:
                    raise
                if deadline is not None and time.monotonic() >= deadline:
                    raise GaveUpError(KafkaError(error.code(), f"{what}: {error.str()}")) from None
                log.warning("%s failed (%s); retrying", what, error)
                self._health.beat()
                time.sleep(RETRY_PAUSE_S)

    # -- recovery -------------------------------------------------------------------

    def _recover(
        self, exception: KafkaException, during: str, unprocessed: Sequence[Message] = ()
    ) -> None:
        """Abort (or replace the producer), forget the staged writes, rewind the consumer."""
        error: KafkaError = exception.args[0]
        log.warning("transaction failed while %s: %s; recovering", during, error)
        replaced = False
        if self._settings.exactly_once:
            if error.fatal() or isinstance(exception, GaveUpError):
                self._replace_producer()
                replaced = True
            else:
                replaced = not self._aborted()
        self._in_transaction = False
        if replaced and during == "committing" and self._pending:
            # The commit may have happened all the same (processors.commit_outcome).
            self._settle()
            return
        self._state.abort()
        self._rewind(unprocessed)

    def _aborted(self) -> bool:
        """Abort the open transaction; False when that failed and the producer was replaced."""
        deadline = time.monotonic() + self._settings.transaction_timeout_s
        try:
            self._retrying("abort_transaction", self._producer.abort_transaction, deadline)
            return True
        except KafkaException as exception:
            log.warning("abort failed (%s); starting a new producer", exception.args[0])
            self._replace_producer()
            return False

    def _settle(self) -> None:
        """Go on after a commit of unknown outcome, which the new producer has made final:
        as if it committed, as after an abort, or (not knowable) from the group's offsets
        with the state partitions restored from the changelog."""
        sent = dict(self._pending)
        committed = committed_offsets(self._consumer, sorted(sent), lambda: self._stopping)
        outcome = judge(sent, committed)
        log.warning(
            "the transaction whose commit failed %s (offsets sent %s, the group's %s)",
            "was committed" if outcome is Outcome.COMMITTED else f"is {outcome.value}",
            sent,
            committed,
        )
        self._pending.clear()
        if outcome is Outcome.COMMITTED:
            self._commit_state(known_ends=False)
            self._resume.update(sent)
            return
        self._state.abort()
        if committed is None:
            return  # stopping: nothing more is processed or committed
        for place, offset in committed.items():
            if offset >= 0:
                self._resume[place] = offset
            if place in self._owned and place in self._resume:
                self._seek(place, self._resume[place])
        if outcome is Outcome.UNKNOWN:
            self._restart_restores([p for t, p in sent if t == self._source])

    def _restart_restores(self, partitions: list[int]) -> None:
        """Read these state partitions from the changelog again, paused meanwhile."""
        source = self._source
        owned = [p for p in partitions if (source, p) in self._owned]
        if not owned or self._restore is None or source is None:
            return
        self._consumer.pause([TopicPartition(source, p) for p in owned])
        self._owned.difference_update((source, p) for p in owned)
        self._restore.start(owned)
        self._announce_if_ready()

    def _replace_producer(self) -> None:
        log.warning(
            "replacing the transactional producer %s (a new epoch fences the old one)",
            self._settings.transactional_id,
        )
        self._producer.purge()
        self._producer = self._new_producer()

    def _rewind(self, unprocessed: Sequence[Message]) -> None:
        """Seek back every partition with uncommitted progress, and every partition with
        fetched records left unprocessed, to the first record not committed."""
        targets = {place: self._resume[place] for place in self._pending if place in self._resume}
        for message in unprocessed:
            topic, partition, offset = message.topic(), message.partition(), message.offset()
            if topic is None or partition is None or offset is None or message.error():
                continue
            targets.setdefault((topic, partition), self._resume.get((topic, partition), offset))
        for place, offset in targets.items():
            if place in self._owned:
                self._seek(place, offset)
        self._pending.clear()

    def _seek(self, place: tuple[str, int], offset: int) -> None:
        try:
            self._consumer.seek(TopicPartition(place[0], place[1], offset))
        except KafkaException as error:
            # A partition not yet fetching cannot be sought; it starts at its committed
            # offset anyway. Anything else is surfaced.
            if error.args[0].code() != KafkaError._STATE:
                raise

    def _consumer_error(self, error: KafkaError) -> None:
        if error.fatal() or error.code() == KafkaError._FATAL:
            self._replace_consumer(error)
            return
        log.warning("consumer: %s", error)

    def _replace_consumer(self, error: KafkaError) -> None:
        """A consumer failed for good (librdkafka can fence a static member by its own
        instance id when its session expires while the group coordinator moves): its
        partitions are given up, the open transaction aborted, and a new consumer joins
        under the same name, taking the registration over."""
        log.warning("consumer failed (%s); joining the group again with a new consumer", error)
        try:
            lost = self._consumer.assignment()
        except KafkaException:
            lost = [TopicPartition(t, p) for t, p in self._owned]
        if self._in_transaction and self._settings.exactly_once:
            self._aborted()
        self._in_transaction = False
        self._state.abort()
        self._pending.clear()
        if lost:
            self._give_up(lost)
        try:
            self._consumer.close()
        except (KafkaException, RuntimeError) as closing:
            log.warning("closing the failed consumer: %s", closing)
        time.sleep(RETRY_PAUSE_S * 5)  # a fencing repeated at once would spin
        self._consumer = Consumer(self._consumer_config())
        self._subscribe()

    # -- rebalances -----------------------------------------------------------------

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        consumer.incremental_assign(partitions)
        source = self._source
        stateful = [tp for tp in partitions if tp.topic == source]
        if stateful and self._restore is not None:
            consumer.pause(stateful)
            if self._standby is not None:  # first: its copy is then what the restore finds
                self._standby.owned([tp.partition for tp in stateful])
            self._restore.start([tp.partition for tp in stateful])
        self._owned.update((tp.topic, tp.partition) for tp in partitions if tp.topic != source)
        self._assigned_once = True
        if partitions and self._departed is not None:
            self._departed.assigned()
        log.info(
            "assigned %s", ", ".join(f"{tp.topic}[{tp.partition}]" for tp in partitions) or "none"
        )
        self._announce_if_ready()

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        if self._in_transaction:
            self._checkpoint()
        self._give_up(partitions)

    def _on_lost(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        if self._in_transaction:
            log.warning("partitions lost (session expired): aborting the open transaction")
            self._recover(KafkaException(KafkaError(KafkaError._ASSIGNMENT_LOST)), "losing")
        self._give_up(partitions)

    def _give_up(self, partitions: list[TopicPartition]) -> None:
        source = self._source
        for tp in partitions:
            place = (tp.topic, tp.partition)
            self._owned.discard(place)
            self._resume.pop(place, None)
            self._pending.pop(place, None)
            if tp.topic == source:
                self._state.drop(tp.partition)
        if self._restore is not None:
            self._restore.cancel([tp.partition for tp in partitions if tp.topic == source])
        if self._standby is not None:
            self._standby.released([tp.partition for tp in partitions if tp.topic == source])
        log.info("revoked %s", ", ".join(f"{tp.topic}[{tp.partition}]" for tp in partitions))
        self._announce_if_ready()

    def _advance_restores(self) -> None:
        if self._restore is None or not self._restore.restoring:
            return
        self._restored(self._restore.step(0.05))
        self._announce_if_ready()

    def _restored(self, partitions: list[int]) -> None:
        """State partitions whose restore ended: processed from now on."""
        source = self._source
        if partitions and source is not None:
            self._owned.update((source, p) for p in partitions)
            self._consumer.resume([TopicPartition(source, p) for p in partitions])

    def _announce_if_ready(self) -> None:
        restoring = self._restore.restoring if self._restore is not None else set()
        if restoring and self._restore is not None:
            self._health.set_ready(
                False,
                f"restoring {len(restoring)} state partitions: {self._restore.progress()}",
            )
            return
        if not self._assigned_once:
            self._health.set_ready(
                False, f"waiting for partitions of group {self._settings.group_id}"
            )
            return
        self._health.set_ready(True)
        if not self._announced:
            self._announced = True
            log.info("%s: %s", WORKER_READY, self._task.name)
