"""A search projection: documents folded from events, one per aggregate, pure (no IO).

A team declares what the index holds (``mappings``), what an event changes
(``convert``, a change carrying the aggregate's id and sequence) and how a
change makes the next document (``apply``). The search sink
(``sinks.search.sink``) does the rest for any projection: batches, the alias
over index generations, external versioning, the document cache, reading a
document back after a restart, refusals to the dead-letter topic, and side by
side rebuilds.

Every document holds the whole state of its aggregate and the version (the
sequence of the last event applied), so the index itself is the fold's memory:
a sink that restarts reads a document back and applies only newer events.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar

from core.errors import InvalidEventError
from sinks.base import Entry, EventRecord


class Change(Protocol):
    """What one event means to a document: whose, and at which version."""

    @property
    def document_id(self) -> str: ...

    @property
    def sequence(self) -> int: ...


class Document(Protocol):
    @property
    def document_id(self) -> str: ...

    @property
    def version(self) -> int: ...

    def to_source(self) -> dict[str, Any]:
        """The JSON document the index stores."""


C = TypeVar("C", bound=Change)
D = TypeVar("D", bound=Document)


class SearchProjection(ABC, Generic[C, D]):
    name: str  # the projection, e.g. "search-orders" (cqrs sink run NAME)
    index: str  # the alias is <search.index_prefix>-<index>, e.g. "orders"
    description: str
    mappings: Mapping[str, Any]  # the index's explicit mapping ("dynamic": "strict" advised)
    event_types: frozenset[str]  # the events it reads (others are not even decoded)

    @abstractmethod
    def convert(self, record: EventRecord) -> C | None:
        """The change an event makes, or None; ``InvalidEventError`` for a bad event."""

    @abstractmethod
    def apply(self, document: D | None, change: C) -> D:
        """The document after ``change``; ``InvalidEventError`` when it cannot apply."""

    @abstractmethod
    def from_source(self, source: Mapping[str, Any]) -> D:
        """A document read back from the index (the inverse of ``to_source``)."""

    def starts(self, change: C) -> bool:
        """Whether ``change`` creates its document (a gap before it is no gap)."""
        return change.sequence == 1


@dataclass
class Fold(Generic[C, D]):
    """The outcome of folding one document's changes of a batch onto its stored copy."""

    document: D | None
    base_version: int
    applied: list[Entry[C]] = field(default_factory=list)
    already_applied: list[Entry[C]] = field(default_factory=list)
    rejected: list[tuple[Entry[C], InvalidEventError]] = field(default_factory=list)
    gaps: list[tuple[int, int]] = field(default_factory=list)  # (expected, got) sequences

    @property
    def changed(self) -> bool:
        return self.document is not None and self.document.version > self.base_version


def fold(
    projection: SearchProjection[C, D], document: D | None, changes: Sequence[Entry[C]]
) -> Fold[C, D]:
    """Apply the changes newer than ``document``, in sequence order.

    Changes at or below the document's version were applied before (a
    redelivery) and are skipped. A change that cannot apply is rejected and the
    fold goes on. A sequence gap (an event dead-lettered earlier) is recorded;
    the later event still applies.
    """
    result: Fold[C, D] = Fold(document, document.version if document else 0)
    for entry in sorted(changes, key=lambda e: e.item.sequence):
        change = entry.item
        current = result.document
        if current is not None and change.sequence <= current.version:
            result.already_applied.append(entry)
            continue
        try:
            result.document = projection.apply(current, change)
        except InvalidEventError as error:
            result.rejected.append((entry, error))
            continue
        expected = (current.version if current else 0) + 1
        if change.sequence != expected and not projection.starts(change):
            result.gaps.append((expected, change.sequence))
        result.applied.append(entry)
    return result
