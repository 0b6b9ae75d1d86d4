"""Warm standby copies of state partitions that other workers own, kept in the local store.

With ``CQRS_PROCESSOR__STANDBY_REPLICAS=R`` (and the ``sqlite://`` store) a worker
follows, besides its own partitions, the changelog of partitions other workers
own: each partition has ``R`` followers, chosen among the group's members by
rendezvous hashing of the partition with each member's static name (its
``group.instance.id``), so every worker makes the same choice from the same
description of the group, with no protocol of its own. Following a partition is
writing the changelog's committed records into the local store, with the offset
reached, batch by batch (``LocalStore.apply``: entries and position in one
SQLite transaction). When a followed partition is assigned to this worker, its
restore (``processors.changelog``) finds the store a few records behind the
changelog's end and reads only those: a failover promotes the standby instead
of restoring the partition.

The group is described every ``REFRESH_S`` and soon after each rebalance of this
worker; the description is asked for asynchronously and picked up by ``step``,
which the worker's loop calls between batches, so the loop never waits for it.
Which worker takes a dead member's partitions is the group assignor's choice:
with ``R`` = workers - 1 it is always a follower; with fewer it may be one
without a copy, which then restores as before.

Each followed partition's lag (records between its position and the end of the
changelog) is the ``cqrs_standby_lag_records`` gauge; ``cqrs_standby_ready`` is
1 once it is within ``READY_LAG`` records.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import time
from collections import defaultdict
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient

from core.kafka_logs import served
from core.metrics import STANDBY_LAG_RECORDS, STANDBY_READY
from core.settings import KafkaConfig
from processors.local_store import LocalStore

log = logging.getLogger("cqrs.standby")
REFRESH_S = 5.0
SOON_S = 1.0  # after a rebalance of this worker: the group's new assignment
READY_LAG = 1_000
FOLLOW_BATCH = 5_000


def followers(partition: int, owner: str, members: list[str], replicas: int) -> list[str]:
    """The members that keep a standby copy of ``partition``: the ``replicas`` best
    ranked by rendezvous hashing, never its owner."""

    def rank(member: str) -> bytes:
        return hashlib.sha256(f"{member}/{partition}".encode()).digest()

    return sorted((m for m in members if m != owner), key=rank, reverse=True)[:replicas]


def owners(description: Any, source: str) -> tuple[list[str], dict[int, str]]:
    """The group's members (by static name) and the owner of each ``source`` partition."""
    members: list[str] = []
    owned: dict[int, str] = {}
    for member in description.members:
        name = member.group_instance_id or member.member_id
        members.append(name)
        for tp in member.assignment.topic_partitions:
            if tp.topic == source:
                owned[tp.partition] = name
    return members, owned


