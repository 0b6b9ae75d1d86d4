"""The files ``cqrs new`` writes, as ``string.Template`` texts.

``$package`` is the package, ``$Agg`` / ``$agg`` / ``$AGG`` the aggregate
(``Ticket`` / ``ticket`` / ``TICKET``) and ``$aggs`` / ``$AGGS`` its projection
(``tickets``). ``$$`` is a plain dollar sign.
"""

INIT = '''"""$package: a domain on cqrs-pipeline (CQRS_DOMAIN=$package.domain:domain)."""
'''

DOMAIN = '''"""The $package domain: ${agg}s are opened and closed.

Everything here is pure: no Kafka, no IO. The pipeline decides each command
against the aggregate's state, writes the events and remembers the result;
CQRS_DOMAIN=$package.domain:domain selects this domain in every process.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from cqrs import (
    Aggregate,
    AlreadyExistsError,
    Domain,
    IllegalTransitionError,
    Projection,
)


@dataclass(frozen=True)
class $Agg:  # the state; $Agg() is one that does not exist yet
    title: str = ""
    status: str = ""  # "" (none yet), "OPEN" or "CLOSED"


# Commands and events: one Avro record each in schemas/, named
# $package.commands.<Class> and $package.events.<Class>, fields as here.
@dataclass(frozen=True)
class Open$Agg:
    title: str


@dataclass(frozen=True)
class Close$Agg:
    reason: str


@dataclass(frozen=True)
class ${Agg}Opened:
    title: str


@dataclass(frozen=True)
class ${Agg}Closed:
    reason: str


Command = Open$Agg | Close$Agg
Event = ${Agg}Opened | ${Agg}Closed


def decide(state: $Agg, command: Command) -> list[Event]:
    """The events a command leads to, or a DomainError (the command is then rejected)."""
    match command:
        case Open$Agg(title=title):
            if state.status:
                raise AlreadyExistsError(
                    "${AGG}_EXISTS", "this $agg was opened already"
                )
            return [${Agg}Opened(title)]
        case Close$Agg(reason=reason):
            if state.status != "OPEN":
                raise IllegalTransitionError(
                    "${AGG}_NOT_OPEN", "only an open $agg can be closed"
                )
            return [${Agg}Closed(reason)]


def evolve(state: $Agg, event: Event) -> $Agg:
    """The state after an event (also used to rebuild state from the log)."""
    match event:
        case ${Agg}Opened(title=title):
            return replace(state, title=title, status="OPEN")
        case ${Agg}Closed():
            return replace(state, status="CLOSED")


$AGG = Aggregate(
    "$Agg",
    $Agg(),
    decide,
    evolve,
    (Open$Agg, Close$Agg),
    (${Agg}Opened, ${Agg}Closed),
)

domain = Domain(
    name="$package",
    aggregates=($AGG,),
    schemas=Path(__file__).parent / "schemas",
    namespace="$package",
    # By reference: only the sink that runs it imports the database client.
    projections=(Projection("$aggs", "$package.read_models:$AGGS"),),
)
'''

