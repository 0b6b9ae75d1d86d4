"""The search sink: a projection's documents in the index, bulk-written, versioned.

It runs any ``SearchProjection`` (``sinks.search.projection``); the shop's
``search-orders`` is one. How a document is built from several events,
correctly under redelivery and restarts:

- Every write is a whole document with ``version_type=external`` and
  ``version`` = the aggregate version (the event's ``sequence``). The engine
  keeps a write only if its version is higher than the stored one, so a late,
  repeated or concurrent (zombie) write can never replace newer data; the 409
  it gets back is the expected idempotent outcome, not an error.
- Partial or scripted updates cannot be combined with external versioning, so
  the sink folds events into full documents itself. The index is the fold's
  memory: each document holds the whole state of its aggregate and its
  version. For a document whose changes in a batch start at sequence 1, the
  document is fully determined by the batch; otherwise the sink starts from
  its cached copy or reads the current document (real-time ``mget``) and
  applies only events with a higher sequence. After a restart the cache is
  empty and the index answers; events at or below the stored version are
  skipped.
- The cache (``search.document_cache_size`` documents, LRU) holds documents
  as written; it is dropped on any partition revocation (another process may
  write those documents meanwhile) and entries are dropped on 409 or refusal.
- All events of one document in a batch become one write (the last state).

Per-document bulk outcomes: 2xx applied; 409 already newer; 404/408/429/5xx
retryable (the whole batch is retried, applied documents then answer 409);
any other refusal (a 400 mapping error) sends that document's events of the
batch to ``events-dlq`` and the sink goes on, as does an event the projection
cannot apply (its ``InvalidEventError``).
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from typing import Any, Protocol

from confluent_kafka import Consumer, Message, TopicPartition

from core.errors import DocumentRefusedError, InvalidEventError, SinkError
from core.metrics import SINK_ERRORS, count_dead_letter
from core.settings import Settings
from schemas.dead_letters import headers_of
from sinks.base import BatchingSink, Entry, EventRecord, Partition, SinkBatch
from sinks.dead_letter import DeadLetterPublisher
from sinks.search.backend import (
    BulkItemResult,
    IndexOperation,
    SearchBackend,
    open_backend,
)
from sinks.search.index import SearchIndex
from sinks.search.projection import Fold, SearchProjection, fold

log = logging.getLogger("cqrs.sinks.search")
Change = Any  # a projection's change (sinks.search.projection.Change)
Document = Any  # a projection's document


class RefusedEvents(Protocol):
    """Where events go that can never be indexed."""

    def refuse(self, entry: Entry[Change], error: InvalidEventError) -> None: ...

    def flush(self) -> None:
        """Make refusals durable; called before ``write`` returns."""

    def close(self) -> None: ...


class DocumentCache:
    """The last written documents, least recently used dropped first.

    Locked: the writer thread reads and fills it while a rebalance may clear it.
    """

    def __init__(self, capacity: int) -> None:
        self._capacity = capacity
        self._documents: OrderedDict[str, Document] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, document_id: str) -> Document | None:
        with self._lock:
            found = self._documents.get(document_id)
            if found is not None:
                self._documents.move_to_end(document_id)
            return found

    def put(self, document: Document) -> None:
        if self._capacity <= 0:
            return
        with self._lock:
            self._documents[document.document_id] = document
            self._documents.move_to_end(document.document_id)
            while len(self._documents) > self._capacity:
                self._documents.popitem(last=False)

    def drop(self, document_id: str) -> None:
        with self._lock:
            self._documents.pop(document_id, None)

    def clear(self) -> None:
        with self._lock:
            self._documents.clear()

    def __len__(self) -> int:
        return len(self._documents)


class SearchSink(BatchingSink[Change]):
    """Writes a projection's documents through the alias (live) or into one index (rebuild)."""

    # Writes run in the runner's writer thread while the next batch is consumed and
    # decoded: conversion is pure, the cache is locked, and everything else a write
    # touches belongs to the one write in flight.
    concurrent_flush = True

    def __init__(
        self,
        projection: SearchProjection[Any, Any],
        settings: Settings,
        backend: SearchBackend,
        refused: RefusedEvents,
        *,
        target_index: str | None = None,
    ) -> None:
        super().__init__()
        self.projection_of = projection
        self.projection = projection.name
        self.event_types = projection.event_types
        self._search = settings.search
        self._backend = backend
        self._refused = refused
        self._index = SearchIndex(backend, settings.search, projection)
        self._target = target_index or self._index.alias
        self._through_alias = target_index is None
        self._cache = DocumentCache(settings.search.document_cache_size)
        # Refused records of the batch under way: a retried write refuses them once only.
        self._refused_records: set[tuple[str, int, int]] = set()
        self._bulk_pool = ThreadPoolExecutor(
            settings.search.bulk_concurrency, thread_name_prefix="search-bulk"
        )

    @property
    def target(self) -> str:
        return self._target

    def setup(self) -> None:
        engine = self._backend.info()
        if engine.distribution != self._search.engine:
            raise SinkError(
                f"CQRS_SEARCH__ENGINE is {self._search.engine} but {engine.distribution} "
                f"{engine.version} answers; set the engine that runs there",
                retryable=False,
            )
        if self._through_alias:
            live = self._index.ensure()
            log.info("search sink writes through alias %s (now %s)", self._target, live)

    def convert(self, record: EventRecord) -> Change | None:
        return self.projection_of.convert(record)

    def write(self, batch: SinkBatch[Change]) -> None:
        """Fold and index the batch in chunks of documents, one chunk's reads and folding
        overlapping the bulk requests of the chunks before it."""
        by_document: dict[str, list[Entry[Change]]] = {}
        for entry in batch.entries:
            by_document.setdefault(entry.item.document_id, []).append(entry)
        ids = list(by_document)
        size = self._search.bulk_max_actions
        in_flight: list[tuple[dict[str, Fold[Any, Any]], Future[list[BulkItemResult]]]] = []
        try:
            for start in range(0, len(ids), size):
                chunk = {key: by_document[key] for key in ids[start : start + size]}
                changed = self._fold(chunk)
                if changed:
                    in_flight.append((changed, self._bulk_pool.submit(self._bulk, changed)))
        finally:
            wait([future for _, future in in_flight])  # no write outlives a failed batch
        retry = [
            failure
            for changed, future in in_flight
            for outcome in future.result()  # raises the chunk's SinkError, if any
            for failure in self._settle(changed[outcome.doc_id], outcome)
        ]
        self._refused.flush()
        if retry:
            first = retry[0]
            raise SinkError(
                f"{len(retry)} documents not indexed into {self._target} (first: HTTP "
                f"{first.status} {first.error_type}: {first.reason}); retrying",
                retryable=True,
            )
        self._refused_records.clear()

    def _fold(self, chunk: Mapping[str, Sequence[Entry[Change]]]) -> dict[str, Fold[Any, Any]]:
        """The folds of a chunk of documents that change one; refusals recorded."""
        stored = self._starting_documents(chunk)
        changed: dict[str, Fold[Any, Any]] = {}
        for document_id, entries in chunk.items():
            result = fold(self.projection_of, stored.get(document_id), entries)
            for entry, error in result.rejected:
                self._refuse(entry, error)
            if result.gaps:
                log.warning(
                    "%s %s: sequence gap(s) %s (events dead-lettered earlier?); indexing "
                    "the later state",
                    self.projection,
                    document_id,
                    result.gaps,
                )
            if result.changed:
                changed[document_id] = result
        return changed

    def revoke(self, partitions: Iterable[Partition]) -> None:
        super().revoke(list(partitions))
        # Another process may write these documents now: a cached copy could go stale.
        self._cache.clear()

    def close(self) -> None:
        self._bulk_pool.shutdown(wait=True)
        self._refused.close()
        self._backend.close()

    # -- reading what the index holds ------------------------------------------------------

    def _starting_documents(
        self, by_document: Mapping[str, Sequence[Entry[Change]]]
    ) -> dict[str, Document]:
        """The document each one's changes apply to (absent when the batch starts it)."""
        start: dict[str, Document] = {}
        to_read: list[str] = []
        for document_id, entries in by_document.items():
            first = min(entry.item.sequence for entry in entries)
            if first == 1:
                continue  # the batch starts the document: the fold needs nothing stored
            cached = self._cache.get(document_id)
            if cached is not None and cached.version >= first - 1:
                start[document_id] = cached
            else:
                to_read.append(document_id)
        if to_read:
            found = self._backend.get_documents(self._target, to_read)
            for document_id, document in found.items():
                start[document_id] = self.projection_of.from_source(document.source)
        return start

    # -- writing -----------------------------------------------------------------------------

    def _bulk(self, changed: Mapping[str, Fold[Any, Any]]) -> list[BulkItemResult]:
        """One bulk request (run on the pool: serializing overlaps the next chunk's fold)."""
        operations = [
            IndexOperation(document_id, result.document.to_source(), result.document.version)
            for document_id, result in changed.items()
            if result.document is not None
        ]
        return self._backend.bulk_index(self._target, operations, require_alias=self._through_alias)

    def _settle(self, result: Fold[Any, Any], outcome: BulkItemResult) -> list[BulkItemResult]:
        document = result.document
        assert document is not None  # only changed folds are written
        if outcome.ok:
            self._cache.put(document)
            return []
        self._cache.drop(document.document_id)
        if outcome.version_conflict:
            log.debug("%s: index holds a newer version than %d", outcome.doc_id, document.version)
            return []
        if outcome.retryable:
            return [outcome]
        SINK_ERRORS.labels(self.projection, "fatal").inc()
        refusal = DocumentRefusedError(
            document.document_id,
            f"HTTP {outcome.status} {outcome.error_type}: {outcome.reason}",
        )
        for entry in result.applied:
            self._refuse(entry, refusal)
        return []

    def _refuse(self, entry: Entry[Change], error: InvalidEventError) -> None:
        record = (entry.topic, entry.partition, entry.offset)
        if record in self._refused_records:
            return
        self._refused_records.add(record)
        log.warning(
            "%s %s: event %s[%d]@%d cannot be indexed: %s",
            self.projection,
            entry.item.document_id,
            entry.topic,
            entry.partition,
            entry.offset,
            error,
        )
        self._refused.refuse(entry, error)


