"""What the query service's handlers share: the stores, the gateway, the keys, the waits.

Built once per process from the settings and the domain; opened and closed by
the application's lifespan. Everything that talks to a store or to Kafka is
reached through here, so the handlers stay thin.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from confluent_kafka import IsolationLevel, KafkaException
from confluent_kafka.admin import AdminClient
from confluent_kafka.admin._listoffsets import OffsetSpec
from prometheus_client import Counter, Histogram

from core.domain import load_domain
from core.kafka_logs import served
from core.settings import Settings
from cqrs.query.auth import Keys
from cqrs.query.consistency import ConsistencyToken, PositionWatcher, sink_group
from cqrs.query.gateway import Gateway
from cqrs.query.postgres_reads import PostgresReads, postgres_projections
from cqrs.query.problems import Problem
from schemas.catalog import SchemaCatalog
from schemas.partition_offsets import partition_offsets
from schemas.topics import event_topic_names
from sinks.base import Partition

if TYPE_CHECKING:
    from cqrs.query.search_reads import SearchReader

log = logging.getLogger("cqrs.query")

REQUESTS = Histogram(
    "cqrs_query_request_seconds",
    "Time to answer a request of the query service, by route and status.",
    ["route", "method", "status"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
WAITS = Counter(
    "cqrs_query_waits_total",
    "Reads that waited for a version or a consistency token, by outcome (reached, timeout).",
    ["projection", "kind", "outcome"],
)
WAIT_SECONDS = Histogram(
    "cqrs_query_wait_seconds",
    "How long reads waited for a version or a consistency token.",
    ["projection", "kind"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)


@dataclass(frozen=True)
class Lag:
    """Where a projection's sink stands on one partition of an event topic."""

    topic: str
    partition: int
    committed: int | None
    end: int

    @property
    def records(self) -> int | None:
        return None if self.committed is None else max(0, self.end - 1 - self.committed)

    def as_dict(self) -> dict[str, Any]:
        return {
            "topic": self.topic,
            "partition": self.partition,
            "committed_offset": self.committed,
            "last_stable_offset": self.end,
            "records": self.records,
        }


class QueryService:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.keys = Keys(settings.query.all_api_keys())
        domain = load_domain(settings.domain)
        self.catalog = SchemaCatalog.for_domain(domain)
        self.admin = served(AdminClient(settings.kafka.confluent_config()))
        self.postgres = PostgresReads(settings, postgres_projections(settings))
        self.search: SearchReader | None = None
        self.search_names: list[str] = []
        self._search_settings_ok = True
        self.positions = PositionWatcher(self.admin)
        self.gateway = Gateway(settings, self.admin, self.catalog)
        self.event_topics = event_topic_names(settings)
        self.projection_names = [declared.name for declared in domain.projections]
        self._init_search()

    def _init_search(self) -> None:
        from cqrs.query.search_reads import SearchReader

        reader = SearchReader(self.settings)
        self.search_names = reader.projections()
        if self.search_names:
            self.search = reader
        else:
            reader.close()

    def store_of(self, projection: str) -> str:
        if projection in self.postgres.names:
            return "postgres"
        if projection in self.search_names:
            return "search"
        raise Problem(
            404,
            "projection-not-found",
            "No such projection",
            f"no projection {projection!r}; one of {', '.join(self.projection_names)}",
        )

    def require_search(self) -> SearchReader:
        if self.search is None:
            raise Problem(404, "projection-not-found", "No such projection", "no search projection")
        return self.search

    async def open(self) -> None:
        await self.postgres.open()
        self.positions.start()

    async def close(self) -> None:
        await self.positions.close()
        await self.postgres.close()
        await asyncio.to_thread(self.gateway.close)
        if self.search is not None:
            self.search.close()

    async def wait_for_token(
        self, projection: str, token: ConsistencyToken, timeout_s: float
    ) -> bool:
        """Whether the projection has read the token's command within ``timeout_s``."""
        group = sink_group(self.settings, projection)
        where = (self.settings.kafka.topic_prefix + token.topic, token.partition)
        reached = await self.positions.wait(group, where, token.offset, timeout_s)
        if reached and self.store_of(projection) == "search":
            # The index answers searches from its last refresh; make it include the write.
            await asyncio.to_thread(self.require_search().refresh, projection)
        return reached

    async def lag(self, projection: str, partitions: list[Partition]) -> Lag | None:
        """The sink's position on the one of ``partitions`` (event topics') where it is
        furthest behind (None when Kafka does not say)."""
        group = sink_group(self.settings, projection)
        try:
            committed = await self.positions.committed(group, partitions)
            ends = await asyncio.to_thread(
                partition_offsets,
                self.admin,
                partitions,
                OffsetSpec.latest(),  # type: ignore[no-untyped-call]
                IsolationLevel.READ_COMMITTED,
                5.0,
            )
        except KafkaException:
            return None
        lags = [Lag(t, n, committed.get((t, n)), ends[(t, n)]) for t, n in partitions]
        return max(lags, key=lambda lag: -1 if lag.records is None else lag.records)

    async def token_lag(self, projection: str, token: ConsistencyToken) -> Lag | None:
        topic = self.settings.kafka.topic_prefix + token.topic
        return await self.lag(projection, [(topic, token.partition)])

    async def aggregate_lag(self, projection: str, aggregate_id: str) -> Lag | None:
        """The sink's lag where an aggregate's events would be, on every event topic."""
        number = await self.gateway.partition_of(aggregate_id)
        return await self.lag(projection, [(topic, number) for topic in self.event_topics])
