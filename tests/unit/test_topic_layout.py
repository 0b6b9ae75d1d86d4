"""Where a domain's commands and events travel: one shared pair, or a pair per aggregate type."""

from __future__ import annotations

import dataclasses

import pytest

from aggregates.shop import domain as shop
from core.domain import Projection, View, kebab
from core.errors import ConfigurationError
from processors.messages import MessageTypes
from schemas.catalog import SchemaCatalog
from schemas.topics import domain_topic_specs
from tests.library.domain import domain as library

SHARED_LIBRARY = dataclasses.replace(library, topic_layout="shared")


def test_aggregate_names_become_kebab_case_topic_stems() -> None:
    assert [kebab(n) for n in ("Book", "StockItem", "InventoryItem")] == [
        "book",
        "stock-item",
        "inventory-item",
    ]


def test_the_shared_layout_has_one_writer_for_every_aggregate_type() -> None:
    [writer] = shop.writers
    assert (writer.commands, writer.events, writer.app_id("app")) == ("commands", "events", "app")
    assert set(writer.aggregates) == {a.name for a in shop.aggregates}
    assert shop.writer(None) == writer == shop.writer("Order")


def test_a_pair_per_aggregate_type_gives_each_type_its_writer_group_and_topics() -> None:
    book, member = library.writers
    assert (book.aggregates, book.commands, book.events, book.app_id("app")) == (
        ("Book",),
        "book-commands",
        "book-events",
        "app-book",
    )
    assert (member.commands, member.events) == ("member-commands", "member-events")
    assert library.writer_of("Member") == member == library.writer("Member")
    assert library.event_topics == ("book-events", "member-events")
    [loans] = library.process_managers
    assert library.observed_topics(loans) == ("book-events",)  # it observes BookLent only


def test_a_worker_of_a_per_aggregate_domain_must_name_its_type() -> None:
    with pytest.raises(ConfigurationError, match=r"--aggregate NAME \(one of Book, Member\)"):
        library.writer(None)
    with pytest.raises(ConfigurationError, match="no aggregate 'Loan'"):
        library.writer("Loan")


def test_an_unknown_layout_is_refused() -> None:
    with pytest.raises(ValueError, match="topic_layout 'by-type' is not one of"):
        dataclasses.replace(library, topic_layout="by-type")  # type: ignore[arg-type]


def test_each_topic_carries_exactly_its_aggregate_types_records() -> None:
    catalog = SchemaCatalog.for_domain(library)
    specs = {spec.name: spec for spec in domain_topic_specs(library)}
    assert "commands" not in specs and "events" not in specs
    assert specs["book-commands"].records(catalog) == [
        "library.commands.AddBook",
        "library.commands.LendBook",
    ]
    assert specs["member-commands"].records(catalog) == ["library.commands.RecordLoan"]
    assert specs["member-events"].records(catalog) == ["library.events.LoanRecorded"]
    shared = {spec.name: spec for spec in domain_topic_specs(SHARED_LIBRARY)}
    assert set(shared["commands"].records(catalog)) == {
        *specs["book-commands"].records(catalog),
        *specs["member-commands"].records(catalog),
    }


def test_topic_names_that_collide_are_refused() -> None:
    # An aggregate type whose events topic is also a projection's view topic.
    clash = dataclasses.replace(
        library,
        projections=(
            Projection("books", "tests.library.read_models:BOOKS", View("book-events", "x.V")),
        ),
    )
    with pytest.raises(ValueError, match=r"topic names repeat: \['book-events'\]"):
        domain_topic_specs(clash)


def test_a_writer_decides_only_its_own_types_commands() -> None:
    book_only = MessageTypes(library, ("Book",))
    assert set(book_only.commands) == {"library.commands.AddBook", "library.commands.LendBook"}
    assert set(book_only.all_commands) == set(library.command_types)
    assert set(MessageTypes(library).commands) == set(library.command_types)
