"""What the operator console shows, measured: lag, freshness, throughput, groups, rebuilds.

One ``Overview`` is measured at most once per ``INTERVAL_S`` however many
consoles are open (they share the last one), and only while someone looks:

- per projection: unapplied events (records), **freshness** (age in seconds of
  the oldest event not yet applied, 0 when caught up), events applied per
  second since the last measurement, dead letters its sink wrote;
- per consumer group of the domain (command processor, process managers,
  sinks): its state, members (client, host, partitions) and lag;
- rebuilds under way: a PostgreSQL projection's shadow table set, its replay
  position against the live one's, the rate and the time left.

Kafka is asked through ``cqrs.lag`` (the same numbers as ``cqrs lag``), in a
thread: librdkafka calls block.
"""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from confluent_kafka import KafkaException

from cqrs.lag import ConsumerGroup, LagMonitor, PartitionLag, product_groups
from cqrs.query.consistency import sink_group
from cqrs.query.service import QueryService

INTERVAL_S = 2.0


@dataclass(frozen=True)
class ProjectionHealth:
    name: str
    store: str
    lag_records: int | None  # None: its sink's group does not exist (never ran)
    freshness_s: float | None
    throughput_per_s: float | None
    dead_letters: int
    group: str


@dataclass(frozen=True)
class GroupHealth:
    group: str
    role: str
    state: str
    members: list[dict[str, Any]]
    lag_records: int | None
    freshness_s: float | None


@dataclass(frozen=True)
class Rebuild:
    projection: str
    table_set: str
    replayed_offsets: int
    target_offsets: int
    rate_per_s: float | None
    eta_s: float | None

    @property
    def progress(self) -> float:
        return min(1.0, self.replayed_offsets / self.target_offsets) if self.target_offsets else 1.0


@dataclass(frozen=True)
class Overview:
    measured_at: float
    projections: list[ProjectionHealth]
    groups: list[GroupHealth]
    rebuilds: list[Rebuild]
    problems: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        document = asdict(self)
        document["rebuilds"] = [
            {**asdict(rebuild), "progress": rebuild.progress} for rebuild in self.rebuilds
        ]
        return document


def role_of(group: str, settings_app_id: str, sinks: dict[str, str]) -> str:
    if group == settings_app_id:
        return "command processor"
    if group in sinks:
        return f"sink {sinks[group]}"
    return "process manager"


def summed(lags: Sequence[PartitionLag], group: str) -> tuple[int | None, float | None]:
    """(records, freshness) of one group: the sum of records, the oldest unapplied event;
    (None, None) for a group Kafka does not know (its process never ran)."""
    mine = [lag for lag in lags if lag.group == group]
    if not mine:
        return None, None
    records = sum(lag.records for lag in mine)
    ages = [lag.seconds for lag in mine if lag.seconds is not None]
    return records, (max(ages) if ages else (0.0 if not records else None))


class Console:
    """Measures overviews for the console, one at a time, shared by every viewer."""

    def __init__(self, service: QueryService) -> None:
        self._service = service
        self._monitor: LagMonitor | None = None
        self._last: Overview | None = None
        self._lock = asyncio.Lock()
        self._applied: dict[str, tuple[float, int]] = {}  # group -> (when, committed sum)
        self._replayed: dict[str, tuple[float, int]] = {}  # table set -> (when, replayed)
        self.dead_letter_counts: dict[str, int] = {}  # component -> count (set by the DLQ view)

    async def overview(self) -> Overview:
        async with self._lock:
            if self._last is not None and time.time() - self._last.measured_at < INTERVAL_S:
                return self._last
            self._last = await self._measure()
            return self._last

    def close(self) -> None:
        if self._monitor is not None:
            self._monitor.close()

    async def _measure(self) -> Overview:
        service = self._service
        settings = service.settings
        groups = product_groups(settings)
        problems: list[str] = []
        try:
            lags, described = await asyncio.to_thread(self._kafka, groups)
        except KafkaException as error:
            lags, described = [], {}
            problems.append(f"Kafka did not answer: {error}")
        except Exception as error:  # the console shows what failed instead of failing
            lags, described = [], {}
            problems.append(str(error))
        now = time.time()
        sinks = {sink_group(settings, name): name for name in service.projection_names}
        projections = []
        for name in service.projection_names:
            sink = sink_group(settings, name)
            records, freshness = summed(lags, sink)
            projections.append(
                ProjectionHealth(
                    name=name,
                    store=self._store(name),
                    lag_records=records,
                    freshness_s=freshness,
                    throughput_per_s=self._rate(sink, lags, now),
                    dead_letters=self.dead_letter_counts.get(f"sink-{name}", 0),
                    group=sink,
                )
            )
        healths = []
        for group in groups:
            records, freshness = summed(lags, group.group)
            state, members = described.get(group.group, ("UNKNOWN", []))
            healths.append(
                GroupHealth(
                    group.group,
                    role_of(group.group, settings.processor.app_id, sinks),
                    state,
                    members,
                    records,
                    freshness,
                )
            )
        try:
            rebuilds = await self._rebuilds(now)
        except Exception as error:  # the database may be down: say so, show the rest
            rebuilds = []
            problems.append(f"rebuilds unknown: {error}")
        return Overview(now, projections, healths, rebuilds, problems)

    def _store(self, name: str) -> str:
        try:
            return self._service.store_of(name)
        except Exception:  # a projection of another store kind
            return "other"

    def _rate(self, group: str, lags: Sequence[PartitionLag], now: float) -> float | None:
        committed = sum(lag.committed or 0 for lag in lags if lag.group == group)
        before = self._applied.get(group)
        self._applied[group] = (now, committed)
        if before is None or now <= before[0]:
            return None
        return max(0.0, (committed - before[1]) / (now - before[0]))

    def _kafka(
        self, groups: list[ConsumerGroup]
    ) -> tuple[list[PartitionLag], dict[str, tuple[str, list[dict[str, Any]]]]]:
        if self._monitor is None:
            self._monitor = LagMonitor(self._service.settings, timeout_s=5.0)
        lags = self._monitor.measure(groups)
        futures = self._service.admin.describe_consumer_groups(
            [group.group for group in groups], request_timeout=5
        )
        described: dict[str, tuple[str, list[dict[str, Any]]]] = {}
        for name, future in futures.items():
            try:
                found = future.result(timeout=10)
            except KafkaException:
                continue
            members = [
                {
                    "client_id": member.client_id,
                    "host": member.host,
                    "partitions": len(member.assignment.topic_partitions)
                    if member.assignment
                    else 0,
                }
                for member in found.members
            ]
            described[name] = (str(found.state.name), members)
        return lags, described

    async def _rebuilds(self, now: float) -> list[Rebuild]:
        found: list[Rebuild] = []
        for name in self._service.postgres.names:
            for table_set, replayed, target in await self._service.postgres.shadows(name):
                before = self._replayed.get(table_set)
                self._replayed[table_set] = (now, replayed)
                rate = (
                    (replayed - before[1]) / (now - before[0])
                    if before is not None and now > before[0]
                    else None
                )
                eta = (target - replayed) / rate if rate else None
                found.append(Rebuild(name, table_set, replayed, target, rate, eta))
        return found


def dead_letter_counts(letters: Sequence[Any]) -> dict[str, int]:
    """Dead letters per component, from the dead-letter tools' listing."""
    counts: dict[str, int] = defaultdict(int)
    for letter in letters:
        counts[str(getattr(letter, "component", ""))] += 1
    return dict(counts)
