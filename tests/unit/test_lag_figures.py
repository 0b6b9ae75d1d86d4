"""Lag figures from offsets and probes, the gauges they feed, and how they are shown."""

from __future__ import annotations

import pytest
from prometheus_client import REGISTRY

from core.settings import KafkaSettings, Settings
from cqrs.cli_lag import format_seconds
from cqrs.lag import PartitionLag, Probe, lag_of, product_groups, read_from
from cqrs.lag_exporter import LagGauges

NOW_MS = 1_700_000_000_000


def test_without_a_committed_offset_the_group_reads_from_the_log_start() -> None:
    assert read_from(None, 40) == 40
    assert read_from(10, 40) == 40  # committed offset already deleted by retention
    assert read_from(55, 40) == 55


def test_nothing_between_committed_and_end_is_no_lag_without_reading() -> None:
    assert lag_of(20, 0, 20, None, NOW_MS) == (0, True, 0.0)
    assert lag_of(25, 0, 20, None, NOW_MS) == (0, True, 0.0)


def test_a_probe_that_read_to_the_end_gives_the_exact_count_and_the_oldest_age() -> None:
    probe = Probe(first_timestamp_ms=NOW_MS - 90_500, counted=13, reached_end=True)
    assert lag_of(7, 0, 21, probe, NOW_MS) == (13, True, 90.5)


def test_only_markers_left_is_caught_up() -> None:
    assert lag_of(20, 0, 21, Probe(None, 0, True), NOW_MS) == (0, True, 0.0)


def test_a_probe_stopped_early_gives_the_offset_distance_as_an_estimate() -> None:
    assert lag_of(7, 0, 5007, Probe(NOW_MS - 2_000, 1, False), NOW_MS) == (5000, False, 2.0)
    assert lag_of(7, 0, 5007, Probe(None, 0, False), NOW_MS) == (5000, False, None)
    assert lag_of(7, 0, 5007, None, NOW_MS) == (5000, False, None)


def test_clock_skew_never_makes_a_negative_age() -> None:
    assert lag_of(0, 0, 1, Probe(NOW_MS + 5_000, 1, True), NOW_MS) == (1, True, 0.0)


def test_product_groups_follow_the_naming_contract() -> None:
    settings = Settings(kafka=KafkaSettings(topic_prefix="t1-"))
    groups = {group.group: group.topics for group in product_groups(settings)}
    assert groups[settings.processor.app_id] == ("t1-commands",)
    # The shop's process manager reads the events and its own inbox.
    assert groups["cqrs-fulfilment"] == ("t1-events", "t1-fulfilment-inbox")
    for projection in ("order-summary", "inventory-levels", "search-orders", "sales-analytics"):
        assert groups[f"t1-cqrs-sink-{projection}"] == ("t1-events",)


def lag(partition: int, records: int, seconds: float | None) -> PartitionLag:
    return PartitionLag("g-unit", "t-unit", partition, 0, 0, records, records, True, seconds)


def sample(name: str, partition: int) -> float | None:
    labels = {"group": "g-unit", "topic": "t-unit", "partition": str(partition)}
    return REGISTRY.get_sample_value(name, labels)


def test_gauges_follow_each_measurement_and_drop_partitions_no_longer_reported() -> None:
    gauges = LagGauges()
    gauges.publish([lag(0, 5, 12.0), lag(1, 0, 0.0)])
    assert sample("cqrs_consumer_lag_records", 0) == 5
    assert sample("cqrs_consumer_lag_seconds", 0) == 12.0
    assert sample("cqrs_consumer_lag_records", 1) == 0
    gauges.publish([lag(0, 2, None)])
    assert sample("cqrs_consumer_lag_records", 0) == 2
    assert sample("cqrs_consumer_lag_seconds", 0) is None  # not dated this round
    assert sample("cqrs_consumer_lag_records", 1) is None
    assert sample("cqrs_consumer_lag_seconds", 1) is None
    gauges.publish([])
    assert sample("cqrs_consumer_lag_records", 0) is None


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [
        (None, "?"),
        (0.0, "0s"),
        (4.25, "4.2s"),
        (42.0, "42s"),
        (185.0, "3m 05s"),
        (7_620.0, "2h 07m"),
        (273_600.0, "3d 04h"),
    ],
)
def test_time_lag_is_shown_for_people(seconds: float | None, shown: str) -> None:
    assert format_seconds(seconds) == shown
