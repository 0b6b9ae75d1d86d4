"""Fetching for the worker's loop and the sinks: a lone record at once, a backlog in batches."""

from __future__ import annotations

from typing import cast

from confluent_kafka import Consumer

from core.kafka_fetch import available


class _Consumer:
    """Holds ``waiting`` records; ``arrives`` come during the next blocking call."""

    def __init__(self, waiting: int, arrives: int = 0) -> None:
        self.waiting, self.arrives = waiting, arrives
        self.calls: list[tuple[int, float]] = []

    def consume(self, num: int, timeout: float) -> list[object]:
        self.calls.append((num, timeout))
        if not self.waiting and timeout > 0:
            self.waiting, self.arrives = self.arrives, 0
        taken = min(num, self.waiting)
        self.waiting -= taken
        return [object()] * taken


def test_a_backlog_is_taken_in_one_call_without_waiting() -> None:
    consumer = _Consumer(waiting=800)
    assert len(available(cast(Consumer, consumer), 500, 0.5)) == 500
    assert consumer.calls == [(500, 0)]


def test_when_nothing_waits_the_fetch_blocks_for_one_record_only() -> None:
    consumer = _Consumer(waiting=0, arrives=3)
    assert len(available(cast(Consumer, consumer), 500, 0.5)) == 3
    # Asking librdkafka for a whole batch would block until 500 records or the timeout.
    assert consumer.calls == [(500, 0), (1, 0.5), (499, 0)]


def test_a_room_of_one_asks_for_nothing_more() -> None:
    consumer = _Consumer(waiting=0, arrives=3)
    assert len(available(cast(Consumer, consumer), 1, 0.5)) == 1
    assert consumer.calls == [(1, 0), (1, 0.5)]
