"""Rebuild the command processor's aggregate table from the event log.

The ``events`` topic is the source of truth; the Faust table is a snapshot
cache of it. ``rebuild`` folds every aggregate's events with the domain's
``evolve`` (the same function the processor uses) and restores each
aggregate's idempotency window from ``command-results``: every result of a
command that was decided (accepted, or rejected by the aggregate) — the
results that answered undecodable records are not part of any aggregate.
Results age out of ``command-results`` after its retention; so does the window.

``cqrs replay state`` compares the rebuilt records with the live table
(its changelog) and, with ``--write``, replaces the changelog's content while
no worker runs, so the next worker restores the rebuilt state.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from confluent_kafka import Consumer, KafkaError, Message, Producer, TopicPartition
from confluent_kafka.admin import AdminClient

from cqrs.errors import PipelineError
from cqrs.settings import Settings
from processors.command_agent import TABLE_NAME
from processors.command_processing import AggregateRecord
from processors.messages import COMMAND_TYPES, EVENT_TYPES
from processors.partitioning import partition_for
from processors.structs import build
from processors.topic_admin import topic_names
from schemas.serde import AvroSerde, Decoded


class Progress(Protocol):
    """Where reading reports how far it is (the CLI's bar with rate and ETA)."""

    def phase(self, description: str, total: int) -> None: ...

    def advance(self, records: int) -> None: ...


@dataclass(frozen=True)
class Difference:
    key: str
    live: dict[str, Any] | None
    rebuilt: dict[str, Any] | None


def changelog_topic(settings: Settings) -> str:
    """Faust names a table's changelog ``<app id>-<table>-changelog``."""
    return f"{settings.processor.app_id}-{TABLE_NAME}-changelog"


def rebuild(
    events: Iterable[Decoded], results: Iterable[Decoded], dedup_window: int
) -> dict[str, AggregateRecord]:
    """Aggregate records (by table key) from events in log order and command results."""
    records: dict[str, AggregateRecord] = {}
    for decoded in events:
        kind, event_class = EVENT_TYPES[decoded.full_name]
        metadata = decoded.value["metadata"]
        key = f"{kind.name}:{metadata['aggregate_id']}"
        record = records.get(key) or AggregateRecord(kind.name, 0, kind.initial)
        if metadata["sequence"] != record.version + 1:
            raise PipelineError(
                f"events of {key} are not gap-free: sequence {metadata['sequence']} "
                f"follows version {record.version}"
            )
        payload = {k: v for k, v in decoded.value.items() if k != "metadata"}
        state = kind.evolve(record.state, build(event_class, payload))
        records[key] = AggregateRecord(kind.name, record.version + 1, state, record.recent)
    for result in sorted(_decided(results), key=lambda r: r["processed_at"]):
        kind = COMMAND_TYPES[result["command_type"]][0]
        key = f"{kind.name}:{result['aggregate_id']}"
        record = records.get(key) or AggregateRecord(kind.name, 0, kind.initial)
        recent = {**record.recent, result["command_id"]: result}
        while len(recent) > dedup_window:
            recent.pop(next(iter(recent)))
        records[key] = AggregateRecord(record.kind, record.version, record.state, recent)
    return records


def _decided(results: Iterable[Decoded]) -> Iterator[dict[str, Any]]:
    for decoded in results:
        result = dict(decoded.value)
        rejection = result.get("rejection")
        if result["status"] == "REJECTED" and (rejection or {}).get("current_version") is None:
            continue  # answered a record that never reached an aggregate
        processed_at = result["processed_at"]
        if isinstance(processed_at, datetime):  # stored as epoch milliseconds, as live
            result["processed_at"] = int(processed_at.timestamp() * 1000)
        yield result


def differences(live: dict[str, bytes], rebuilt: dict[str, AggregateRecord]) -> list[Difference]:
    found = []
    for key in sorted(set(live) | set(rebuilt)):
        live_value = json.loads(live[key]) if key in live else None
        rebuilt_value = json.loads(rebuilt[key].to_bytes()) if key in rebuilt else None
        if live_value != rebuilt_value:
            found.append(Difference(key, live_value, rebuilt_value))
    return found


# -- Kafka edges ------------------------------------------------------------------


class _Unreported:
    def phase(self, description: str, total: int) -> None:
        pass

    def advance(self, records: int) -> None:
        pass


def read_committed(
    settings: Settings, topic: str, progress: Progress | None = None
) -> Iterator[Message]:
    """Every committed record of ``topic`` up to its current end, partition by partition."""
    progress = progress or _Unreported()
    consumer = Consumer(
        {
            **settings.kafka.confluent_config(),
            "group.id": f"{settings.processor.app_id}-replay",
            "enable.auto.commit": False,
            "isolation.level": "read_committed",
            "enable.partition.eof": True,
        }
    )
    try:
        ranges = _non_empty_partitions(consumer, topic)
        progress.phase(f"reading {topic}", sum(high - low for low, high in ranges.values()))
        unreported = 0
        for partition, (low, high) in ranges.items():
            consumer.assign([TopicPartition(topic, partition, low)])
            while True:
                message = consumer.poll(5)
                if message is None:
                    raise PipelineError(f"reading {topic}[{partition}] stalled; is Kafka up?")
                error = message.error()
                if error is not None and error.code() == KafkaError._PARTITION_EOF:
                    break
                if error is not None:
                    raise PipelineError(f"reading {topic}[{partition}]: {error.str()}")
                yield message
                unreported += 1
                if unreported == 1000:
                    progress.advance(unreported)
                    unreported = 0
                if (message.offset() or 0) >= high - 1:
                    break
        progress.advance(unreported)
    finally:
        consumer.close()


def _non_empty_partitions(consumer: Consumer, topic: str) -> dict[int, tuple[int, int]]:
    """Low and high watermark of each partition that holds records now."""
    metadata = consumer.list_topics(topic, timeout=15).topics.get(topic)
    if metadata is None or metadata.error is not None:
        raise PipelineError(f"topic {topic} does not exist; nothing to replay from")
    ranges = {}
    for partition in sorted(metadata.partitions):
        low, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), 15)
        if high > low:
            ranges[partition] = (low, high)
    return ranges


