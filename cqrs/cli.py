"""The ``cqrs`` command line: one entry point for every role and operation."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from core.domain import Domain, load_domain
from core.errors import ConfigurationError, PipelineError
from core.logs import configure_logging, keep_librdkafka_back
from core.settings import Settings, load_settings
from cqrs.cli_deploy import deploy_app
from cqrs.cli_dlq import dlq_app
from cqrs.cli_lag import lag_app
from cqrs.cli_query import query_app
from cqrs.cli_sinks import projections_app, sink_app

if TYPE_CHECKING:
    from deploy.stack.stack import ServiceState

app = typer.Typer(
    name="cqrs",
    help="A Kafka-native CQRS / event-sourcing pipeline.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
stack_app = typer.Typer(help="The local stack of real services.", no_args_is_help=True)
app.add_typer(stack_app, name="stack")
schemas_app = typer.Typer(help="The Avro contracts and the schema registry.", no_args_is_help=True)
app.add_typer(schemas_app, name="schemas")
app.add_typer(deploy_app, name="deploy")
app.add_typer(lag_app, name="lag")
app.add_typer(dlq_app, name="dlq")
app.add_typer(query_app, name="query")
app.add_typer(sink_app, name="sink")
app.add_typer(projections_app, name="projections")
replay_app = typer.Typer(help="Rebuild state from the event log.", no_args_is_help=True)
app.add_typer(replay_app, name="replay")


# Exit codes: 0 done, EXIT_FAILED an operation failed (the message says what to do),
# 2 a bad argument or option (click's own code), EXIT_REJECTED a command was rejected.
EXIT_FAILED = 1
EXIT_REJECTED = 3


def _show_version(shown: bool) -> None:
    if shown:
        from importlib.metadata import version

        _say(f"cqrs {version('cqrs-pipeline')}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_show_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """A Kafka-native CQRS / event-sourcing pipeline."""


def _settings() -> Settings:
    return load_settings()


def _domain(settings: Settings) -> Domain:
    return load_domain(settings.domain)


def _say(line: str) -> None:
    print(line, flush=True)


@stack_app.command("up")
def stack_up() -> None:
    """Start Kafka, PostgreSQL and OpenSearch (idempotent) and wait until ready."""
    from deploy.stack import stack

    states = stack.up(_settings(), _say)
    _print_states(states)


@stack_app.command("down")
def stack_down() -> None:
    """Stop every service of the local stack; no process remains."""
    from deploy.stack import stack

    stack.down(_settings(), _say)


@stack_app.command("status")
def stack_status(
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Say what runs, where it listens and where its log is; exit 1 unless all are ready."""
    from deploy.stack import stack

    states = stack.status(_settings())
    if as_json:
        payload = [{**state.__dict__, "log": str(state.log)} for state in states]
        print(json.dumps(payload, indent=2))
    else:
        _print_states(states)
    if not all(state.ready for state in states):
        raise typer.Exit(1)


@app.command("config")
def show_config() -> None:
    """Print the effective settings (secrets masked)."""
    print(_settings().model_dump_json(indent=2))


@app.command("demo")
def demo() -> None:
    """Run the main job on the local stack: workers, saga and sinks with a shop's traffic."""
    from cqrs import demo as shop

    try:
        shop.run(_settings(), _say)
    except PipelineError as error:
        _say(f"error: {error}")
        raise typer.Exit(1) from None


@app.command("registry")
def registry() -> None:
    """Serve the embedded Confluent-API schema registry where CQRS_REGISTRY__URL points."""

    from schemas.registry.server import serve

    settings = _settings()
    configure_logging(settings.log_level, settings.observability.log_format)
    serve(settings)


