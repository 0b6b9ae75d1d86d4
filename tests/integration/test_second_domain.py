"""A domain that is not the shop (``tests/library``), run by ``cqrs worker`` end to end.

It is built only with the public API and selected with ``CQRS_DOMAIN``: its
commands are decided, its events written under its own namespace, its
rejections, repeats and version conflicts answered as the shop's are, and its
table rebuilt from its own log by ``cqrs replay state``. Unlike the shop it keeps
a topic pair per aggregate type, each decided by a command processor of its own
(``cqrs worker --aggregate Book``, ``... Member``).
"""

from __future__ import annotations

import dataclasses
import io
import json
import re
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import fastavro
import httpx
import pytest
from confluent_kafka import Producer

from core.domain import load_domain
from core.errors import UnknownCommandError
from core.settings import Settings
from cqrs.client import CommandClient
from cqrs.query.consistency import ConsistencyToken
from schemas.catalog import SchemaCatalog
from schemas.registry_client import RegistryClient
from schemas.topic_admin import ensure_topics
from tests.integration.pipeline import Pipeline, answers_ok, wait_until
from tests.integration.query_support import free_port
from tests.integration.sink_support import drop_read_models, query

LIBRARY = "tests.library.domain:domain"
WORKERS = ("worker --aggregate Book", "worker --aggregate Member")


@pytest.fixture(scope="module")
def pipeline(local_stack: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pipeline]:
    pipeline = Pipeline.create(
        local_stack,
        tmp_path_factory.mktemp("logs"),
        tmp_path_factory.mktemp("state"),
        domain=LIBRARY,
    )
    with pipeline.running(*WORKERS, "saga"):  # the saga: the library's only one, loans
        yield pipeline


def test_the_library_decides_its_own_commands_into_its_own_events(
    client: CommandClient, pipeline: Pipeline
) -> None:
    book = f"book-{uuid.uuid4().hex[:6]}"
    added = client.send_and_wait("AddBook", book, {"title": "Dubliners"})
    lent = client.send_and_wait("LendBook", book, {"member": "m-1"}, expected_version=1)
    again = client.send_and_wait("LendBook", book, {"member": "m-2"})
    twice = client.send_and_wait("AddBook", book, {"title": "Ulysses"})

    assert (added.status, added.version) == ("ACCEPTED", 1)
    assert (lent.status, lent.version) == ("ACCEPTED", 2)
    assert (again.status, again.rejection_code) == ("REJECTED", "ON_LOAN")
    assert (twice.status, twice.rejection_code) == ("REJECTED", "BOOK_EXISTS")
    events = pipeline.events(book)
    assert [e["type"] for e in events] == ["BookAdded", "BookLent"]
    assert [e["metadata"]["aggregate_type"] for e in events] == ["Book", "Book"]
    assert [e["metadata"]["sequence"] for e in events] == [1, 2]
    assert events[1]["member"] == "m-1"
    subjects = RegistryClient(pipeline.settings.registry).subjects()
    prefix = pipeline.settings.kafka.topic_prefix
    assert f"{prefix}book-events-library.events.BookLent" in subjects
    assert f"{prefix}book-commands-library.commands.AddBook" in subjects
    assert f"{prefix}member-commands-library.commands.RecordLoan" in subjects
    assert f"{prefix}book-commands-library.commands.RecordLoan" not in subjects
    assert not any("cqrs.events.OrderPlaced" in s for s in subjects if s.startswith(prefix))
    # Each aggregate type's records on its own topics, nothing on a shared pair.
    assert {key for key, _, _ in pipeline.read("book-events")} >= {book.encode()}
    assert book.encode() not in {key for key, _, _ in pipeline.read("member-events")}
    assert pipeline.read("events", idle_s=0.5) == []


