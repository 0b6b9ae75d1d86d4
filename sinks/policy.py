"""When to flush a batch and how long to wait before retrying a write (pure, no IO)."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class BatchPolicy:
    """Flush when ``max_records`` are buffered or the oldest has waited ``max_wait_s``."""

    max_records: int = 5000
    max_wait_s: float = 0.5

    def __post_init__(self) -> None:
        if self.max_records < 1 or self.max_wait_s <= 0:
            raise ValueError("a batch needs max_records >= 1 and max_wait_s > 0")

    def due(self, buffered: int, started_at: float | None, now: float) -> bool:
        """Whether the batch under way must be flushed now."""
        if buffered >= self.max_records:
            return True
        return started_at is not None and now - started_at >= self.max_wait_s

    def poll_timeout(self, started_at: float | None, now: float, idle_s: float = 0.5) -> float:
        """How long the next poll may block without delaying a due flush."""
        if started_at is None:
            return idle_s
        return max(0.0, min(idle_s, started_at + self.max_wait_s - now))

    def room(self, buffered: int) -> int:
        """How many more records the batch under way can take."""
        return max(1, self.max_records - buffered)


@dataclass(frozen=True)
class Backoff:
    """Exponential backoff with jitter: ``initial * multiplier**attempt``, capped, then jittered.

    The jitter takes up to ``jitter`` (a fraction) off each delay, so that many
    sinks that failed together do not retry in lockstep; a store that stays down
    is retried at the cap forever.
    """

    initial_s: float = 0.2
    max_s: float = 30.0
    multiplier: float = 2.0
    jitter: float = 0.5

    def __post_init__(self) -> None:
        if not (0 < self.initial_s <= self.max_s) or self.multiplier < 1:
            raise ValueError("backoff needs 0 < initial_s <= max_s and multiplier >= 1")
        if not 0 <= self.jitter <= 1:
            raise ValueError("backoff jitter is a fraction between 0 and 1")

    def ceiling(self, attempt: int) -> float:
        """The delay before retry number ``attempt`` (0-based) before jitter."""
        # Capped exponent: the float would overflow after ~1000 attempts of a long outage.
        return min(self.max_s, self.initial_s * self.multiplier ** min(attempt, 64))

    def delay(self, attempt: int, uniform: Callable[[], float] = random.random) -> float:
        ceiling = self.ceiling(attempt)
        return ceiling * (1 - self.jitter * uniform())