READ_MODELS = '''"""The $aggs read model: one PostgreSQL row per $agg (cqrs sink run $aggs)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from cqrs.read_models import (
    Applied,
    Cursor,
    Entry,
    EventRecord,
    Migration,
    PostgresEntry,
    PostgresProjection,
    position_tables,
    sql,
)


@dataclass(frozen=True)
class Change:
    """What one event makes of its $agg's row."""

    id: str
    version: int
    changed_at: datetime
    status: str
    title: str | None = None  # None: the title stays


def convert(record: EventRecord) -> Change | None:
    """Pure: the change an event makes; None for events this projection ignores."""
    at = record.metadata["recorded_at"]
    if record.event_type == "${Agg}Opened":
        return Change(
            record.aggregate_id, record.sequence, at, "OPEN", record.value["title"]
        )
    if record.event_type == "${Agg}Closed":
        return Change(record.aggregate_id, record.sequence, at, "CLOSED")
    return None


def latest(changes: Sequence[Change]) -> list[Change]:
    """Pure: a batch's changes folded to one per $agg (the newest, keeping a title)."""
    folded: dict[str, Change] = {}
    for change in sorted(changes, key=lambda c: c.version):
        before = folded.get(change.id)
        title = change.title
        if title is None and before is not None:
            title = before.title
        folded[change.id] = Change(
            change.id, change.version, change.changed_at, change.status, title
        )
    return list(folded.values())


def _tables(schema: str) -> list[sql.Composed]:
    return [
        *position_tables(schema),
        sql.SQL(
            """CREATE TABLE {} (
                id text PRIMARY KEY,
                title text NOT NULL DEFAULT '',
                status text NOT NULL,
                changed_at timestamptz NOT NULL,
                version bigint NOT NULL
            )"""
        ).format(sql.Identifier(schema, "$aggs")),
    ]


class ${Agg}sProjection(PostgresProjection[Change]):
    name = "$aggs"
    description = "$aggs (one row per $agg: title, status, version)"
    exposed = ("$aggs",)
    migrations = (Migration(1, "$aggs", _tables),)
    version_table = "$aggs"
    version_key = "id"
    event_types = frozenset({"${Agg}Opened", "${Agg}Closed"})

    def convert(self, record: EventRecord) -> Change | None:
        return convert(record)

    def apply(
        self,
        cur: Cursor,
        schema: str,
        entries: Sequence[Entry[Change]],
        *,
        views: bool = True,
    ) -> Applied:
        changes = latest([entry.item for entry in entries])
        columns: dict[str, list[Any]] = {
            "id": [c.id for c in changes],
            "title": [c.title for c in changes],
            "status": [c.status for c in changes],
            "changed_at": [c.changed_at for c in changes],
            "version": [c.version for c in changes],
        }
        # Only a newer version changes a row, so a batch applied twice changes nothing.
        cur.execute(
            sql.SQL(
                "INSERT INTO {t} AS t (id, title, status, changed_at, version)"
                " SELECT id, COALESCE(title, ''), status, changed_at, version FROM unnest("
                " %(id)s::text[], %(title)s::text[], %(status)s::text[],"
                " %(changed_at)s::timestamptz[], %(version)s::bigint[])"
                " AS i(id, title, status, changed_at, version)"
                " ON CONFLICT (id) DO UPDATE SET"
                " title = COALESCE(NULLIF(excluded.title, ''), t.title),"
                " status = excluded.status, changed_at = excluded.changed_at,"
                " version = excluded.version"
                " WHERE t.version < excluded.version"
            ).format(t=sql.Identifier(schema, "$aggs")),
            columns,
        )
        return Applied()


$AGGS = PostgresEntry(
    "$aggs",
    "PostgreSQL $aggs (one row per $agg)",
    lambda _: ${Agg}sProjection(),
)
'''

TESTS = '''"""The $package domain's rules and its projection's conversion: pure, no services."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from cqrs import AlreadyExistsError, IllegalTransitionError
from cqrs.read_models import EventRecord

from $package import domain as d
from $package.read_models import Change, convert, latest

AT = datetime(2026, 1, 1, tzinfo=UTC)


def test_${agg}_closes_once_and_only_when_open() -> None:
    opened = d.evolve(d.$Agg(), d.${Agg}Opened("first"))
    assert d.decide(opened, d.Close$Agg("done")) == [d.${Agg}Closed("done")]
    closed = d.evolve(opened, d.${Agg}Closed("done"))
    with pytest.raises(IllegalTransitionError) as rejected:
        d.decide(closed, d.Close$Agg("again"))
    assert rejected.value.code == "${AGG}_NOT_OPEN"


def test_${agg}_opens_only_once() -> None:
    assert d.decide(d.$Agg(), d.Open$Agg("first")) == [d.${Agg}Opened("first")]
    opened = d.evolve(d.$Agg(), d.${Agg}Opened("first"))
    with pytest.raises(AlreadyExistsError):
        d.decide(opened, d.Open$Agg("second"))


def _record(event_type: str, sequence: int, **fields: str) -> EventRecord:
    metadata = {"aggregate_id": "$agg-1", "sequence": sequence, "recorded_at": AT}
    value = {"metadata": metadata, **fields}
    return EventRecord(f"$package.events.{event_type}", value)


def test_the_projection_keeps_the_title_and_the_latest_status() -> None:
    changes = [
        convert(_record("${Agg}Opened", 1, title="first")),
        convert(_record("${Agg}Closed", 2, reason="done")),
    ]
    assert latest([c for c in changes if c is not None]) == [
        Change("$agg-1", 2, AT, "CLOSED", "first")
    ]
'''

