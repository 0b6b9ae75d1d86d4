"""Consumer lag measured against offsets really committed by consumer groups on the broker."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic

from core.observability import Health, start_observability_server
from core.settings import ObservabilitySettings, Settings
from cqrs.lag import ConsumerGroup, LagMonitor, PartitionLag
from cqrs.lag_exporter import LagExporter
from tests.integration.conftest import TopicFactory
from tests.integration.pipeline import wait_until

AN_HOUR_AGO_MS = int(time.time() * 1000) - 3_600_000
RECORDS = 20


@pytest.fixture
def monitor(local_stack: Settings) -> Iterator[LagMonitor]:
    lag_monitor = LagMonitor(local_stack)
    yield lag_monitor
    lag_monitor.close()


@pytest.fixture(autouse=True)
def delete_groups(kafka_admin: AdminClient) -> Iterator[None]:
    """Consumer groups committed to by a test are deleted after it."""
    yield
    created = [g.group_id for g in kafka_admin.list_consumer_groups().result(30).valid]
    mine = [group for group in created if group in COMMITTED_GROUPS]
    for future in (kafka_admin.delete_consumer_groups(mine) if mine else {}).values():
        future.result(30)
    COMMITTED_GROUPS.clear()


COMMITTED_GROUPS: set[str] = set()


def commit(settings: Settings, group: str, topic: str, offset: int, partition: int = 0) -> None:
    """Commit ``offset`` for ``group`` as its consumer would, then leave the group."""
    COMMITTED_GROUPS.add(group)
    consumer = Consumer(
        {**settings.kafka.confluent_config(), "group.id": group, "enable.auto.commit": False}
    )
    try:
        consumer.commit(offsets=[TopicPartition(topic, partition, offset)], asynchronous=False)
    finally:
        consumer.close()


def produce(settings: Settings, topic: str, count: int, *, transactional: bool) -> None:
    config = settings.kafka.confluent_config()
    if transactional:
        config = {**config, "transactional.id": f"lag-test-{uuid.uuid4().hex}"}
    producer = Producer(config)
    if transactional:
        producer.init_transactions(30)
        producer.begin_transaction()
    for number in range(count):
        producer.produce(topic, f"v{number}".encode(), b"k", partition=0, timestamp=AN_HOUR_AGO_MS)
    if transactional:
        producer.commit_transaction(30)
    producer.flush(30)


def partition_zero(monitor: LagMonitor, group: str, topic: str) -> PartitionLag:
    lags = monitor.measure([ConsumerGroup(group, (topic,))])
    assert {(lag.topic, lag.partition) for lag in lags} == {(topic, 0), (topic, 1)}
    return next(lag for lag in lags if lag.partition == 0)


@pytest.mark.parametrize("transactional", [False, True], ids=["plain", "transactional"])
def test_lag_matches_the_committed_offsets(
    local_stack: Settings,
    new_topic: TopicFactory,
    unique_name: Callable[[str], str],
    monitor: LagMonitor,
    transactional: bool,
) -> None:
    topic, group = new_topic("lag", partitions=2), unique_name("group")
    produce(local_stack, topic, RECORDS, transactional=transactional)
    markers = 1 if transactional else 0  # one commit marker after the transaction
    committed = 7
    commit(local_stack, group, topic, committed)

    behind = partition_zero(monitor, group, topic)
    assert (behind.committed, behind.end) == (committed, RECORDS + markers)
    assert (behind.records, behind.exact) == (RECORDS - committed, True)
    assert behind.seconds is not None
    assert 3590 < behind.seconds < 3600 + 600

    empty = next(lag for lag in monitor.measure([ConsumerGroup(group, (topic,))]) if lag.partition)
    assert (empty.committed, empty.records, empty.seconds) == (None, 0, 0.0)

    # A consumer that processed every record commits the offset after the last one,
    # which on a transactional topic is the commit marker's: that is no lag.
    commit(local_stack, group, topic, RECORDS)
    caught_up = partition_zero(monitor, group, topic)
    assert (caught_up.committed, caught_up.records, caught_up.seconds) == (RECORDS, 0, 0.0)


def test_beyond_the_exact_limit_lag_is_the_offset_distance(
    local_stack: Settings, new_topic: TopicFactory, unique_name: Callable[[str], str]
) -> None:
    topic, group = new_topic("lag", partitions=2), unique_name("group")
    produce(local_stack, topic, RECORDS, transactional=True)
    commit(local_stack, group, topic, 7)
    monitor = LagMonitor(local_stack, exact_limit=5)
    try:
        lag = partition_zero(monitor, group, topic)
    finally:
        monitor.close()
    assert (lag.records, lag.exact) == (RECORDS + 1 - 7, False)  # the marker is counted
    assert lag.seconds is not None and lag.seconds > 3590


def test_open_and_aborted_transactions_are_not_lag(
    local_stack: Settings,
    new_topic: TopicFactory,
    unique_name: Callable[[str], str],
    monitor: LagMonitor,
) -> None:
    topic, group = new_topic("lag", partitions=2), unique_name("group")
    produce(local_stack, topic, RECORDS, transactional=True)
    commit(local_stack, group, topic, 5)
    producer = Producer(
        {**local_stack.kafka.confluent_config(), "transactional.id": unique_name("tx")}
    )
    producer.init_transactions(30)
    producer.begin_transaction()
    for number in range(4):
        producer.produce(topic, f"open{number}".encode(), partition=0)
    producer.flush(30)

    open_ = partition_zero(monitor, group, topic)
    assert (open_.end, open_.records) == (RECORDS + 1, RECORDS - 5)  # end = last stable offset

    producer.abort_transaction(30)
    # abort_transaction returns once the coordinator has decided; it writes the marker
    # right after, and only then does the last stable offset move past it.
    expected_end = RECORDS + 1 + 4 + 1  # four aborted records and the abort marker
    deadline = time.monotonic() + 15
    aborted = partition_zero(monitor, group, topic)
    while aborted.end < expected_end and time.monotonic() < deadline:
        time.sleep(0.2)
        aborted = partition_zero(monitor, group, topic)
    assert aborted.end == expected_end
    assert (aborted.records, aborted.exact) == (RECORDS - 5, True)


def test_groups_without_commits_or_members_are_left_out(
    local_stack: Settings, new_topic: TopicFactory, monitor: LagMonitor
) -> None:
    topic = new_topic("lag", partitions=1)
    produce(local_stack, topic, 3, transactional=False)
    assert monitor.measure([ConsumerGroup(f"absent-{uuid.uuid4().hex}", (topic,))]) == []


def test_the_exporter_publishes_lag_of_the_product_groups(
    local_stack: Settings, kafka_admin: AdminClient, unique_name: Callable[[str], str]
) -> None:
    prefix = unique_name("x") + "-"
    events = prefix + "events"
    kafka_admin.create_topics([NewTopic(events, 2, 1)])[events].result(30)
    settings = local_stack.model_copy(
        update={
            "kafka": local_stack.kafka.model_copy(update={"topic_prefix": prefix}),
            "observability": ObservabilitySettings(host="127.0.0.1", port=0, lag_interval_s=0.2),
        }
    )
    sink_group = prefix + "cqrs-sink-order-summary"
    health = Health.for_settings(settings)
    stop = threading.Event()
    try:
        produce(settings, events, RECORDS, transactional=True)
        commit(settings, sink_group, events, 5)
        with start_observability_server(settings, health) as server:
            runner = threading.Thread(target=LagExporter(settings, health).run, args=(stop,))
            runner.start()
            series = (
                f'cqrs_consumer_lag_records{{group="{sink_group}",partition="0",topic="{events}"}}'
            )

            def published(value: str) -> Callable[[], str]:
                def check() -> str:
                    text = httpx.get(f"{server.url}/metrics").text
                    return text if f"{series} {value}" in text else ""

                return check

            text = wait_until(published(f"{RECORDS - 5}.0"), 30, "lag of the sink group")
            assert f'cqrs_consumer_lag_seconds{{group="{sink_group}",partition="0"' in text
            assert httpx.get(f"{server.url}/readyz").status_code == 200
            commit(settings, sink_group, events, RECORDS)
            wait_until(published("0.0"), 30, "the caught-up lag")
            stop.set()
            runner.join(30)
    finally:
        stop.set()
        kafka_admin.delete_topics([events])[events].result(30)


def test_cqrs_lag_prints_the_table_and_json(
    local_stack: Settings, new_topic: TopicFactory, unique_name: Callable[[str], str]
) -> None:
    from typer.testing import CliRunner

    from cqrs.cli import app

    topic, group = new_topic("lag", partitions=1), unique_name("group")
    produce(local_stack, topic, RECORDS, transactional=True)
    commit(local_stack, group, topic, 7)
    runner = CliRunner()
    as_json = runner.invoke(app, ["lag", "--json", "--group", group])
    assert as_json.exit_code == 0, as_json.output
    rows = [row for row in json.loads(as_json.output) if row["group"] == group]
    assert [(r["topic"], r["committed"], r["end"], r["records"]) for r in rows] == [
        (topic, 7, RECORDS + 1, RECORDS - 7)
    ]
    table = runner.invoke(app, ["lag", "--group", group], env={"COLUMNS": "250"})
    assert table.exit_code == 0, table.output
    line = next(line for line in table.output.splitlines() if group in line)
    cells = [cell.strip() for cell in line.split("│")[3:8]]
    assert cells[:4] == ["0", "7", "21", "13"]
    # The records were written an hour ago; the table shows that age, give or take a slow run.
    assert re.fullmatch(r"1h 0\dm", cells[4]), cells[4]


def test_cqrs_lag_serve_follows_the_process_contract(
    local_stack: Settings, tmp_path: Path, unique_name: Callable[[str], str]
) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {
        "CQRS_KAFKA__TOPIC_PREFIX": unique_name("serve") + "-",
        "CQRS_OBSERVABILITY__HOST": "127.0.0.1",
        "CQRS_OBSERVABILITY__PORT": str(port),
        "CQRS_OBSERVABILITY__LAG_INTERVAL_S": "0.5",
    }
    with (tmp_path / "lag.log").open("ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "cqrs", "lag", "serve"],
            env={**os.environ, **env},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:

        def answer(path: str) -> str:
            try:
                response = httpx.get(f"http://127.0.0.1:{port}{path}", timeout=3)
            except httpx.HTTPError:
                return ""
            return response.text if response.status_code == 200 else ""

        assert wait_until(lambda: answer("/readyz"), 60, "cqrs lag serve ready") == "ok\n"
        assert answer("/livez") == "ok\n"
        assert 'cqrs_lag_collections_total{outcome="ok"}' in answer("/metrics")
        process.send_signal(signal.SIGTERM)
        assert process.wait(30) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(30)
