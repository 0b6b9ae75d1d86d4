"""The partition ledger: every record processed once, in order, whatever the delivery does."""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from faust.types import TP
from hypothesis import given, settings
from hypothesis import strategies as st

from processors.partition_ledger import Admission, PartitionLedger

SOURCE = TP("commands", 3)


def _owned_ledger(committed: int | None) -> PartitionLedger:
    ledger = PartitionLedger()
    ledger.assigned([SOURCE])
    ledger.sought({SOURCE: committed}, now=0.0)
    return ledger


def test_events_of_a_partition_not_owned_are_not_processed() -> None:
    ledger = PartitionLedger()
    ledger.assigned([SOURCE])  # producer started, but the consumer has not sought yet
    ledger.fetched(SOURCE, [5])

    assert ledger.admit(SOURCE, 5) is Admission.NOT_OWNED


def test_the_next_fetched_record_is_processed_and_its_offset_committed() -> None:
    ledger = _owned_ledger(committed=5)
    ledger.fetched(SOURCE, [5, 6])

    assert ledger.admit(SOURCE, 5) is Admission.PROCESS
    ledger.processed(SOURCE, 5, now=1.0)
    assert ledger.to_commit() == {SOURCE: 6}
    ledger.committed({SOURCE: 6})
    assert ledger.to_commit() == {}


def test_a_record_skipped_by_the_delivery_is_read_again() -> None:
    ledger = _owned_ledger(committed=5)
    ledger.fetched(SOURCE, [5, 6, 7])

    assert ledger.admit(SOURCE, 6) is Admission.DROPPED_BEFORE  # 5 never arrived
    assert ledger.reread_from(SOURCE) == 5
    assert ledger.to_commit() == {}  # nothing moves past 5


def test_offsets_without_records_hold_nothing_up() -> None:
    ledger = _owned_ledger(committed=5)
    ledger.fetched(SOURCE, [7])  # 5 and 6 are transaction markers

    assert ledger.admit(SOURCE, 7) is Admission.PROCESS


def test_a_copy_fetched_before_a_seek_is_skipped_as_stale() -> None:
    ledger = _owned_ledger(committed=5)
    ledger.fetched(SOURCE, [5, 6])
    ledger.sought_one(SOURCE, 5, now=1.0)  # the copies of 5 and 6 in flight are stale

    assert ledger.admit(SOURCE, 6) is Admission.STALE
    ledger.fetched(SOURCE, [5, 6])
    assert ledger.admit(SOURCE, 5) is Admission.PROCESS


def test_a_redelivered_record_is_not_processed_twice() -> None:
    ledger = _owned_ledger(committed=5)
    ledger.fetched(SOURCE, [5])
    ledger.processed(SOURCE, 5, now=1.0)
    ledger.fetched(SOURCE, [5, 6])

    assert ledger.admit(SOURCE, 5) is Admission.ALREADY_PROCESSED
    assert ledger.admit(SOURCE, 6) is Admission.PROCESS


def test_a_partition_without_a_committed_offset_starts_at_its_first_record() -> None:
    ledger = _owned_ledger(committed=None)
    ledger.fetched(SOURCE, [12, 13])

    assert ledger.admit(SOURCE, 13) is Admission.DROPPED_BEFORE
    assert ledger.reread_from(SOURCE) == 12


def test_a_seek_never_moves_the_next_offset_below_what_was_processed() -> None:
    ledger = _owned_ledger(committed=5)
    ledger.fetched(SOURCE, [5, 6])
    ledger.processed(SOURCE, 5, now=1.0)
    ledger.processed(SOURCE, 6, now=1.0)
    ledger.sought({SOURCE: 5}, now=2.0)  # the commit of 5 and 6 is still open

    assert ledger.to_commit() == {SOURCE: 7}


def test_fetched_records_that_never_arrive_are_found_after_a_quiet_spell() -> None:
    ledger = _owned_ledger(committed=5)
    ledger.fetched(SOURCE, [5])

    assert ledger.stalled(now=10.0, after_s=30.0) == {}
    assert ledger.stalled(now=31.0, after_s=30.0) == {SOURCE: 5}


def test_revoked_partitions_are_neither_processed_nor_committed() -> None:
    ledger = _owned_ledger(committed=5)
    ledger.fetched(SOURCE, [5])
    ledger.processed(SOURCE, 5, now=1.0)
    ledger.revoked([SOURCE])

    assert ledger.to_commit() == {}
    assert ledger.admit(SOURCE, 6) is Admission.NOT_OWNED


@dataclass
class _Delivery:
    """A consumer whose buffers drop, repeat and reorder records across seeks."""

    records: list[int]
    rng: random.Random
    position: int = 0  # index into records of the next fetch
    queue: list[int] = field(default_factory=list)
    stale: list[int] = field(default_factory=list)

    def seek(self, offset: int) -> None:
        self.stale.extend(self.queue)
        self.queue.clear()
        self.position = next(
            (index for index, record in enumerate(self.records) if record >= offset),
            len(self.records),
        )

    def fetch(self) -> list[int]:
        batch = self.records[self.position : self.position + self.rng.randint(1, 4)]
        self.position += len(batch)
        self.queue.extend(batch)
        return batch

    def deliver(self) -> int | None:
        roll = self.rng.random()
        if self.stale and roll < 0.1:
            return self.stale.pop(self.rng.randrange(len(self.stale)))
        if not self.queue:
            return None
        offset = self.queue.pop(0)
        if roll < 0.2:
            return self.deliver()  # dropped on the way
        if roll < 0.3:
            self.queue.insert(0, offset)  # delivered again later
        return offset


@settings(max_examples=300, deadline=None)
@given(
    gaps=st.lists(st.integers(min_value=1, max_value=3), min_size=1, max_size=40),
    seed=st.integers(min_value=0, max_value=2**32),
)
def test_each_record_is_processed_exactly_once_in_order(gaps: list[int], seed: int) -> None:
    records = [sum(gaps[: index + 1]) for index in range(len(gaps))]  # gaps: markers
    delivery = _Delivery(records, random.Random(seed))
    ledger = _owned_ledger(committed=None)
    processed: list[int] = []
    now = 0.0
    for _ in range(20_000):
        now += 1.0
        if delivery.position < len(records) and delivery.rng.random() < 0.5:
            ledger.fetched(SOURCE, delivery.fetch())
        offset = delivery.deliver()
        if offset is None:
            for _source, reread in ledger.stalled(now, after_s=30.0).items():
                delivery.seek(reread)
                ledger.sought_one(SOURCE, reread, now)
            if len(processed) == len(records):
                break
            continue
        admission = ledger.admit(SOURCE, offset)
        if admission is Admission.PROCESS:
            processed.append(offset)
            ledger.processed(SOURCE, offset, now)
        elif admission is Admission.DROPPED_BEFORE:
            reread = ledger.reread_from(SOURCE)
            delivery.seek(reread)
            ledger.sought_one(SOURCE, reread, now)

    assert processed == records
    assert ledger.to_commit() == {SOURCE: records[-1] + 1}


def test_sending_a_partition_back_never_rewinds_past_what_was_processed() -> None:
    ledger = _owned_ledger(committed=5)
    ledger.fetched(SOURCE, [5, 6])
    ledger.processed(SOURCE, 5, now=1.0)
    ledger.sought_one(SOURCE, 5, now=2.0)  # a re-read decided before 5 was processed

    ledger.fetched(SOURCE, [5, 6])
    assert ledger.admit(SOURCE, 5) is Admission.ALREADY_PROCESSED
    assert ledger.admit(SOURCE, 6) is Admission.PROCESS
