"""The batching base class: convert on add, write whole batches, keep them until written."""

from __future__ import annotations

import pytest

from core.errors import SinkError
from sinks.base import BatchingSink, EventRecord, SinkBatch


class Recording(BatchingSink[str]):
    projection = "test"

    def __init__(self) -> None:
        super().__init__()
        self.written: list[SinkBatch[str]] = []
        self.failures = 0

    def convert(self, record: EventRecord) -> str | None:
        return None if record.event_type == "Ignored" else record.aggregate_id

    def write(self, batch: SinkBatch[str]) -> None:
        if self.failures:
            self.failures -= 1
            raise SinkError("store down", retryable=True)
        self.written.append(batch)


def event(name: str, aggregate_id: str) -> EventRecord:
    return EventRecord(f"cqrs.events.{name}", {"metadata": {"aggregate_id": aggregate_id}})


def test_flush_writes_converted_records_in_order_with_positions() -> None:
    sink = Recording()
    sink.add(event("OrderPlaced", "a"), "events", 0, 10)
    sink.add(event("Ignored", "x"), "events", 0, 11)
    sink.add(event("OrderPlaced", "b"), "events", 1, 4)
    sink.flush({("events", 0): 12, ("events", 1): 5})
    [batch] = sink.written
    assert [(e.partition, e.offset, e.item) for e in batch.entries] == [(0, 10, "a"), (1, 4, "b")]
    assert batch.positions == {("events", 0): 12, ("events", 1): 5}
    assert sink.buffered == 0


def test_positions_alone_are_written_so_stores_can_advance_past_irrelevant_events() -> None:
    sink = Recording()
    sink.add(event("Ignored", "x"), "events", 0, 3)
    sink.flush({("events", 0): 4})
    assert [(len(b), b.positions) for b in sink.written] == [(0, {("events", 0): 4})]
    sink.flush({})
    assert len(sink.written) == 1


def test_a_failed_write_keeps_the_batch_for_the_retry() -> None:
    sink = Recording()
    sink.failures = 1
    sink.add(event("OrderPlaced", "a"), "events", 0, 0)
    with pytest.raises(SinkError):
        sink.flush({("events", 0): 1})
    sink.flush({("events", 0): 1})
    assert [e.item for e in sink.written[0].entries] == ["a"]


def test_revoked_partitions_lose_their_buffered_entries_only() -> None:
    sink = Recording()
    sink.add(event("OrderPlaced", "a"), "events", 0, 0)
    sink.add(event("OrderPlaced", "b"), "events", 1, 0)
    sink.revoke([("events", 0)])
    sink.flush({("events", 1): 1})
    assert [e.item for e in sink.written[0].entries] == ["b"]
