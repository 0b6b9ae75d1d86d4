"""The library: books lent to members (the domain of docs/domain.md, verbatim)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from cqrs import (
    Aggregate,
    AlreadyExistsError,
    Domain,
    IllegalTransitionError,
    Issue,
    Observation,
    ProcessManager,
    Projection,
    Upcasters,
)


@dataclass(frozen=True)
class Book:  # the state; Book() is a book that does not exist yet
    title: str = ""
    on_loan: bool = False
    exists: bool = False


@dataclass(frozen=True)
class AddBook:  # commands: <namespace>.commands.AddBook in Avro
    title: str


@dataclass(frozen=True)
class LendBook:
    member: str


@dataclass(frozen=True)
class BookAdded:  # events: <namespace>.events.BookAdded in Avro
    title: str


@dataclass(frozen=True)
class BookLent:
    member: str


def decide(state: Book, command: AddBook | LendBook) -> list[BookAdded | BookLent]:
    match command:
        case AddBook(title=title):
            if state.exists:
                raise AlreadyExistsError("BOOK_EXISTS", "the book is in the catalogue")
            return [BookAdded(title)]
        case LendBook(member=member):
            if state.on_loan:
                raise IllegalTransitionError("ON_LOAN", "the book is already lent")
            return [BookLent(member)]


def evolve(state: Book, event: BookAdded | BookLent) -> Book:
    match event:
        case BookAdded(title=title):
            return replace(state, title=title, exists=True)
        case BookLent():
            return replace(state, on_loan=True)


BOOK = Aggregate("Book", Book(), decide, evolve, (AddBook, LendBook), (BookAdded, BookLent))


@dataclass(frozen=True)
class Member:  # a second aggregate: what a member has borrowed
    books: tuple[str, ...] = ()


@dataclass(frozen=True)
class RecordLoan:
    book: str


@dataclass(frozen=True)
class LoanRecorded:
    book: str


def decide_member(state: Member, command: RecordLoan) -> list[LoanRecorded]:
    return [] if command.book in state.books else [LoanRecorded(command.book)]


def evolve_member(state: Member, event: LoanRecorded) -> Member:
    return replace(state, books=(*state.books, event.book))


MEMBER = Aggregate("Member", Member(), decide_member, evolve_member, (RecordLoan,), (LoanRecorded,))


@dataclass(frozen=True)
class Loans:  # a process manager's state, one per member
    lent: int = 0


def member_of(seen: Observation[BookLent]) -> str:
    return seen.event.member  # the flow instance: every loan of a member meets here


def record_loan(
    state: Loans, member: str, seen: Observation[BookLent]
) -> tuple[Loans, list[Issue]]:
    return replace(state, lent=state.lent + 1), [Issue(member, RecordLoan(seen.aggregate_id))]


LOANS = ProcessManager("loans", Loans(), (BookLent,), member_of, record_loan)

upcasters = Upcasters()


@upcasters.register("library.events.BookLent", from_revision=1)
def member_by_id(old: dict[str, Any]) -> dict[str, Any]:
    # Revision 1 numbered members; revision 2 names them by id.
    return {**old, "member": f"member-{old['member_number']}"}


domain = Domain(
    name="library",
    aggregates=(BOOK, MEMBER),
    schemas=Path(__file__).parent / "schemas",
    namespace="library",
    upcasters=upcasters,
    process_managers=(LOANS,),
    # The read model, by reference: only a process that runs it imports its module.
    projections=(Projection("books", "tests.library.read_models:BOOKS"),),
    # Unlike the shop, each aggregate type has its own topics and command processor.
    topic_layout="per-aggregate",
)
