"""``cqrs dlq``: list, show and replay dead letters (``cqrs.dead_letter_tools``)."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Annotated

import typer

from core.settings import Settings, load_settings

if TYPE_CHECKING:
    from cqrs.dead_letter_records import DeadLetter, DeadLetterDetail, DeadLetterRef, Selection
    from cqrs.dead_letter_replay import ReplayReport

dlq_app = typer.Typer(
    help="Dead letters: list them, show one, replay them to where they came from.",
    no_args_is_help=True,
)

JsonOption = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]
TopicOption = Annotated[
    str | None,
    typer.Option("--topic", "-t", help="A dead-letter topic, e.g. commands-dlq (default: all)."),
]
CodeOption = Annotated[
    str | None, typer.Option("--code", "-c", help="Only dead letters with this error.code.")
]


def _progress(line: str) -> None:
    # For a person watching only: stdout stays the command's output, and a failure
    # read by a script stays the one line on stderr.
    if sys.stderr.isatty():
        print(line, file=sys.stderr, flush=True)


@dlq_app.command("list")
def list_letters(
    topic: TopicOption = None,
    code: CodeOption = None,
    limit: Annotated[
        int, typer.Option("--limit", "-n", min=1, help="At most this many, the newest.")
    ] = 100,
    as_json: JsonOption = False,
) -> None:
    """The newest dead letters, oldest first: where, what failed, from where, age, replayed."""
    from cqrs.dead_letter_tools import list_dead_letters

    settings = load_settings()
    _progress(f"reading {_known(settings, topic) or 'every dead-letter topic'}…")
    letters = list_dead_letters(settings, topic=topic, limit=limit, code=code)
    if as_json:
        print(json.dumps([letter.as_dict() for letter in letters], indent=2))
    elif letters:
        _print_table(letters)
    else:
        print("no dead letters")


@dlq_app.command("show")
def show(
    where: Annotated[
        list[str],
        typer.Argument(
            help="TOPIC PARTITION OFFSET, or TOPIC/PARTITION/OFFSET.", show_default=False
        ),
    ],
    as_json: JsonOption = False,
) -> None:
    """One dead letter: every header, its key, and its value decoded (or its raw bytes)."""
    from cqrs.dead_letter_tools import show_dead_letter

    ref = _one_ref(where)
    detail = show_dead_letter(load_settings(), ref.topic, ref.partition, ref.offset)
    if as_json:
        print(json.dumps(detail.as_dict(), indent=2))
    else:
        _print_detail(detail)


@dlq_app.command("replay")
def replay(  # noqa: PLR0917 - typer maps each parameter to an argument or option
    refs: Annotated[
        list[str] | None,
        typer.Argument(help="Dead letters as TOPIC/PARTITION/OFFSET.", show_default=False),
    ] = None,
    topic: Annotated[
        str | None, typer.Option("--topic", "-t", help="Every dead letter of this topic.")
    ] = None,
    code: Annotated[
        str | None, typer.Option("--code", "-c", help="Every dead letter with this error.code.")
    ] = None,
    again: Annotated[
        bool, typer.Option("--again", help="Replay dead letters replayed before, too.")
    ] = False,
    yes: Annotated[
        bool, typer.Option("--yes", "-y", help="Replay them (without: say what would be).")
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Produce dead letters again to their original topic, each recorded once (exit 1 if
    any failed). Without --yes, a dry run: what would be replayed."""
    from cqrs.dead_letter_tools import replay_dead_letters

    selections = _selections(refs or [], topic, code)
    settings = load_settings()
    for selection in selections:
        _known(settings, selection.topic)
    _progress("reading the dead letters…" if yes else "dry run: reading the dead letters…")
    report = replay_dead_letters(settings, selections, again=again, dry_run=not yes)
    if as_json:
        print(json.dumps(report.as_dict(), indent=2))
    else:
        _print_report(report)
    if report.failed:
        raise typer.Exit(1)


def _known(settings: Settings, topic: str | None) -> str | None:
    """``topic``'s real name, checked before any progress is printed (errors are one line)."""
    from cqrs.dead_letter_reading import dead_letter_topics
    from cqrs.dead_letter_records import resolve_topic

    return None if topic is None else resolve_topic(topic, dead_letter_topics(settings))


