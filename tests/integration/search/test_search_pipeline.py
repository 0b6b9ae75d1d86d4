"""The search sink on the common sink runner, end to end: Kafka events in, OpenSearch out.

Events are written as the command processor writes them (Avro, transactions,
keyed by order id), the live sink runs on ``SinkRunner`` in its own consumer
group, refusals land on ``events-dlq``, and a rebuild builds the next index
generation while the live sink and new events keep going.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest

from aggregates.read_side.search_orders import OrdersSearch
from aggregates.shop import domain as shop
from core.errors import ProjectionTimeoutError, ResourceMissingError, SinkError
from core.settings import SearchSettings, Settings
from schemas.catalog import SchemaCatalog
from schemas.registry_client import RegistryClient
from schemas.serde import AvroSerde
from sinks import registry
from sinks.rebuild import SilentProgress
from sinks.runner import SinkRunner
from sinks.search.backend import SearchBackend
from sinks.search.index import SearchIndex
from sinks.search.sink import build_search_sink
from tests.integration.event_log import EventLog, line
from tests.integration.pipeline import read_topic, wait_until
from tests.integration.sink_support import isolated

ORDERS = 30


@dataclass
class LiveSink:
    settings: Settings
    serde: AvroSerde
    log: EventLog
    runner: SinkRunner
    index: SearchIndex

    def statuses(self, target: str | None = None) -> dict[str, tuple[str, int]]:
        try:
            found = self.index.backend.get_documents(
                target or self.index.alias, [f"o-{n}" for n in range(ORDERS)] + ["o-ghost"]
            )
        except ResourceMissingError:
            return {}  # the sink has not created the index yet
        except SinkError as error:
            if not error.retryable:
                raise
            return {}  # e.g. a new index whose shard is not allocated yet: ask again
        return {key: (str(d.source["status"]), d.version) for key, d in found.items()}


@pytest.fixture
def live(
    local_stack: Settings, search_settings: SearchSettings, backend: SearchBackend
) -> Iterator[LiveSink]:
    with isolated(local_stack, partitions=2) as base:
        settings = base.model_copy(update={"search": search_settings})
        serde = AvroSerde(RegistryClient(settings.registry), SchemaCatalog.for_domain(shop))
        log = EventLog(settings, serde)
        runner = SinkRunner(build_search_sink(settings, OrdersSearch()), settings, serde)
        thread = threading.Thread(target=runner.run, kwargs={"install_signal_handlers": False})
        thread.start()
        try:
            yield LiveSink(
                settings, serde, log, runner, SearchIndex(backend, search_settings, OrdersSearch())
            )
        finally:
            runner.stop()
            thread.join(60)
            log.close()


def expected_after(log: EventLog, statuses: dict[str, str]) -> dict[str, tuple[str, int]]:
    return {order: (status, log.version(order)) for order, status in statuses.items()}


def until(condition: Callable[[], bool], what: str) -> None:
    wait_until(lambda: condition() or None, 60, what)


def test_events_become_documents_and_refusals_dead_letters(live: LiveSink) -> None:
    log = live.log
    expected: dict[str, str] = {}
    for n in range(ORDERS):
        log.placed(f"o-{n}", f"c-{n % 4}", [line("mug", 2, 500), line("tea", 1, 350)])
        expected[f"o-{n}"] = "PLACED"
    for n in range(0, ORDERS, 3):
        log.order(f"o-{n}", "OrderConfirmed")
        expected[f"o-{n}"] = "CONFIRMED"
    log.order("o-ghost", "OrderShipped", carrier="DHL", tracking_number=None)  # never placed
    log.commit()

    until(lambda: live.statuses() == expected_after(log, expected), "the documents")
    dead = live_dead_letters(live)
    assert len(dead) == 1
    key, _, headers = dead[0]
    assert key == b"o-ghost"
    assert headers["error.code"] == b"ORDER_NOT_PLACED"
    assert headers["dead_letter.component"] == b"sink-search-orders"
    assert live.serde.decode(dead[0][1]).full_name == "cqrs.events.OrderShipped"


def test_a_rebuild_switches_the_alias_while_the_live_sink_and_new_events_go_on(
    live: LiveSink,
) -> None:
    log = live.log
    expected: dict[str, str] = {}
    for n in range(ORDERS):
        log.placed(f"o-{n}", "c-1", [line("mug", 1, 900)])
        expected[f"o-{n}"] = "PLACED"
    log.commit()
    until(lambda: live.statuses() == expected_after(log, expected), "the first documents")
    first = live.index.live_index()

    writing = threading.Event()

    def keep_writing() -> None:
        # Status changes arrive while the rebuild replays and switches.
        for n in range(ORDERS):
            log.order(f"o-{n}", "OrderConfirmed")
            expected[f"o-{n}"] = "CONFIRMED"
            log.commit()
        writing.set()

    writer = threading.Thread(target=keep_writing)
    writer.start()
    entry = registry.projection(
        "search-orders", live.settings
    )  # what `cqrs projections rebuild` runs
    report = entry.rebuild(live.settings, live.serde, SilentProgress())
    writer.join(60)
    assert writing.is_set()

    assert report.target == live.index.generation_name(2) != first
    assert report.replayed >= ORDERS
    assert live.index.live_index() == report.target
    assert live.index.generations() == [report.target]  # the old generation is gone
    until(lambda: live.statuses() == expected_after(log, expected), "every change in the new index")

    # After the switch the live sink writes through the alias into the new index.
    log.order("o-0", "OrderShipped", carrier="UPS", tracking_number="1Z")
    log.commit()
    expected["o-0"] = "SHIPPED"
    until(lambda: live.statuses(report.target) == expected_after(log, expected), "the later event")
    # Read-your-writes: the entry waits until the document shows the version.
    assert entry.wait_for(live.settings, "o-0", log.version("o-0"), 30) == log.version("o-0")
    with pytest.raises(ProjectionTimeoutError, match="shows version"):
        entry.wait_for(live.settings, "o-0", log.version("o-0") + 1, 0.3)


def live_dead_letters(live: LiveSink) -> list[tuple[bytes, bytes, dict[str, bytes]]]:
    records = read_topic(live.settings, live.settings.kafka.topic_prefix + "events-dlq")
    return [(key, value, dict(headers)) for key, value, headers in records]
