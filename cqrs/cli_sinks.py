"""``cqrs sink`` and ``cqrs projections``: run the read side, migrate and rebuild it."""

from __future__ import annotations

import json
from types import TracebackType
from typing import Annotated, Self

import typer

from core.logs import configure_logging
from core.settings import Settings, load_settings

sink_app = typer.Typer(help="Sink processes that write the read models.", no_args_is_help=True)
projections_app = typer.Typer(
    help="Read models: list, migrate, rebuild side by side.", no_args_is_help=True
)


def _settings() -> Settings:
    settings = load_settings()
    configure_logging(settings.log_level, settings.observability.log_format)
    return settings


@sink_app.command("run")
def run(
    projections: Annotated[
        list[str] | None,
        typer.Argument(help="Projection(s) to run, e.g. order-summary; several share a process."),
    ] = None,
    run_all: Annotated[
        bool, typer.Option("--all", help="Run every projection in this process (local runs).")
    ] = False,
) -> None:
    """Consume events into projections until SIGTERM/SIGINT; serves /metrics, /livez, /readyz."""
    from sinks import registry
    from sinks.service import run_sinks

    settings = _settings()
    if run_all == bool(projections):
        raise typer.BadParameter(
            f"name projections or use --all (known: {', '.join(registry.names(settings))})"
        )
    run_sinks(settings, registry.names(settings) if run_all else list(projections or []))


@projections_app.command("list")
def list_projections(
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Every projection, its consumer group and what it writes."""
    from sinks import registry
    from sinks.runner import sink_group

    settings = load_settings()
    listed = [
        {
            "name": name,
            "group": sink_group(settings, name),
            "store": (entry := registry.projection(name, settings)).store,
            "description": entry.description,
        }
        for name in registry.names(settings)
    ]
    if as_json:
        print(json.dumps(listed, indent=2))
        return
    for item in listed:
        print(f"{item['name']:<18} group {item['group']} ({item['store']})")
        print(f"{'':<18} {item['description']}")


@projections_app.command("migrate")
def migrate(
    projection: Annotated[str | None, typer.Argument(help="One projection (default: all).")] = None,
    store: Annotated[
        str | None,
        typer.Option(help="Only the projections kept in this store: postgres or search."),
    ] = None,
) -> None:
    """Create or upgrade the read-model stores (idempotent; sinks also do it at start)."""
    from sinks import registry

    if store is not None and store not in registry.STORES:
        raise typer.BadParameter(
            f"{store!r} is not a store; one of {', '.join(registry.STORES)}", param_hint="--store"
        )
    settings = _settings()
    chosen = [projection] if projection else registry.names(settings)
    entries = [registry.projection(name, settings) for name in chosen]
    if store is not None:
        entries = [entry for entry in entries if entry.store == store]
    for entry in entries:
        name = entry.name
        changes = entry.migrate(settings)
        for line in changes:
            print(f"applied {line}")
        print(f"{name}: {'migrated' if changes else 'up to date'}")


@projections_app.command("rebuild")
def rebuild(
    projection: Annotated[str, typer.Argument(help="Projection to rebuild, e.g. order-summary.")],
) -> None:
    """Replay the event log into a new table set (or index) beside the live one, then switch.

    The live projection keeps serving, and its sink keeps running, until the
    switch; the new one then holds exactly what the live one had applied.
    """
    from sinks import registry
    from sinks.service import prepared_serde

    settings = _settings()
    entry = registry.projection(projection, settings)
    with RichProgress() as progress:
        report = entry.rebuild(settings, prepared_serde(settings), progress)
    print(
        f"{report.projection} rebuilt into {report.target}: {report.replayed} events in "
        f"{report.seconds:.1f}s ({report.rate:,.0f}/s), {report.skipped} skipped as unusable"
    )


class RichProgress:
    """A progress bar with rate and ETA per phase of a rebuild, on stderr."""

    def __init__(self) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TaskID,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self._progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("events"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            # Progress is for the person watching; stdout stays the command's output.
            console=Console(stderr=True),
        )
        self._task: TaskID | None = None

    def __enter__(self) -> Self:
        self._progress.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._progress.stop()

    def phase(self, description: str, total: int) -> None:
        for task in self._progress.tasks:
            if task.id == self._task:
                self._progress.update(task.id, completed=task.total)
        self._task = self._progress.add_task(description, total=max(total, 1))

    def advance(self, records: int) -> None:
        if self._task is not None:
            self._progress.advance(self._task, records)