def test_repeats_and_version_conflicts_are_answered_as_for_any_domain(
    client: CommandClient, pipeline: Pipeline
) -> None:
    book = f"book-{uuid.uuid4().hex[:6]}"
    command_id = str(uuid.uuid4())
    first = client.send_and_wait("AddBook", book, {"title": "Emma"}, command_id=command_id)
    repeated = client.send_and_wait("AddBook", book, {"title": "Emma"}, command_id=command_id)
    stale = client.send_and_wait("LendBook", book, {"member": "m-1"}, expected_version=0)

    assert repeated == first
    assert (stale.status, stale.rejection_code, stale.current_version) == (
        "REJECTED",
        "VERSION_CONFLICT",
        1,
    )
    assert len(pipeline.events(book)) == 1
    with pytest.raises(UnknownCommandError, match=r"one of AddBook, LendBook, RecordLoan$"):
        client.send("PlaceOrder", book, {})


def test_its_process_manager_turns_each_loan_into_a_command_for_the_member(
    client: CommandClient, pipeline: Pipeline
) -> None:
    member = f"member-{uuid.uuid4().hex[:6]}"
    books = [f"book-{uuid.uuid4().hex[:6]}" for _ in range(2)]
    for book in books:
        client.send_and_wait("AddBook", book, {"title": book})
        assert client.send_and_wait("LendBook", book, {"member": member}).accepted

    def two_recorded() -> list[dict[str, Any]]:
        found = pipeline.events(member)
        return found if len(found) == 2 else []

    recorded = wait_until(two_recorded, what=f"two LoanRecorded for {member}")
    assert [e["type"] for e in recorded] == ["LoanRecorded", "LoanRecorded"]
    assert sorted(e["book"] for e in recorded) == sorted(books)
    assert {e["metadata"]["aggregate_type"] for e in recorded} == {"Member"}
    issued = [r for r in pipeline.read("member-commands") if r[0] == member.encode()]
    commands = [pipeline.serde().decode(value).value["metadata"] for _, value, _ in issued]
    assert [c["issued_by"] for c in commands] == ["cqrs-loans", "cqrs-loans"]
    lent = {e["metadata"]["event_id"] for b in books for e in pipeline.events(b)[1:]}
    assert {c["causation_id"] for c in commands} == lent


def test_replay_rebuilds_each_aggregate_types_table_from_its_log(pipeline: Pipeline) -> None:
    for aggregate in ("Book", "Member"):
        replayed = pipeline.cli("replay", "state", "--aggregate", aggregate)

        assert replayed.returncode == 0, replayed.stdout + replayed.stderr
        found = re.search(r"(\d+) aggregates rebuilt from the event log; 0 differ", replayed.stdout)
        # The books and the members of the tests above.
        assert found and int(found.group(1)) >= 2, (aggregate, replayed.stdout)
    unnamed = pipeline.cli("replay", "state")
    assert unnamed.returncode == 1, unnamed.stdout + unnamed.stderr
    assert "--aggregate NAME (one of Book, Member)" in unnamed.stderr


