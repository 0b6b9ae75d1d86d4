"""A steady stream of commands with retries, and the exactly-once check of what it led to.

The stream registers many aggregates and adjusts their stock at a steady rate;
now and then it retries an earlier command (the same id and bytes) recent enough
to be within the worker's idempotency window. The check:
every aggregate's events are exactly one per command, with sequences 1..n, in
order, and every command has one result per time it was sent, each retry
answered with the original result's bytes.
"""

from __future__ import annotations

import random
import threading
import time
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field

from confluent_kafka import Producer

from tests.integration.pipeline import Pipeline

AGGREGATES = 24
RETRY_EVERY = 10  # one command in ten sent is a retry of an earlier one
# A retry is of one of its aggregate's last RETRY_REACH commands: the worker remembers
# the results of each aggregate's last 1,000 (processor.dedup_window) and decides an
# older one anew, by design. A long fault run sends well over 1,000 per aggregate.
RETRY_REACH = 500


@dataclass
class CommandStream:
    """Registers a set of items, then adjusts their stock at a steady rate until stopped."""

    pipeline: Pipeline
    skus: list[str] = field(default_factory=list)
    sent: dict[str, list[str]] = field(default_factory=dict)  # sku → command ids, in order
    retries: Counter[str] = field(default_factory=Counter)  # command id → times sent again
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    undelivered: int = -1  # set when the sending thread has flushed

    def start(self, per_second: float = 150) -> None:
        self.skus = [f"sku-{uuid.uuid4().hex[:8]}" for _ in range(AGGREGATES)]
        self._thread = threading.Thread(target=self._run, args=(per_second,), daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop sending; every command sent must have reached Kafka."""
        if self._thread is None or self._stop.is_set():
            return
        self._stop.set()
        self._thread.join(30)
        assert self.undelivered == 0, f"{self.undelivered} commands never reached Kafka"

    def _run(self, per_second: float) -> None:
        settings = self.pipeline.settings
        serde = self.pipeline.serde()
        topic = settings.kafka.topic_prefix + "commands"
        producer = Producer(
            {
                **settings.kafka.confluent_config(),
                "partitioner": "murmur2_random",
                "linger.ms": 5,
                # A broker restart must not turn a retried send into a second command.
                "enable.idempotence": True,
            }
        )

        chance = random.Random(len(self.skus))
        earlier: dict[str, list[tuple[str, bytes]]] = defaultdict(list)  # sku → (id, value)

        def send(sku: str, command: str, payload: dict[str, object]) -> None:
            command_id = str(uuid.uuid4())
            metadata = {
                "command_id": command_id,
                "aggregate_id": sku,
                "issued_at": time.time_ns() // 1_000_000,
            }
            value = serde.encode(
                topic, f"cqrs.commands.{command}", {"metadata": metadata, **payload}
            )
            producer.produce(topic, key=sku.encode(), value=value)
            self.sent.setdefault(sku, []).append(command_id)
            earlier[sku].append((command_id, value))

        def retry() -> None:
            sku = chance.choice(self.skus)
            command_id, value = chance.choice(earlier[sku][-RETRY_REACH:])
            producer.produce(topic, key=sku.encode(), value=value)
            self.retries[command_id] += 1

        for sku in self.skus:
            send(sku, "RegisterItem", {"name": sku})
        index = 0
        while not self._stop.is_set():
            sku = self.skus[index % len(self.skus)]
            if index % RETRY_EVERY == RETRY_EVERY - 1:
                retry()
            else:
                send(sku, "AdjustStock", {"delta": 1, "reason": "RESTOCK"})
            index += 1
            producer.poll(0)
            time.sleep(1 / per_second)
        self.undelivered = producer.flush(30)


@dataclass(frozen=True)
class ExactlyOnceReport:
    """What a stream led to, counted: every figure but ``commands`` must be 0."""

    commands: int
    unanswered: int  # commands with fewer results than times sent
    over_answered: int  # commands with more results than times sent
    mismatched_retries: int  # retried commands answered with differing bytes
    duplicate_events: int  # event ids seen more than once
    out_of_sequence: int  # aggregates whose sequences are not 1..n
    events_not_commands: int  # aggregates whose events are not one per command, in order

    @property
    def faults(self) -> int:
        return sum(
            (
                self.unanswered,
                self.over_answered,
                self.mismatched_retries,
                self.duplicate_events,
                self.out_of_sequence,
                self.events_not_commands,
            )
        )


def exactly_once_report(
    pipeline: Pipeline, stream: CommandStream, timeout_s: float = 180
) -> ExactlyOnceReport:
    """Wait (up to ``timeout_s``) for a result for every command record, then count what is
    wrong.

    The commands topic, not the stream's own count, says how often each command was
    sent: a client producer may itself write a record twice when a broker dies under
    it, and each record on the log must get its one answer, the same bytes each time.
    The stream's count only has to be met (nothing it sent was lost)."""
    serde = pipeline.serde()
    every_command = {command for commands in stream.sent.values() for command in commands}
    on_log: Counter[str] = Counter(
        serde.decode(value).value["metadata"]["command_id"]
        for _, value, _ in pipeline.read("commands")
    )
    times_sent = {
        command: max(on_log[command], 1 + stream.retries[command]) for command in every_command
    }

    def results() -> dict[str, list[bytes]]:
        by_command: dict[str, list[bytes]] = defaultdict(list)
        for key, value, _ in pipeline.read("command-results", idle_s=2):
            by_command[key.decode()].append(value)
        return by_command

    answered = results()
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and any(len(answered[c]) < n for c, n in times_sent.items()):
        time.sleep(1)
        answered = results()
    per_aggregate: dict[str, list[tuple[int, str]]] = defaultdict(list)
    event_ids: Counter[str] = Counter()
    for key, value, _ in pipeline.read("events"):
        metadata = serde.decode(value).value["metadata"]
        per_aggregate[key.decode()].append((metadata["sequence"], metadata["command_id"]))
        event_ids[metadata["event_id"]] += 1
    return ExactlyOnceReport(
        commands=len(every_command),
        unanswered=sum(len(answered[c]) < n for c, n in times_sent.items()),
        over_answered=sum(len(answered[c]) > n for c, n in times_sent.items()),
        mismatched_retries=sum(len(set(answered[c])) > 1 for c, n in times_sent.items() if n > 1),
        duplicate_events=sum(1 for n in event_ids.values() if n > 1),
        out_of_sequence=sum(
            [s for s, _ in events] != list(range(1, len(events) + 1))
            for events in per_aggregate.values()
        ),
        # One event per command, in the order the commands were sent: none lost, none
        # twice, none for a retry.
        events_not_commands=sum(
            [c for _, c in per_aggregate[sku]] != commands for sku, commands in stream.sent.items()
        ),
    )


def check_exactly_once(pipeline: Pipeline, stream: CommandStream) -> None:
    assert sum(stream.retries.values()) > 0, "the stream sent no retries"
    report = exactly_once_report(pipeline, stream)
    assert report.faults == 0, f"exactly-once broken: {report}"