class DeadLetteredEvents:
    """Refused events copied to ``events-dlq`` with the original record's bytes and headers.

    The sink only has the decoded event, so the original record is read back
    from the events topic by offset: refusals are rare, exact copies matter.
    """

    def __init__(self, settings: Settings, projection: str) -> None:
        prefix = settings.kafka.topic_prefix
        self._publisher = DeadLetterPublisher(settings, prefix + "events-dlq", f"sink-{projection}")
        self._settings = settings
        self._projection = projection
        self._reader: Consumer | None = None

    def refuse(self, entry: Entry[Change], error: InvalidEventError) -> None:
        message = self._read(entry.topic, entry.partition, entry.offset)
        self._publisher.publish(
            error,
            topic=entry.topic,
            partition=entry.partition,
            offset=entry.offset,
            timestamp_ms=message.timestamp()[1],
            key=message.key(),
            value=message.value(),
            original_headers=headers_of(message),
        )
        count_dead_letter(f"sink-{self._projection}")

    def flush(self) -> None:
        self._publisher.flush()

    def close(self) -> None:
        self._publisher.close()
        if self._reader is not None:
            self._reader.close()

    def _read(self, topic: str, partition: int, offset: int) -> Message:
        if self._reader is None:
            self._reader = Consumer(
                {
                    **self._settings.kafka.confluent_config(),
                    "group.id": (
                        f"{self._settings.kafka.topic_prefix}cqrs-sink-{self._projection}-dlq"
                    ),
                    "enable.auto.commit": False,
                    "isolation.level": "read_committed",
                }
            )
        self._reader.assign([TopicPartition(topic, partition, offset)])
        try:
            for _ in range(50):
                message = self._reader.poll(0.2)
                if message is None or message.error() is not None:
                    continue
                if message.offset() == offset:
                    return message
                break
        finally:
            self._reader.unassign()
        raise SinkError(
            f"cannot read {topic}[{partition}]@{offset} back to dead-letter it; retrying",
            retryable=True,
        )


class SkippedEvents:
    """Refusals during a rebuild: the live sink dead-lettered them already; count and log."""

    def __init__(self) -> None:
        self.count = 0

    def refuse(self, entry: Entry[Change], error: InvalidEventError) -> None:
        self.count += 1

    def flush(self) -> None:
        return None

    def close(self) -> None:
        return None


def build_search_sink(settings: Settings, projection: SearchProjection[Any, Any]) -> SearchSink:
    """The live sink, as ``cqrs sink run <projection>`` runs it."""
    return SearchSink(
        projection,
        settings,
        open_backend(settings.search),
        DeadLetteredEvents(settings, projection.name),
    )
