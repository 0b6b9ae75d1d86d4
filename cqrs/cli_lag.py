"""``cqrs lag``: consumer lag of the product's groups as a table, as JSON, or as an exporter."""

from __future__ import annotations

import json
import signal
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Annotated

import typer

from core.logs import configure_logging
from core.settings import load_settings

if TYPE_CHECKING:
    from cqrs.lag import ConsumerGroup, PartitionLag

lag_app = typer.Typer(
    help="Consumer lag of every consumer group of the product.",
    invoke_without_command=True,
)

GroupOption = Annotated[
    list[str] | None,
    typer.Option(
        "--group",
        "-g",
        help="Also measure this consumer group (every partition it committed); repeatable.",
    ),
]


@lag_app.callback()
def show(
    context: typer.Context,
    group: GroupOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
    exact_limit: Annotated[
        int,
        typer.Option(help="Count unprocessed records exactly up to this many per partition."),
    ] = 1000,
) -> None:
    """Per partition: committed offset, end offset, lag in records and time lag."""
    if context.invoked_subcommand is not None:
        return
    from cqrs.lag import LagMonitor, product_groups

    settings = load_settings()
    groups = [*product_groups(settings), *_extra(group)]
    monitor = LagMonitor(settings, exact_limit=exact_limit)
    try:
        monitor.reachable()
        lags = monitor.measure(groups)
    finally:
        monitor.close()
    if as_json:
        print(json.dumps([lag.as_dict() for lag in lags], indent=2))
        return
    if lags:
        _print_table(lags)
    missing = sorted({g.group for g in groups} - {lag.group for lag in lags})
    if missing:
        print(f"not found (no committed offsets, no members): {', '.join(missing)}")


@lag_app.command("serve")
def serve(group: GroupOption = None) -> None:
    """Publish cqrs_consumer_lag_records/_seconds on /metrics every observability.lag_interval_s."""
    from core.observability import Health, start_observability_server
    from cqrs.lag_exporter import LagExporter

    settings = load_settings()
    configure_logging(settings.log_level, settings.observability.log_format)
    health = Health.for_settings(settings)
    stop = threading.Event()
    for stop_signal in (signal.SIGTERM, signal.SIGINT):
        signal.signal(stop_signal, lambda _number, _frame: stop.set())
    with start_observability_server(settings, health):
        LagExporter(settings, health, _extra(group)).run(stop)


def _extra(groups: Sequence[str] | None) -> list[ConsumerGroup]:
    from cqrs.lag import ConsumerGroup

    return [ConsumerGroup(name, ()) for name in groups or []]


def format_seconds(seconds: float | None) -> str:
    """A time lag for people: 0s, 4.2s, 3m 05s, 2h 07m, 3d 04h; '?' when unknown."""
    if seconds is None:
        return "?"
    if seconds < 60:
        return f"{seconds:.1f}s" if seconds and seconds < 10 else f"{seconds:.0f}s"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    days, hours = divmod(hours, 24)
    if days:
        return f"{days}d {hours:02d}h"
    if hours:
        return f"{hours}h {minutes:02d}m"
    return f"{minutes}m {secs:02d}s"


def _print_table(lags: Sequence[PartitionLag]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table("group", "topic", "partition", "committed", "end", "lag", "time lag")
    for column in table.columns[:2]:
        column.overflow = "fold"  # names are what matters: wrap them, never elide
    for column in table.columns[2:]:
        column.justify = "right"
    for lag in lags:
        table.add_row(
            lag.group,
            lag.topic,
            str(lag.partition),
            "-" if lag.committed is None else str(lag.committed),
            str(lag.end),
            str(lag.records) if lag.exact else f"≤{lag.records}",
            format_seconds(lag.seconds),
        )
    Console().print(table)
    if any(not lag.exact for lag in lags):
        print("≤: offset distance, counting transaction markers (beyond --exact-limit)")
