"""Rebuild the command processor's aggregate table from the event log.

The ``events`` topic is the source of truth; the worker's table is a snapshot
cache of it. ``rebuild`` folds every aggregate's events with the domain's
``evolve`` (the same function the processor uses) and restores each
aggregate's idempotency window from ``command-results``: the last results, as
sent, of the commands that were decided (accepted, or rejected by the
aggregate) — the results that answered undecodable records are not part of any
aggregate. Results age out of ``command-results`` after its retention; so does
the window.

``cqrs replay state`` compares the rebuilt records with the live table
(its changelog) and, with ``--write``, replaces the changelog's content while
no worker runs, so the next worker restores the rebuilt state.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple, Protocol, cast

from confluent_kafka import Consumer, KafkaError, Message, Producer, TopicPartition
from confluent_kafka.admin import AdminClient

from core.domain import Writer, load_domain
from core.errors import PipelineError
from core.kafka_logs import served
from core.settings import Settings
from processors.command_processing import AggregateRecord, apply_writes, window_writes
from processors.command_task import changelog_topic as _changelog_of
from processors.messages import MessageTypes
from processors.partitioning import partition_for
from processors.structs import build
from processors.table_keys import SLOT, aggregate_id, parse, record_key
from schemas.serde import AvroSerde, Decoded
from schemas.topic_admin import writer_topic_names


class Progress(Protocol):
    """Where reading reports how far it is (the CLI's bar with rate and ETA)."""

    def phase(self, description: str, total: int) -> None: ...

    def advance(self, records: int) -> None: ...


@dataclass(frozen=True)
class Difference:
    key: str
    live: dict[str, Any] | None
    rebuilt: dict[str, Any] | None


class TableEntry(NamedTuple):
    aggregate_id: str  # decides the changelog partition
    value: bytes


RebuiltTable = dict[str, TableEntry]


def changelog_topic(settings: Settings, writer: Writer) -> str:
    """The table changelog of one of the domain's command processors."""
    return _changelog_of(writer.app_id(settings.processor.app_id))


def rebuild(
    types: MessageTypes,
    events: Iterable[Decoded],
    results: Iterable[tuple[Decoded, bytes]],
    dedup_window: int,
) -> RebuiltTable:
    """The table (by key) from events in log order and the command results as sent.

    A result sent again for a repeated command (the same bytes) is not a second decision.
    """
    records: dict[str, AggregateRecord] = {}
    aggregate_ids: dict[str, str] = {}
    for decoded in events:
        kind, event_class = types.events[decoded.full_name]
        metadata = decoded.value["metadata"]
        key = record_key(kind.name, metadata["aggregate_id"]).decode()
        record = records.get(key) or AggregateRecord(kind.name, 0, kind.initial)
        if metadata["sequence"] != record.version + 1:
            raise PipelineError(
                f"events of {key} are not gap-free: sequence {metadata['sequence']} "
                f"follows version {record.version}"
            )
        payload = {k: v for k, v in decoded.value.items() if k != "metadata"}
        state = kind.evolve(record.state, build(event_class, payload))
        records[key] = record._replace(version=record.version + 1, state=state)
        aggregate_ids[key] = metadata["aggregate_id"]
    decided: dict[str, list[tuple[str, bytes]]] = {}  # aggregate key -> (command id, result)
    sent: set[bytes] = set()
    for result, raw in sorted(_decided(results), key=lambda pair: pair[0]["processed_at"]):
        if raw in sent or result["command_type"] not in types.commands:
            continue  # sent again, or decided by another writer of the domain
        sent.add(raw)
        kind = types.commands[result["command_type"]][0]
        key = record_key(kind.name, result["aggregate_id"]).decode()
        decided.setdefault(key, []).append((result["command_id"], raw))
        aggregate_ids[key] = result["aggregate_id"]
        if key not in records:  # rejected before any event: a record at version 0
            records[key] = AggregateRecord(kind.name, 0, kind.initial)
    table: RebuiltTable = {}
    for key, record in records.items():
        # The window is laid out by the processor's own writes, replayed in decision order.
        aggregate_key = key.encode()
        entries = {aggregate_key: record.to_bytes()}
        newest: tuple[str, bytes] | None = None
        for number, (command_id, raw) in enumerate(decided.get(key, [])):
            numbered = record._replace(decided=number, last=newest)
            _, writes = window_writes(
                aggregate_key,
                numbered,
                command_id=command_id,
                result=raw,
                table=entries.get,
                window=dedup_window,
            )
            apply_writes(entries, writes)
            newest = (command_id, raw)
        owner = aggregate_ids[key]
        table.update({k.decode(): TableEntry(owner, value) for k, value in entries.items()})
    return table


def _decided(results: Iterable[tuple[Decoded, bytes]]) -> Iterator[tuple[dict[str, Any], bytes]]:
    for decoded, raw in results:
        result = dict(decoded.value)
        rejection = result.get("rejection")
        if result["status"] == "REJECTED" and (rejection or {}).get("current_version") is None:
            continue  # answered a record that never reached an aggregate
        processed_at = result["processed_at"]
        if isinstance(processed_at, datetime):  # compare as epoch milliseconds
            result["processed_at"] = int(processed_at.timestamp() * 1000)
        yield result, raw


def aggregates(table: RebuiltTable) -> int:
    return sum(1 for key in table if parse(key).entry == "record")


def differences(live: dict[str, bytes], rebuilt: RebuiltTable) -> list[Difference]:
    """Records and remembered results that differ. Slot entries only order the window's
    eviction, and results with the same processed_at may share it either way: not compared."""
    found = []
    rebuilt_values = {key: entry.value for key, entry in rebuilt.items()}
    for key in sorted(set(live) | set(rebuilt_values)):
        if parse(key).entry == SLOT:
            continue
        live_value = _shown(key, live.get(key))
        rebuilt_value = _shown(key, rebuilt_values.get(key))
        if live_value != rebuilt_value:
            found.append(Difference(key, live_value, rebuilt_value))
    return found


def _shown(key: str, value: bytes | None) -> dict[str, Any] | None:
    if value is None:
        return None
    if parse(key).entry == "record":
        return cast(dict[str, Any], json.loads(value))
    return {"result": value.hex()}


def stale_keys(live: dict[str, bytes], rebuilt: RebuiltTable) -> list[str]:
    """Live entries the event log knows nothing about: deleted by ``write_table``."""
    return sorted(set(live) - set(rebuilt))


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


def live_table(
    settings: Settings, writer: Writer, progress: Progress | None = None
) -> dict[str, bytes]:
    """The table as the workers would restore it: the latest changelog value per key."""
    table: dict[str, bytes] = {}
    for message in read_committed(settings, changelog_topic(settings, writer), progress):
        key, value = (message.key() or b"").decode(), message.value()
        if value is None:
            table.pop(key, None)
        else:
            table[key] = value
    return table


def rebuilt_table(
    settings: Settings, serde: AvroSerde, writer: Writer, progress: Progress | None = None
) -> RebuiltTable:
    """One writer's table, from its events and the results of its commands."""
    topics = writer_topic_names(settings, writer)
    # Events of one aggregate share a partition, so partition order is their log order.
    events = decoded(serde, read_committed(settings, topics["events"], progress))
    results = [
        (serde.decode(raw), raw)
        for message in read_committed(settings, topics["command-results"], progress)
        if (raw := message.value())
    ]
    types = MessageTypes(load_domain(settings.domain), writer.aggregates)
    return rebuild(types, events, results, settings.processor.dedup_window)


def write_table(
    settings: Settings, writer: Writer, table: RebuiltTable, stale: Iterable[str]
) -> None:
    """Replace the changelog's content in one transaction; refuses while a worker runs."""
    group = writer.app_id(settings.processor.app_id)
    admin = served(AdminClient(settings.kafka.confluent_config()))
    [description] = admin.describe_consumer_groups([group]).values()
    members = description.result(timeout=15).members
    if members:
        raise PipelineError(
            f"{len(members)} worker(s) of {group} are running; stop them before --write"
        )
    topic = changelog_topic(settings, writer)
    partitions = len(admin.list_topics(topic, timeout=15).topics[topic].partitions)
    producer = Producer(
        {**settings.kafka.confluent_config(), "transactional.id": f"{group}-replay"}
    )
    producer.init_transactions(30)
    producer.begin_transaction()
    for key, entry in table.items():
        producer.produce(
            topic,
            key=key.encode(),
            value=entry.value,
            partition=partition_for(entry.aggregate_id.encode(), partitions),
        )
        producer.poll(0)
    for key in stale:  # tombstones: keys the log knows nothing about
        producer.produce(
            topic,
            key=key.encode(),
            value=None,
            partition=partition_for(aggregate_id(key).encode(), partitions),
        )
    producer.commit_transaction(60)