def test_a_revision_one_event_is_upcast_by_the_running_process_manager(
    local_stack: Settings, tmp_path: Path
) -> None:
    # An event written before BookLent's revision 2, by a writer that numbered members:
    # only the domain's upcaster knows it means member-7.
    pipeline = Pipeline.create(local_stack, tmp_path, tmp_path / "state", domain=LIBRARY)
    settings = pipeline.settings
    topic = settings.kafka.topic_prefix + "book-events"
    ensure_topics(settings)
    v1 = SchemaCatalog.for_domain(load_domain(LIBRARY)).self_contained("library.events.BookLent")
    v1["revision"] = 1
    v1["fields"] = [v1["fields"][0], {"name": "member_number", "type": "int"}]
    registry = RegistryClient(settings.registry)
    schema_id = registry.register(f"{topic}-library.events.BookLent", json.dumps(v1))
    book, now = f"book-{uuid.uuid4().hex[:6]}", datetime.now(UTC)
    metadata = {
        "event_id": str(uuid.uuid4()),
        "aggregate_type": "Book",
        "aggregate_id": book,
        "sequence": 2,
        "command_id": str(uuid.uuid4()),
        "correlation_id": "c-1",
        "causation_id": "c-1",
        "occurred_at": now,
        "recorded_at": now,
    }
    body = io.BytesIO()
    fastavro.schemaless_writer(
        body, fastavro.parse_schema(v1), {"metadata": metadata, "member_number": 7}
    )
    producer = Producer(settings.kafka.confluent_config())
    producer.produce(topic, b"\0" + schema_id.to_bytes(4, "big") + body.getvalue(), book.encode())
    assert producer.flush(10) == 0

    with pipeline.running(*WORKERS, "saga"):
        [recorded] = wait_until(lambda: pipeline.events("member-7"), what="member-7's loan")

    assert (recorded["type"], recorded["book"]) == ("LoanRecorded", book)
    [(_, issued, _)] = [r for r in pipeline.read("member-commands") if r[0] == b"member-7"]
    assert pipeline.serde().decode(issued).value["metadata"]["causation_id"] == metadata["event_id"]
    [old] = pipeline.events(book)
    assert old["member"] == "member-7"  # the test's own reader upcasts too


def test_its_projection_runs_in_a_sink_and_answers_read_your_writes(
    local_stack: Settings, tmp_path: Path
) -> None:
    created = Pipeline.create(local_stack, tmp_path, tmp_path / "state", domain=LIBRARY)
    schema = f"rm_{created.settings.kafka.topic_prefix.strip('-')}"
    sinks = created.settings.sinks.model_copy(update={"postgres_schema": schema})
    pipeline = dataclasses.replace(
        created,
        settings=created.settings.model_copy(update={"sinks": sinks}),
        env={**created.env, "CQRS_SINKS__POSTGRES_SCHEMA": schema},
    )
    sink = pipeline.process("sink", "run", "books", name="sink", ready="sink books assigned")
    port = free_port()
    server = pipeline.process(
        "query", "serve", "--port", str(port), name="query", ready="query service on"
    )
    book = f"book-{uuid.uuid4().hex[:6]}"
    try:
        with pipeline.running(*WORKERS), CommandClient(pipeline.settings) as client:
            sink.start()
            server.start()
            client.send_and_wait("AddBook", book, {"title": "Persuasion"})
            lent = client.send_and_wait("LendBook", book, {"member": "member-3"})
            shown = client.wait_for_projection("books", book, lent.version or 0)
            rows = query(
                pipeline.settings,
                "SELECT title, lent_to, version FROM {base}.books WHERE book = %s",
                book,
            )
            listed = pipeline.cli("projections", "list")
            # Through the query service: the gateway's token names the Book events topic,
            # and a read that carries it waits for the sink on that topic.
            base = f"http://127.0.0.1:{port}"
            wait_until(lambda: answers_ok(f"{base}/readyz"), 60, "query service ready")
            with httpx.Client(base_url=base, timeout=60) as api:
                returned = api.post(
                    "/commands/AddBook",
                    json={"aggregate_id": f"{book}-2", "payload": {"title": "Emma"}},
                )
                token = returned.json().get("consistency_token", "")
                view = api.get(
                    f"/projections/books/{book}-2",
                    headers={"X-Consistency-Token": token},
                    params={"timeout": "20"},
                )
    finally:
        server.stop()
        sink.stop()
        drop_read_models(pipeline.settings)

    assert shown == 2
    assert rows == [("Persuasion", "member-3", 2)]
    assert returned.status_code == 200, returned.text
    assert ConsistencyToken.decode(token).topic == "book-events"
    assert view.status_code == 200, view.text
    assert (view.json()["title"], view.json()["version"]) == ("Emma", 1)
    assert listed.returncode == 0 and listed.stdout.startswith("books "), listed.stdout
