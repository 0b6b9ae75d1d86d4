"""The write side's workload: a round's fresh topics, its backlog of commands, and a drain.

A round creates the product's topics under a prefix of its own (the product's
partition count and configs; the outputs, events and command-results, stamped with
the broker's append time so that every processor is timed by the same clock),
registers the product's schemas for them, and writes a backlog: one RegisterItem
per aggregate, then AdjustStock commands spread over the aggregates, Avro in the
Confluent wire format as any producer of the product sends them.

A drain runs one processor over the backlog and reads its outputs as a
read_committed client. Its rate counts only if the outputs are exactly right: as
many events and as many results as commands, one result per command id, every
command accepted, and each aggregate's versions 1, 2, ... with no gap or repeat
(so its state was read and written for every command).
"""

from __future__ import annotations

import shutil
import tempfile
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from subprocess import Popen
from typing import Any

from confluent_kafka import TIMESTAMP_LOG_APPEND_TIME, Consumer, Message, Producer
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic

from core.settings import Settings
from schemas.catalog import SchemaCatalog
from schemas.registry_client import RegistryClient
from schemas.serde import AvroSerde
from schemas.tooling import register_all
from schemas.topics import topic_specs

SKUS = 200
OUTPUTS = ("events", "command-results")
APPEND_TIME = {"message.timestamp.type": "LogAppendTime"}
GRACE_S = 1.0  # read on after the last expected output, so that duplicates show


@dataclass(frozen=True)
class Child:
    """A processor run as its own process, and where it writes its log."""

    process: Popen[bytes]
    log: Path

    def tail(self, characters: int = 2000) -> str:
        """The end of the log (the round's directory, and the log with it, is removed)."""
        return self.log.read_text(errors="replace")[-characters:]


Processor = Callable[["Round"], AbstractContextManager[Child]]


class Round:
    """Fresh topics, schemas, group names and a state directory for one measurement."""

    def __init__(self, base: Settings, skus: int = SKUS) -> None:
        self.run = f"bench-{uuid.uuid4().hex[:8]}"
        self.prefix = self.run + "-"
        self.state = Path(tempfile.mkdtemp(prefix="cqrs-bench-"))
        self.settings = base.model_copy(
            update={"kafka": base.kafka.model_copy(update={"topic_prefix": self.prefix})}
        )
        self.admin = AdminClient(self.settings.kafka.confluent_config())
        self._create_topics()
        list(register_all(self.settings, SchemaCatalog.for_settings(self.settings)))
        self.serde = AvroSerde(
            RegistryClient(self.settings.registry), SchemaCatalog.for_settings(self.settings)
        )
        self.skus = [f"sku-{index:04d}" for index in range(skus)]

    def topic(self, name: str) -> str:
        return self.prefix + name

    def _create_topics(self) -> None:
        processor = self.settings.processor
        wanted = [
            NewTopic(
                self.topic(spec.name),
                spec.partitions,
                processor.replication_factor,
                config={**spec.config, **(APPEND_TIME if spec.name in OUTPUTS else {})},
            )
            for spec in topic_specs(processor.partitions)
        ]
        for future in self.admin.create_topics(wanted).values():
            future.result(30)
        names = {topic.topic for topic in wanted}
        deadline = time.monotonic() + 30
        while not names <= set(self.admin.list_topics(timeout=15).topics):
            if time.monotonic() > deadline:
                raise RuntimeError(f"topics of {self.run} not visible after 30 s")
            time.sleep(0.2)

    def remove(self) -> None:
        """Delete every topic of the round (the processors' changelogs included, whatever
        their naming: all carry the round's name) and its state directory."""
        mine = [name for name in self.admin.list_topics(timeout=15).topics if self.run in name]
        for future in self.admin.delete_topics(mine).values() if mine else []:
            future.result(60)
        shutil.rmtree(self.state, ignore_errors=True)

    def command(self, sku: str, name: str, payload: dict[str, Any]) -> tuple[str, bytes]:
        command_id = str(uuid.uuid4())
        metadata = {
            "command_id": command_id,
            "aggregate_id": sku,
            "issued_at": time.time_ns() // 1_000_000,
        }
        value = self.serde.encode(
            self.topic("commands"), f"cqrs.commands.{name}", {"metadata": metadata, **payload}
        )
        return command_id, value

    def register(self, sku: str) -> bytes:
        return self.command(sku, "RegisterItem", {"name": sku})[1]

    def adjust(self, sku: str) -> tuple[str, bytes]:
        return self.command(sku, "AdjustStock", {"delta": 1, "reason": "RESTOCK"})

    def producer(self) -> Producer:
        # murmur2, as Kafka's own clients: the product rejects commands placed otherwise.
        config = {"partitioner": "murmur2_random", "linger.ms": 5}
        return Producer({**self.settings.kafka.confluent_config(), **config})

    def produce_backlog(self, count: int) -> None:
        producer = self.producer()
        topic = self.topic("commands")
        for sku in self.skus:
            _produce(producer, topic, sku, self.register(sku))
        for index in range(count - len(self.skus)):
            sku = self.skus[index % len(self.skus)]
            _produce(producer, topic, sku, self.adjust(sku)[1])
        producer.flush(60)

    def consumer(self) -> Consumer:
        return Consumer(
            {
                **self.settings.kafka.confluent_config(),
                "group.id": uuid.uuid4().hex,
                "auto.offset.reset": "earliest",
                "isolation.level": "read_committed",
                "enable.auto.commit": False,
            }
        )