def _one_ref(where: Sequence[str]) -> DeadLetterRef:
    if len(where) == 1:
        return _parsed(where[0])
    if len(where) == 3:
        return _parsed("/".join(where))
    raise typer.BadParameter(
        f"expected TOPIC PARTITION OFFSET or TOPIC/PARTITION/OFFSET, got {len(where)} values",
        param_hint="WHERE",
    )


def _parsed(text: str) -> DeadLetterRef:
    from core.errors import DeadLetterError
    from cqrs.dead_letter_records import parse_selection

    try:
        return parse_selection(text)
    except DeadLetterError as error:
        raise typer.BadParameter(str(error)) from None


def _selections(refs: Sequence[str], topic: str | None, code: str | None) -> list[Selection]:
    from cqrs.dead_letter_records import Matching

    if refs and (topic or code):
        raise typer.BadParameter("name dead letters or use --topic/--code, not both")
    if refs:
        return [_parsed(text) for text in refs]
    if topic is None and code is None:
        raise typer.BadParameter(
            "select dead letters: TOPIC/PARTITION/OFFSET ..., --topic T or --code C"
        )
    return [Matching(topic, code)]


def _print_table(letters: Sequence[DeadLetter]) -> None:
    from rich.console import Console
    from rich.table import Table

    from cqrs.cli_lag import format_seconds

    table = Table("dead letter", "code", "component", "original", "age", "replayed")
    for column in table.columns:
        column.overflow = "fold"  # names are what matters: wrap them, never elide
    for letter in letters:
        table.add_row(
            str(letter.ref),
            letter.code or "?",
            letter.component or "?",
            letter.original,
            format_seconds(letter.age_s),
            "yes" if letter.replayed else "no",
        )
    Console().print(table)


def _print_detail(detail: DeadLetterDetail) -> None:
    from cqrs.cli_lag import format_seconds
    from cqrs.dead_letter_records import plain

    letter = detail.letter
    key = f"{letter.key} (hex)" if letter.key_is_hex else repr(letter.key)
    replay = letter.replay
    lines = [
        f"dead letter  {letter.ref}",
        f"error        {letter.code} ({letter.error_class}): {letter.message}",
        f"original     {letter.original}",
        f"component    {letter.component}",
        f"age          {format_seconds(letter.age_s)}",
        f"replayed     {f'{replay.replayed_at} by {replay.by}' if replay else 'no'}",
        f"key          {key}",
        "headers",
        *(f"  {name}: {_short(value)}" for name, value in detail.headers),
    ]
    if detail.decoded:
        lines.append(f"value        {detail.record_type} (schema id {detail.schema_id})")
        lines.append(json.dumps(plain(detail.value), indent=2))
    else:
        lines.append(f"value        not decoded: {detail.undecoded_reason}")
        if detail.value_hex is not None:
            lines.append(f"  {detail.value_size} bytes, hex: {detail.value_hex}")
    print("\n".join(lines))


def _short(value: str | None) -> str:
    if value is None:
        return "(none)"
    first = value.splitlines()[0] if value else ""
    return first if first == value else f"{first} … ({len(value)} characters)"


def _print_report(report: ReplayReport) -> None:
    from cqrs.dead_letter_records import Outcome

    for found in report.outcomes:
        if found.outcome is Outcome.REPLAYED:
            target = f"{found.target_topic}/{found.target_partition}/{found.target_offset}"
            print(f"replayed      {found.ref} → {target}")
        elif found.outcome is Outcome.PLANNED:
            print(f"would replay  {found.ref} → {found.target_topic}")
        else:
            print(f"{found.outcome:<13} {found.ref}: {found.reason}")
    if report.dry_run:
        print(
            f"dry run: {report.planned} would be replayed, {report.skipped} skipped, "
            f"{report.failed} failed; nothing was written. Add --yes to replay them."
        )
    else:
        print(f"{report.replayed} replayed, {report.skipped} skipped, {report.failed} failed")