def decoded(serde: AvroSerde, messages: Iterable[Message]) -> Iterator[Decoded]:
    for message in messages:
        value = message.value()
        if value:
            yield serde.decode(value)


def live_table(settings: Settings, progress: Progress | None = None) -> dict[str, bytes]:
    """The table as the workers would restore it: the latest changelog value per key."""
    table: dict[str, bytes] = {}
    for message in read_committed(settings, changelog_topic(settings), progress):
        key, value = (message.key() or b"").decode(), message.value()
        if value is None:
            table.pop(key, None)
        else:
            table[key] = value
    return table


def rebuilt_table(
    settings: Settings, serde: AvroSerde, progress: Progress | None = None
) -> dict[str, AggregateRecord]:
    topics = topic_names(settings)
    # Events of one aggregate share a partition, so partition order is their log order.
    events = decoded(serde, read_committed(settings, topics["events"], progress))
    results = list(decoded(serde, read_committed(settings, topics["command-results"], progress)))
    return rebuild(events, results, settings.processor.dedup_window)


def write_table(
    settings: Settings, records: dict[str, AggregateRecord], stale: Iterable[str]
) -> None:
    """Replace the changelog's content in one transaction; refuses while a worker runs."""
    group = settings.processor.app_id
    admin = AdminClient(settings.kafka.confluent_config())
    [description] = admin.describe_consumer_groups([group]).values()
    members = description.result(timeout=15).members
    if members:
        raise PipelineError(
            f"{len(members)} worker(s) of {group} are running; stop them before --write"
        )
    topic = changelog_topic(settings)
    partitions = len(admin.list_topics(topic, timeout=15).topics[topic].partitions)
    producer = Producer(
        {**settings.kafka.confluent_config(), "transactional.id": f"{group}-replay"}
    )
    producer.init_transactions(30)
    producer.begin_transaction()
    for key, record in records.items():
        aggregate_id = key.split(":", 1)[1]
        producer.produce(
            topic,
            key=key.encode(),
            value=record.to_bytes(),
            partition=partition_for(aggregate_id.encode(), partitions),
        )
    for key in stale:  # tombstones: keys the log knows nothing about
        aggregate_id = key.split(":", 1)[1]
        producer.produce(
            topic,
            key=key.encode(),
            value=None,
            partition=partition_for(aggregate_id.encode(), partitions),
        )
    producer.commit_transaction(60)