@schemas_app.command("list")
def schemas_list(
    offline: Annotated[
        bool, typer.Option(help="List the local schemas only; no registry is asked.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Every local schema, its subject, and what the registry holds for it."""
    import dataclasses

    from schemas import tooling

    states = tooling.list_states(_settings(), offline=offline)
    if as_json:
        print(json.dumps([dataclasses.asdict(state) for state in states], indent=2))
        return
    for state in states:
        _say(state.line())


@schemas_app.command("register")
def schemas_register() -> None:
    """Register every local schema under its topic's subject (sets new subjects' mode)."""
    from schemas import tooling

    for line in tooling.register_all(_settings()):
        _say(line)


@schemas_app.command("check")
def schemas_check() -> None:
    """Fail with a readable diff when a local schema is incompatible with the registry."""
    from schemas import tooling

    problems = tooling.check_all(_settings(), _say)
    if problems:
        _say(f"{problems} schema(s) incompatible with the registry")
        raise typer.Exit(1)
    _say("every local schema is compatible with the registry")


@app.command("new")
def new(
    package: Annotated[str, typer.Argument(help="The new domain's package, e.g. helpdesk.")],
    aggregate: Annotated[
        str, typer.Option(help="Its aggregate, CamelCase: opened and closed.")
    ] = "Ticket",
    into: Annotated[
        Path,
        typer.Option("--path", help="Directory to write the package in.", file_okay=False),
    ] = Path(),
) -> None:
    """Write a new domain package: an aggregate, its schemas, a read model and tests."""
    from cqrs import scaffold

    try:
        names = scaffold.check_names(package, aggregate)
    except ConfigurationError as error:
        raise typer.BadParameter(str(error)) from None
    written = scaffold.write(names, into)
    root = into / package
    _say(f"wrote {len(written)} files into {root}:")
    for path in written:
        _say(f"  {path.relative_to(root)}")
    _say(
        f"next: export PYTHONPATH={into.resolve()} CQRS_DOMAIN={package}.domain:domain; "
        f"python -m pytest {root}/tests; then see docs/new-domain.md"
    )


@app.command("worker")
def worker(
    aggregate: Annotated[
        str | None,
        typer.Option(
            "--aggregate",
            help="The aggregate type whose commands to decide, for a domain that keeps a "
            "topic pair per aggregate type (default: the domain's shared pair).",
        ),
    ] = None,
) -> None:
    """Run a command processor (exactly-once, librdkafka transactions) until stopped."""
    from processors.worker import command_task, run

    settings = _worker_settings()
    writer = _domain(settings).writer(aggregate)
    run(command_task(settings, writer), settings, writer.app_id(settings.processor.app_id))


@app.command("saga")
def saga(
    name: Annotated[
        str | None,
        typer.Argument(help="Which process manager of the domain (default: its only one)."),
    ] = None,
) -> None:
    """Run a process manager of the domain (exactly-once) until stopped."""
    from processors.worker import process_manager_task, run

    settings = _worker_settings()
    chosen = name or _only_process_manager(_domain(settings))
    group = settings.processor.process_manager_group(chosen)
    run(process_manager_task(settings, chosen), settings, group)


def _only_process_manager(domain: Domain) -> str:
    names = [manager.name for manager in domain.process_managers]
    if len(names) != 1:
        raise ConfigurationError(
            f"domain {domain.name!r} has {len(names)} process managers "
            f"({', '.join(names) or 'none'}): name the one to run, cqrs saga NAME"
        )
    return names[0]


def _worker_settings() -> Settings:
    settings = _settings()
    configure_logging(settings.log_level, settings.observability.log_format)
    return settings


@replay_app.command("state")
def replay_state(
    write: Annotated[
        bool,
        typer.Option(
            "--write", help="Replace the aggregate table with the rebuilt one (workers stopped)."
        ),
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
    aggregate: Annotated[
        str | None,
        typer.Option(
            "--aggregate",
            help="Whose command processor's table, for a domain with a topic pair per "
            "aggregate type.",
        ),
    ] = None,
) -> None:
    """Rebuild the aggregate table from `events`; compare it with the live one (exit 1 if
    they differ), or with --write make it the table the next worker restores."""
    from cqrs.cli_sinks import RichProgress
    from processors import replay
    from schemas.catalog import SchemaCatalog
    from schemas.registry_client import RegistryClient
    from schemas.serde import AvroSerde

    settings = _settings()
    domain = _domain(settings)
    writer = domain.writer(aggregate)
    serde = AvroSerde(
        RegistryClient(settings.registry),
        SchemaCatalog.for_domain(domain),
        domain.upcasters,
        auto_register=False,
    )

    with RichProgress() as progress:
        rebuilt = replay.rebuilt_table(settings, serde, writer, progress)
        live = replay.live_table(settings, writer, progress)
    found = replay.differences(live, rebuilt)
    written = 0
    if write:
        replay.write_table(settings, writer, rebuilt, replay.stale_keys(live, rebuilt))
        written = len(rebuilt)
    if as_json:
        report = {
            "aggregates": replay.aggregates(rebuilt),
            "differences": [
                {"key": str(d.key), "live": str(d.live), "rebuilt": str(d.rebuilt)} for d in found
            ],
            "written": written,
        }
        print(json.dumps(report, indent=2))
    else:
        _say(
            f"{replay.aggregates(rebuilt)} aggregates rebuilt from the event log; "
            f"{len(found)} differ from live"
        )
        for difference in found[:20]:
            _say(f"  {difference.key}: live={difference.live} rebuilt={difference.rebuilt}")
        if write:
            _say(f"wrote {written} entries to {replay.changelog_topic(settings, writer)}")
    if found and not write:
        raise typer.Exit(EXIT_FAILED)


@app.command("send")
def send(  # noqa: PLR0917 - typer maps each parameter to an option
    command: Annotated[str, typer.Argument(help="Command name, e.g. PlaceOrder.")],
    aggregate_id: Annotated[str, typer.Option("--aggregate-id", "-a", help="Target aggregate.")],
    payload: Annotated[
        str, typer.Option("--json", help="Command fields as JSON (no metadata).")
    ] = "{}",
    expected_version: Annotated[
        int | None, typer.Option(help="Optimistic concurrency check.")
    ] = None,
    command_id: Annotated[
        str | None, typer.Option(help="Idempotency key (default: random).")
    ] = None,
    wait: Annotated[bool, typer.Option(help="Wait for the command's result.")] = True,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for the result.")] = 30.0,
    wait_projection: Annotated[
        str | None,
        typer.Option(help="Then wait until this read model shows the new version."),
    ] = None,
) -> None:
    """Send one command; prints its result (exit 3 when rejected)."""
    from core.errors import UnknownCommandError
    from cqrs.client import CommandClient

    try:
        fields = json.loads(payload)
    except json.JSONDecodeError as error:
        raise typer.BadParameter(f"not valid JSON: {error}", param_hint="--json") from error
    if not isinstance(fields, dict):
        raise typer.BadParameter(
            f"must be a JSON object of the command's fields, not {type(fields).__name__}",
            param_hint="--json",
        )
    client = CommandClient(_settings())
    try:
        if not wait:
            _say(
                client.send(
                    command,
                    aggregate_id,
                    fields,
                    command_id=command_id,
                    expected_version=expected_version,
                )
            )
            return
        result = client.send_and_wait(
            command,
            aggregate_id,
            fields,
            timeout_s=timeout,
            command_id=command_id,
            expected_version=expected_version,
        )
        if wait_projection and result.accepted and result.version is not None:
            client.wait_for_projection(wait_projection, aggregate_id, result.version, timeout)
    except UnknownCommandError as error:  # raised before anything is sent or awaited
        raise typer.BadParameter(str(error), param_hint="COMMAND") from None
    finally:
        client.close()
    print(json.dumps(result.__dict__, indent=2))
    if not result.accepted:
        raise typer.Exit(EXIT_REJECTED)


def _print_states(states: Sequence[ServiceState]) -> None:
    for state in states:
        condition = "ready" if state.ready else ("NOT READY" if state.pid else "stopped")
        pid = f"pid {state.pid}" if state.pid else "-"
        _say(f"{state.name:<10} {condition:<9} {pid:<10} {state.address}")
        _say(f"{'':<10} log: {state.log}")


# typer vendors click and exports few of its exceptions; the others are these' bases.
_CLICK_ERRORS = {base.__name__: base for base in typer.BadParameter.__mro__}
ClickError: type[Exception] = _CLICK_ERRORS["ClickException"]
UsageError: type[Exception] = _CLICK_ERRORS["UsageError"]


def main() -> None:
    """Run the command line; every failure ends in one line on stderr and an exit code."""
    keep_librdkafka_back()  # until a long-running command configures logging
    try:
        code = app(standalone_mode=False)
    except UsageError as error:
        context: typer.Context | None = getattr(error, "ctx", None)
        if type(error).__name__ == "NoArgsIsHelpError" and context is not None:
            _say(context.get_help())
            sys.exit(0)
        where = context.command_path if context is not None else "cqrs"
        message = error.format_message()  # type: ignore[attr-defined]
        print(f"error: {message} (see {where} --help)", file=sys.stderr)
        sys.exit(error.exit_code)  # type: ignore[attr-defined]
    except ClickError as error:
        print(f"error: {error.format_message()}", file=sys.stderr)  # type: ignore[attr-defined]
        sys.exit(error.exit_code)  # type: ignore[attr-defined]
    except typer.Abort:
        print("aborted", file=sys.stderr)
        sys.exit(130)
    except PipelineError as error:
        print(f"error: {error}", file=sys.stderr, flush=True)
        sys.exit(EXIT_FAILED)
    sys.exit(code if isinstance(code, int) else 0)