END_TO_END = '''"""The $package domain end to end on the local stack (`cqrs stack up`).

The worker and the $aggs sink run as real processes on topics and groups of
their own; a command goes in through the client, its result comes back, and
the read model shows it. Skipped, with the reason, when the stack is not up.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest
from confluent_kafka.admin import AdminClient
from cqrs import Settings, load_settings
from cqrs.children import WORKER_READY, cqrs_process
from cqrs.client import CommandClient

DOMAIN = "$package.domain:domain"


@pytest.fixture
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Settings]:
    """Settings of this test alone: its own topic prefix, groups and data directory."""
    run = uuid.uuid4().hex[:8]
    here = str(Path(__file__).resolve().parents[2])  # the directory holding the package
    env = {
        "CQRS_DOMAIN": DOMAIN,
        "CQRS_KAFKA__TOPIC_PREFIX": f"t{run}-",
        "CQRS_PROCESSOR__APP_ID": f"t{run}-commands",
        "CQRS_PROCESSOR__DATADIR": str(tmp_path / "state"),
        "CQRS_SINKS__POSTGRES_SCHEMA": f"t{run}",
        "CQRS_OBSERVABILITY__PORT": "0",  # a free port each
        "PYTHONPATH": os.pathsep.join(filter(None, [here, os.environ.get("PYTHONPATH")])),
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    settings = load_settings()
    try:
        AdminClient(settings.kafka.confluent_config()).list_topics(timeout=5)
    except Exception as error:  # noqa: BLE001 - any failure means: no stack here
        pytest.skip(f"the local stack is not running ({error}): cqrs stack up")
    yield settings


def test_a_command_is_decided_and_reaches_the_read_model(
    isolated: Settings, tmp_path: Path
) -> None:
    aggregate_id = f"$agg-{uuid.uuid4().hex[:6]}"
    worker = (["worker"], tmp_path / "worker.log", [WORKER_READY])
    sink = (["sink", "run", "$aggs"], tmp_path / "sink.log", ["sink $aggs assigned"])
    with ExitStack() as running:
        running.enter_context(cqrs_process(*worker))
        running.enter_context(cqrs_process(*sink))
        with CommandClient(isolated) as client:
            opened = client.send_and_wait("Open$Agg", aggregate_id, {"title": "first"})
            again = client.send_and_wait("Open$Agg", aggregate_id, {"title": "again"})
            assert (opened.status, opened.version) == ("ACCEPTED", 1)
            assert (again.status, again.rejection_code) == ("REJECTED", "${AGG}_EXISTS")
            shown = client.wait_for_projection("$aggs", aggregate_id, 1, timeout_s=90)
            assert shown >= 1
'''

README = """# $package

A domain on cqrs-pipeline, written by `cqrs new`: ${agg}s are opened
(`Open$Agg`) and closed (`Close$Agg`), and the `$aggs` projection keeps one
PostgreSQL row per $agg.

- `domain.py`: the aggregate (state, commands, events, `decide`, `evolve`) and
  the `domain` every process loads with `CQRS_DOMAIN=$package.domain:domain`;
- `schemas/`: the Avro records of the commands and events (namespace
  `$package`), registered by the worker at start;
- `read_models.py`: the `$aggs` projection (`cqrs sink run $aggs`);
- `tests/`: the rules and the projection's conversion, pure, and one test end
  to end on the local stack (skipped when it is not up).

From the directory that holds this package, with it on the import path:

```bash
export PYTHONPATH=$$PWD CQRS_DOMAIN=$package.domain:domain
python -m pytest $package/tests
cqrs worker &
cqrs send Open$Agg -a $agg-1 --json '{"title": "first"}'
```

The pipeline's docs/new-domain.md goes on from there.
"""
