"""End the open transaction of a worker that left the group without ending it.

A worker killed mid-transaction leaves it open: until the coordinator times it
out (``transaction.timeout.ms``, plus up to the broker's abort-check interval)
the last stable offset of every partition it wrote to stays behind it, so the
worker that takes its partitions over restores and answers, but
``read_committed`` readers (clients waiting for results, the sinks, the
restore itself) see nothing new there. With static membership each worker's
``group.instance.id`` is its transactional id, so a survivor knows whose
transaction that is: once the group has dropped the member (its session
expired) and this worker is handed partitions, the member's transactional id is
taken over once (``init_transactions`` aborts the open transaction and fences
its producer) and its strays closed (``processors.strays``), then let go.

The group is described every ``REFRESH_S`` to learn its members' names, and
again after each assignment of this worker, on a thread of its own so the
loop never waits. Only members seen before and missing from a *stable* group
are taken over: a member still in the group (a static member restarting within
its session) keeps its transaction. Fencing a member that is in fact alive (one
frozen past its session) is what exactly-once wants: its next commit fails and
it starts again from the committed offsets. When the take-over cannot be done
(a coordinator away), the transaction timeout still ends the transaction.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from confluent_kafka import ConsumerGroupState, KafkaException, Producer
from confluent_kafka.admin import AdminClient

from core.kafka_logs import served
from core.settings import KafkaConfig
from processors.strays import Strays, close_strays

log = logging.getLogger("cqrs.departed")
REFRESH_S = 5.0
STABLE_WAIT_S = 30.0  # after an assignment: how long the group may take to settle
ATTEMPT_S = 5.0
TAKE_OVER_S = 30.0  # one member's take-over, every retry included


def departed(known: set[str], members: set[str], me: str) -> set[str]:
    """The static names seen before that the group no longer has (never this worker)."""
    return known - members - {me}


@dataclass(frozen=True)
class Departures:
    kafka: KafkaConfig  # connection and security
    group_id: str
    me: str  # this worker's group.instance.id, which is also its transactional id
    strays: Strays  # what a take-over closes, as a new producer of the member would
    transaction_timeout_s: float


class DepartedMembers:
    """Learns the group's static members and takes over the transactional ids of those
    that departed when this worker is handed partitions."""

    def __init__(self, departures: Departures) -> None:
        self._departures = departures
        self._known: set[str] = set()
        self._requests: queue.Queue[bool | None] = queue.Queue()  # True: after an assignment
        self._admin: AdminClient | None = None
        self._thread = threading.Thread(target=self._run, name="departed-members", daemon=True)
        self._thread.start()

    def assigned(self) -> None:
        """This worker was handed partitions: whoever left the group is taken over."""
        self._requests.put(True)

    def close(self) -> None:
        self._requests.put(None)
        self._thread.join(TAKE_OVER_S)

    def _run(self) -> None:
        while True:
            try:
                request = self._requests.get(timeout=REFRESH_S)
            except queue.Empty:
                request = False
            if request is None:
                return
            try:
                self._observe(take_over=request)
            except Exception:  # the thread must live on; the timeout is the fallback
                log.exception("describing group %s failed", self._departures.group_id)

    def _observe(self, take_over: bool) -> None:
        deadline = time.monotonic() + (STABLE_WAIT_S if take_over else 0)
        while True:
            stable, members = self._describe()
            if stable or time.monotonic() >= deadline:
                break
            time.sleep(0.3)
        if not stable:
            # Mid-rebalance a member still in the group may be missing from the list.
            return
        gone = departed(self._known, members, self._departures.me) if take_over else set()
        for name in sorted(gone):
            self._take_over(name)
        self._known = (self._known | members) - gone

    def _describe(self) -> tuple[bool, set[str]]:
        if self._admin is None:
            self._admin = served(AdminClient(self._departures.kafka))
        group = self._departures.group_id
        try:
            future = self._admin.describe_consumer_groups([group], request_timeout=ATTEMPT_S)
            description = future[group].result(timeout=ATTEMPT_S * 2)
        except KafkaException as error:
            self._admin = None  # fresh metadata next time (a broker away, a leader moved)
            log.warning("cannot describe group %s: %s", group, error)
            return False, set()
        names = {m.group_instance_id for m in description.members if m.group_instance_id}
        return description.state == ConsumerGroupState.STABLE, names

    def _take_over(self, name: str) -> None:
        started = time.monotonic()
        deadline = started + TAKE_OVER_S
        producer = Producer(
            {
                **self._departures.kafka,
                "transactional.id": name,
                "transaction.timeout.ms": int(self._departures.transaction_timeout_s * 1000),
                "enable.idempotence": True,
            }
        )
        try:
            _retrying("init_transactions", producer.init_transactions, deadline)
            closed = close_strays(producer, self._departures.strays, _retrying, deadline)
        except KafkaException as error:
            log.warning(
                "could not take over departed member %s (%s); its open transaction ends "
                "at its timeout",
                name,
                error,
            )
            return
        finally:
            producer.flush(1)
        log.info(
            "took over departed member %s: its open transaction aborted, %d partitions "
            "closed, in %.2fs",
            name,
            closed,
            time.monotonic() - started,
        )


def _retrying(what: str, call: Callable[[float], object], deadline: float) -> None:
    while True:
        try:
            call(max(0.1, min(ATTEMPT_S, deadline - time.monotonic())))
            return
        except KafkaException as exception:
            error = exception.args[0]
            if not error.retriable() or time.monotonic() >= deadline:
                raise
            log.debug("%s for a departed member failed (%s); retrying", what, error)
            time.sleep(0.2)
