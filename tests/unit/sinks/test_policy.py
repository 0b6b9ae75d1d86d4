"""Batching and backoff policy of the sink runner."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sinks.policy import Backoff, BatchPolicy


def test_a_batch_is_due_when_full_or_old_enough() -> None:
    policy = BatchPolicy(max_records=3, max_wait_s=0.5)
    assert not policy.due(0, None, now=100.0)
    assert not policy.due(2, started_at=100.0, now=100.4)
    assert policy.due(3, started_at=100.0, now=100.0)
    assert policy.due(1, started_at=100.0, now=100.5)


def test_poll_timeout_never_delays_a_due_flush() -> None:
    policy = BatchPolicy(max_records=10, max_wait_s=0.5)
    assert policy.poll_timeout(None, now=5.0, idle_s=0.5) == 0.5
    assert policy.poll_timeout(started_at=5.0, now=5.3) == pytest.approx(0.2)
    assert policy.poll_timeout(started_at=5.0, now=6.0) == 0.0


def test_room_is_what_is_left_of_the_batch_but_at_least_one() -> None:
    policy = BatchPolicy(max_records=10)
    assert policy.room(0) == 10
    assert policy.room(7) == 3
    assert policy.room(12) == 1


def test_backoff_grows_exponentially_up_to_the_cap() -> None:
    backoff = Backoff(initial_s=0.2, max_s=5.0, multiplier=2.0, jitter=0.0)
    assert [backoff.delay(n) for n in range(6)] == [0.2, 0.4, 0.8, 1.6, 3.2, 5.0]
    assert backoff.delay(10_000) == 5.0  # a long outage neither overflows nor gives up


def test_jitter_takes_at_most_its_fraction_off_the_delay() -> None:
    backoff = Backoff(initial_s=1.0, max_s=8.0, jitter=0.5)
    assert backoff.delay(3, uniform=lambda: 0.0) == 8.0
    assert backoff.delay(3, uniform=lambda: 1.0) == 4.0


@given(st.integers(min_value=0, max_value=5000), st.floats(min_value=0.0, max_value=1.0))
def test_every_delay_lies_between_half_the_ceiling_and_the_cap(attempt: int, draw: float) -> None:
    backoff = Backoff(initial_s=0.1, max_s=30.0, jitter=0.5)
    delay = backoff.delay(attempt, uniform=lambda: draw)
    assert backoff.ceiling(attempt) / 2 <= delay <= 30.0


@pytest.mark.parametrize(
    ("initial", "cap", "multiplier", "jitter"),
    [(0.0, 1.0, 2.0, 0.5), (2.0, 1.0, 2.0, 0.5), (0.1, 1.0, 0.5, 0.5), (0.1, 1.0, 2.0, 1.5)],
)
def test_nonsensical_backoffs_are_refused(
    initial: float, cap: float, multiplier: float, jitter: float
) -> None:
    with pytest.raises(ValueError):
        Backoff(initial, cap, multiplier, jitter)
