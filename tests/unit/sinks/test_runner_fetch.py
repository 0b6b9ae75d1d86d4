"""The sink's fetch: a lone event is handed on at once, a backlog in whole batches."""

from __future__ import annotations

from typing import Any, cast

from confluent_kafka import Consumer

from core.settings import Settings
from sinks.policy import BatchPolicy
from sinks.runner import SinkRunner


class _Sink:
    projection = "p"
    concurrent_flush = False


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


def _runner() -> SinkRunner:
    return SinkRunner(
        cast(Any, _Sink()),
        Settings(),
        cast(Any, None),
        dead_letters=cast(Any, object()),
        policy=BatchPolicy(500, 0.05),
    )


def test_a_backlog_is_taken_in_one_call_without_waiting() -> None:
    consumer = _Consumer(waiting=800)
    assert len(_runner()._fetch(cast(Consumer, consumer), 0.0)) == 500
    assert consumer.calls == [(500, 0)]


def test_when_nothing_waits_the_fetch_blocks_for_one_record_only() -> None:
    consumer = _Consumer(waiting=0, arrives=3)
    assert len(_runner()._fetch(cast(Consumer, consumer), 0.0)) == 3
    # Asking librdkafka for a whole batch would block until 500 records or the timeout.
    assert [num for num, _ in consumer.calls] == [500, 1, 499]
    assert consumer.calls[1][1] > 0 and consumer.calls[2][1] == 0
