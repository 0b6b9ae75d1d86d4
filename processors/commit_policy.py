"""When the loop commits its transaction: at the interval, or early once caught up.

Results become visible to ``read_committed`` readers only at the commit, so a
command waits for the transaction it lands in to close. Under a backlog whole
batches ride the interval (few transactions, each amortised over many
commands); once the worker has read everything waiting, holding the
transaction open for the rest of the interval only adds latency, so it closes
as soon as it is ``early_s`` old. Commands that arrive meanwhile ride the next
one; a light load thus waits for about one commit instead of half an interval
plus a commit.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class CommitPolicy:
    interval_s: float
    early_s: float = 0.0  # 0: never early

    def due(self, age_s: float, *, caught_up: bool) -> bool:
        """Whether a transaction ``age_s`` old commits now."""
        return age_s >= self.interval_s or (caught_up and 0 < self.early_s <= age_s)

    def wait_s(self, age_s: float) -> float:
        """How long the loop may wait for more input before it must look again."""
        horizon = self.early_s if 0 < self.early_s < self.interval_s else self.interval_s
        return max(0.0, horizon - age_s)