@dataclass
class StandbyFollower:
    """Keeps this worker's standby partitions of one changelog current in the store."""

    changelog: str
    source: str  # the input topic whose partitions own the state
    group_id: str
    me: str  # this worker's group.instance.id
    replicas: int
    kafka: KafkaConfig
    store: LocalStore
    delete_retention_s: float = 86_400.0
    _active: set[int] = field(default_factory=set)  # owned or restoring here: never followed
    _following: dict[int, int] = field(default_factory=dict)  # partition -> next offset
    _caught_up: set[int] = field(default_factory=set)
    _consumer: Consumer | None = None
    _admin: AdminClient | None = None
    _asked: Future[Any] | None = None
    _next_refresh: float = 0.0

    @property
    def following(self) -> set[int]:
        return set(self._following)

    # -- the loop's rebalances -------------------------------------------------------

    def owned(self, partitions: list[int]) -> None:
        """These partitions are now this worker's: stop following them (before their
        restore reads the store, which then holds everything followed so far)."""
        self._active.update(partitions)
        self._unfollow([p for p in partitions if p in self._following], promoted=True)
        self._refresh_soon()

    def released(self, partitions: list[int]) -> None:
        """These partitions moved away: they may be followed from now on."""
        self._active.difference_update(partitions)
        self._refresh_soon()

    def _refresh_soon(self) -> None:
        self._next_refresh = min(self._next_refresh, time.monotonic() + SOON_S)

    # -- following --------------------------------------------------------------------

    def step(self) -> None:
        """Pick up the group's description when it is there; read what the followed
        changelog partitions hold now, without waiting."""
        self._describe()
        if not self._following or self._consumer is None:
            return
        batches: dict[int, dict[bytes, bytes | None]] = defaultdict(dict)
        positions: dict[int, int] = {}
        for message in self._consumer.consume(FOLLOW_BATCH, 0):
            partition = message.partition()
            error = message.error()
            if partition is None or partition not in self._following:
                continue
            if error is not None:
                self._follow_error(partition, error)
                continue
            key = message.key()
            if key is not None:
                batches[partition][key] = message.value()
            positions[partition] = (message.offset() or 0) + 1
        if positions:
            self.store.apply(dict(batches), positions)
            self._following.update(positions)
        self._measure()

    def _follow_error(self, partition: int, error: KafkaError) -> None:
        if error.code() == KafkaError._PARTITION_EOF:
            return
        if error.code() in (KafkaError.OFFSET_OUT_OF_RANGE, KafkaError._AUTO_OFFSET_RESET):
            # The stored position is not in the log any more: follow from the beginning.
            log.warning(
                "standby %s[%d]: %s; following it from the beginning",
                self.changelog,
                partition,
                error,
            )
            self._unfollow([partition])
            self.store.forget(partition)
            self._follow([partition])
            return
        if error.fatal():
            raise KafkaException(error)
        log.warning("standby %s[%d]: %s", self.changelog, partition, error)

    def _measure(self) -> None:
        assert self._consumer is not None
        for partition, position in self._following.items():
            try:
                _, end = self._consumer.get_watermark_offsets(
                    TopicPartition(self.changelog, partition), cached=True
                )
            except KafkaException:
                continue
            if end < 0:
                continue
            lag = max(0, end - position)
            labels = (self.changelog, str(partition))
            STANDBY_LAG_RECORDS.labels(*labels).set(lag)
            ready = lag <= READY_LAG
            STANDBY_READY.labels(*labels).set(1 if ready else 0)
            if ready and partition not in self._caught_up:
                self._caught_up.add(partition)
                log.info(
                    "standby %s[%d] caught up (%d records behind)", self.changelog, partition, lag
                )

    def _follow(self, partitions: list[int]) -> None:
        assignments = []
        for partition in partitions:
            position = self.store.position(partition)
            # Younger than the tombstones' retention (else a deletion may have been
            # compacted away unseen); an offset outside the log is the broker's error.
            fresh = position is not None and time.time() - position.written_at < (
                self.delete_retention_s
            )
            if not fresh:
                self.store.forget(partition)
            start = position.next_offset if fresh and position is not None else OFFSET_BEGINNING
            self._following[partition] = max(0, start)
            assignments.append(TopicPartition(self.changelog, partition, start))
        if assignments:
            self._reader().incremental_assign(assignments)
            log.info("standby for %s partitions %s", self.changelog, sorted(partitions))

    def _unfollow(self, partitions: list[int], promoted: bool = False) -> None:
        if not partitions:
            return
        for partition in partitions:
            position = self._following.pop(partition)
            self._caught_up.discard(partition)
            for gauge in (STANDBY_LAG_RECORDS, STANDBY_READY):
                with contextlib.suppress(KeyError):  # not measured yet
                    gauge.remove(self.changelog, str(partition))
            if promoted:
                log.info(
                    "standby %s[%d] promoted at offset %d", self.changelog, partition, position
                )
        if self._consumer is not None:
            self._consumer.incremental_unassign(
                [TopicPartition(self.changelog, p) for p in partitions]
            )

    # -- the group ----------------------------------------------------------------------

    def _describe(self) -> None:
        now = time.monotonic()
        if self._asked is None:
            if now < self._next_refresh:
                return
            self._next_refresh = now + REFRESH_S
            if self._admin is None:
                self._admin = served(AdminClient(self.kafka))
            futures = self._admin.describe_consumer_groups([self.group_id], request_timeout=5)
            self._asked = futures[self.group_id]
            return
        if not self._asked.done():
            return
        asked, self._asked = self._asked, None
        try:
            description = asked.result()
        except KafkaException as error:
            self._admin = None  # fresh metadata next time (a broker away, a leader moved)
            log.warning("cannot describe group %s (%s); standbys unchanged", self.group_id, error)
            return
        members, owned = owners(description, self.source)
        wanted = {
            partition
            for partition, owner in owned.items()
            if partition not in self._active
            and self.me in followers(partition, owner, members, self.replicas)
        }
        unowned = set(self._following) - set(owned)  # mid-rebalance: kept as they are
        self._unfollow(sorted(set(self._following) - wanted - unowned))
        self._follow(sorted(wanted - set(self._following)))

    def _reader(self) -> Consumer:
        if self._consumer is None:
            self._consumer = Consumer(
                {
                    **self.kafka,
                    "group.id": f"{self.changelog}-standby",  # never joined, never committed
                    "enable.auto.commit": False,
                    "enable.partition.eof": False,
                    "isolation.level": "read_committed",
                    "auto.offset.reset": "error",
                    "fetch.wait.max.ms": 100,
                }
            )
        return self._consumer

    def close(self) -> None:
        if self._consumer is not None:
            self._consumer.close()
            self._consumer = None