@dataclass
class Outputs:
    """What a processor wrote to events and command-results, as a reader sees it."""

    events: Counter[bytes] = field(default_factory=Counter)  # key -> records
    results: list[tuple[bytes, bytes]] = field(default_factory=list)  # (key, value)
    stamps: list[int] = field(default_factory=list)  # broker append times, ms
    clocks: set[int] = field(default_factory=set)  # timestamp types seen

    def add(self, message: Message, events_topic: str) -> None:
        if message.error():
            return
        kind, stamp = message.timestamp()
        self.clocks.add(kind)
        self.stamps.append(stamp)
        if message.topic() == events_topic:
            self.events[message.key() or b""] += 1
        else:
            self.results.append((message.key() or b"", message.value() or b""))

    def complete(self, count: int) -> bool:
        return sum(self.events.values()) >= count and len(self.results) >= count

    def problems(self, count: int, space: Round) -> list[str]:
        found: list[str] = []
        events = sum(self.events.values())
        if events != count or len(self.results) != count:
            found.append(f"{events} events and {len(self.results)} results for {count} commands")
        if set(self.events) - {sku.encode() for sku in space.skus}:
            found.append("events keyed by something other than their aggregate ids")
        if self.clocks != {TIMESTAMP_LOG_APPEND_TIME}:
            found.append(f"outputs not stamped with the broker's append time: {self.clocks}")
        versions: dict[str, list[int]] = defaultdict(list)
        for key, value in self.results:
            result = space.serde.decode(value).value
            if key.decode() != result["command_id"] or result["status"] != "ACCEPTED":
                found.append(f"result {key!r}: {result['status']} {result['rejection']}")
                break
            versions[result["aggregate_id"]].append(result["version"])
        if len({key for key, _ in self.results}) != len(self.results):
            found.append("more than one result for a command id")
        for aggregate, seen in versions.items():
            if sorted(seen) != list(range(1, len(seen) + 1)):
                found.append(f"{aggregate}: versions {sorted(seen)[:8]}... are not 1..{len(seen)}")
                break
        return found

    def rate(self, count: int) -> float:
        """Commands per second from the first output to the last."""
        return (count - 1) / ((max(self.stamps) - min(self.stamps)) / 1000)


def drain(space: Round, count: int, processor: Processor, name: str) -> float:
    """Commands/s of ``processor`` draining a backlog of ``count`` commands, once its outputs
    are verified; RuntimeError (with the processor's log) when they are not."""
    space.produce_backlog(count)
    events_topic = space.topic("events")
    consumer = space.consumer()
    consumer.subscribe([events_topic, space.topic("command-results")])
    outputs = Outputs()
    deadline = time.monotonic() + 120 + count / 100
    with processor(space) as child:
        for message in _until(consumer, lambda: outputs.complete(count), child, deadline):
            outputs.add(message, events_topic)
        grace = time.monotonic() + GRACE_S
        for message in _until(consumer, lambda: time.monotonic() > grace, child, deadline):
            outputs.add(message, events_topic)
    consumer.close()
    problems = outputs.problems(count, space)
    if problems:
        raise RuntimeError(f"{name}: {'; '.join(problems)}:\n{child.tail()}")
    return outputs.rate(count)


def _until(
    consumer: Consumer, done: Callable[[], bool], child: Child, deadline: float
) -> Iterator[Message]:
    while not done():
        if child.process.poll() is not None:
            raise RuntimeError(f"exited with {child.process.returncode}:\n{child.tail()}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"outputs incomplete at the deadline:\n{child.tail()}")
        yield from consumer.consume(1000, 0.2)


def _produce(producer: Producer, topic: str, key: str, value: bytes) -> None:
    """Produce, waiting for deliveries while librdkafka's queue is full (a million
    commands are more than it holds)."""
    while True:
        try:
            producer.produce(topic, key=key, value=value)
            producer.poll(0)
            return
        except BufferError:
            producer.poll(0.1)
