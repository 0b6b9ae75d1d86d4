"""A team's domain, declared: its aggregates, their commands and events, its Avro contracts.

The pipeline runs whatever domain ``CQRS_DOMAIN`` names (``package.module:attribute``,
an object of type ``Domain``); every process and command derives what it handles
from it. What a team writes here is pure: state, ``decide`` and ``evolve`` are plain
functions over frozen dataclasses, with no Kafka and no IO.

An aggregate's commands and events are dataclasses whose class names are the Avro
record names under the domain's namespace: ``PlaceOrder`` is
``<namespace>.commands.PlaceOrder``, ``OrderPlaced`` is ``<namespace>.events.OrderPlaced``,
each defined by an ``.avsc`` file under the domain's schema folder (which may also hold
shared types). The envelope records (``cqrs.envelope.*``: command metadata, event
metadata, results) are the pipeline's own and available to every domain.
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any, Generic, Literal, TypeVar

from core.errors import ConfigurationError, VersionConflictError
from core.upcasting import Upcasters

State = TypeVar("State")
Event = TypeVar("Event")
# Where commands and events travel: one ``commands``/``events`` pair for the whole domain,
# or one ``<aggregate>-commands``/``<aggregate>-events`` pair per aggregate type (each
# then decided by its own command processor, scaled and retained on its own).
TopicLayout = Literal["shared", "per-aggregate"]
TOPIC_LAYOUTS: tuple[TopicLayout, ...] = ("shared", "per-aggregate")


@dataclass(frozen=True)
class Aggregate(Generic[State]):
    """One aggregate type: the state of one instance is ``evolve`` folded over its events,
    starting from ``initial``; ``decide`` turns a command into events or raises a
    ``DomainError`` (the command is rejected with its code)."""

    name: str  # the aggregate type, as events and results carry it (e.g. "Order")
    initial: State
    decide: Callable[[State, Any], Sequence[Any]]
    evolve: Callable[[State, Any], State]
    commands: tuple[type, ...]
    events: tuple[type, ...]

    def __post_init__(self) -> None:
        if not self.name.isidentifier():
            raise ValueError(f"aggregate name {self.name!r} must be an identifier")
        if not dataclasses.is_dataclass(self.initial) or isinstance(self.initial, type):
            raise ValueError(f"{self.name}: initial must be a dataclass instance")
        for role, types in (("command", self.commands), ("event", self.events)):
            if not types:
                raise ValueError(f"{self.name}: declares no {role} types")
            for declared in types:
                if not (isinstance(declared, type) and dataclasses.is_dataclass(declared)):
                    raise ValueError(f"{self.name}: {role} type {declared!r} is not a dataclass")


@dataclass(frozen=True)
class Observation(Generic[Event]):
    """An event as a process manager sees it: the fact and where it came from."""

    event: Event
    aggregate_type: str  # of the aggregate that emitted it
    aggregate_id: str
    event_id: str
    recorded_at: datetime


@dataclass(frozen=True)
class Issue:
    """A command a process manager sends to one aggregate (the command's class says
    which aggregate type)."""

    aggregate_id: str
    command: Any


@dataclass(frozen=True)
class ProcessManager(Generic[State]):
    """A long-running flow across aggregates (a saga): it observes events, keeps one
    state per flow instance, and reacts with commands.

    ``correlate`` says which instance an observed event belongs to (e.g. the order id
    of a stock reservation); every event of one instance reaches the same worker,
    where ``react(state, key, observation)`` returns the instance's new state and the
    commands to send. Commands are issued with ids derived from the causing event's
    id, so an event delivered again issues the same commands, which the aggregates
    answer once."""

    name: str  # names its consumer group, inbox topic ``<name>-inbox`` and state table
    initial: State
    observes: tuple[type, ...]  # the event classes it reacts to
    correlate: Callable[[Observation[Any]], str]
    react: Callable[[State, str, Observation[Any]], tuple[State, Sequence[Issue]]]

    def __post_init__(self) -> None:
        if not self.name.replace("-", "_").isidentifier() or self.name != self.name.lower():
            raise ValueError(f"process manager name {self.name!r}: lower case, digits, dashes")
        if not dataclasses.is_dataclass(self.initial) or isinstance(self.initial, type):
            raise ValueError(f"{self.name}: initial must be a dataclass instance")
        if not self.observes:
            raise ValueError(f"{self.name}: observes no event type")


@dataclass(frozen=True)
class View:
    """A projection's compacted topic of views (one record per key, the latest)."""

    topic: str  # before the topic prefix, e.g. "order-summary"
    record: str  # its Avro record's full name, e.g. "cqrs.views.OrderSummary"
    key: str = ""  # what the key is, for humans


@dataclass(frozen=True)
class Projection:
    """A read model of the domain, named by ``cqrs sink run NAME``.

    ``entry`` (``package.module:attribute``) names the object that builds its sink,
    migrates and rebuilds its store and waits for an aggregate's version in it (a
    ``sinks.registry.ProjectionEntry``, e.g. a ``PostgresEntry``); it is imported only by
    the processes that run the projection, so a worker never loads a database client."""

    name: str
    entry: str
    view: View | None = None

    def __post_init__(self) -> None:
        module, _, attribute = self.entry.partition(":")
        if not module or not attribute:
            raise ValueError(f"projection {self.name!r}: entry must be package.module:attribute")


def kebab(name: str) -> str:
    """``StockItem`` → ``stock-item``: an aggregate name as topics and groups spell it."""
    return "".join(
        f"-{ch.lower()}" if ch.isupper() and i else ch.lower() for i, ch in enumerate(name)
    )


@dataclass(frozen=True)
class Writer:
    """One command processor of a domain: the consumer group that decides the commands
    on one topic and writes their events to one topic (names before the topic prefix)."""

    aggregates: tuple[str, ...]  # the aggregate types it decides
    commands: str
    events: str
    suffix: str = ""  # of its app id: "" for the shared pair, "-<aggregate>" otherwise

    def app_id(self, base: str) -> str:
        """Its consumer group, transactional id prefix and changelog prefix."""
        return base + self.suffix


@dataclass(frozen=True)
class Domain:
    """Everything the pipeline needs to know about a team's domain."""

    name: str
    aggregates: tuple[Aggregate[Any], ...]
    schemas: Path  # folder of the domain's .avsc files (any depth)
    namespace: str = "cqrs"  # Avro namespace root of its commands and events
    upcasters: Upcasters = field(default_factory=Upcasters)
    process_managers: tuple[ProcessManager[Any], ...] = ()
    projections: tuple[Projection, ...] = ()
    topic_layout: TopicLayout = "shared"

    def __post_init__(self) -> None:
        if not self.aggregates:
            raise ValueError(f"domain {self.name!r} declares no aggregate")
        if self.topic_layout not in TOPIC_LAYOUTS:
            raise ValueError(
                f"domain {self.name!r}: topic_layout {self.topic_layout!r} is not one of "
                f"{', '.join(TOPIC_LAYOUTS)}"
            )
        self._unique("projection", [projection.name for projection in self.projections])
        self._unique("process manager", [manager.name for manager in self.process_managers])
        events = {declared for aggregate in self.aggregates for declared in aggregate.events}
        for manager in self.process_managers:
            if unknown := [t.__name__ for t in manager.observes if t not in events]:
                raise ValueError(
                    f"{manager.name} observes events no aggregate of {self.name!r} emits: {unknown}"
                )
        self._unique("aggregate", [aggregate.name for aggregate in self.aggregates])
        declared = (
            ("command", self.command_types, sum(len(a.commands) for a in self.aggregates)),
            ("event", self.event_types, sum(len(a.events) for a in self.aggregates)),
        )
        for role, records, classes in declared:
            if len(records) != classes:
                raise ValueError(
                    f"domain {self.name!r}: two aggregates declare a {role} of the same name"
                )

    def _unique(self, kind: str, names: list[str]) -> None:
        if len(set(names)) != len(names):
            raise ValueError(f"domain {self.name!r}: {kind} names repeat: {names}")

    @property
    def commands_namespace(self) -> str:
        return f"{self.namespace}.commands"

    @property
    def events_namespace(self) -> str:
        return f"{self.namespace}.events"

    @property
    def command_types(self) -> dict[str, tuple[Aggregate[Any], type]]:
        """Record full name → (aggregate, command class)."""
        return {
            f"{self.commands_namespace}.{declared.__name__}": (aggregate, declared)
            for aggregate in self.aggregates
            for declared in aggregate.commands
        }

    @property
    def event_types(self) -> dict[str, tuple[Aggregate[Any], type]]:
        """Record full name → (aggregate, event class)."""
        return {
            f"{self.events_namespace}.{declared.__name__}": (aggregate, declared)
            for aggregate in self.aggregates
            for declared in aggregate.events
        }

    @property
    def writers(self) -> tuple[Writer, ...]:
        """The command processors the domain runs: one for the shared topic pair, or one
        per aggregate type."""
        if self.topic_layout == "shared":
            names = tuple(aggregate.name for aggregate in self.aggregates)
            return (Writer(names, "commands", "events"),)
        return tuple(
            Writer(
                (a.name,),
                f"{kebab(a.name)}-commands",
                f"{kebab(a.name)}-events",
                f"-{kebab(a.name)}",
            )
            for a in self.aggregates
        )

    def writer_of(self, aggregate: str) -> Writer:
        """The command processor that decides ``aggregate``'s commands."""
        for writer in self.writers:
            if aggregate in writer.aggregates:
                return writer
        raise KeyError(aggregate)

    def writer(self, aggregate: str | None) -> Writer:
        """The writer ``cqrs worker [--aggregate NAME]`` runs; a ConfigurationError that
        names the choices when the choice is missing or unknown."""
        writers = self.writers
        known = ", ".join(a.name for a in self.aggregates)
        if aggregate is None:
            if len(writers) == 1:
                return writers[0]
            raise ConfigurationError(
                f"domain {self.name!r} keeps a topic pair per aggregate type, each with a "
                f"command processor of its own: name one, --aggregate NAME (one of {known})"
            )
        if aggregate not in {a.name for a in self.aggregates}:
            raise ConfigurationError(
                f"no aggregate {aggregate!r} in domain {self.name!r} ({known})"
            )
        return self.writer_of(aggregate)

    @property
    def event_topics(self) -> tuple[str, ...]:
        """Every topic the domain's events travel on (before the topic prefix)."""
        return tuple(writer.events for writer in self.writers)

    def observed_topics(self, manager: ProcessManager[Any]) -> tuple[str, ...]:
        """The event topics a process manager reads: those of the aggregates whose
        events it observes."""
        observed = {
            aggregate.name
            for aggregate, event in self.event_types.values()
            if event in manager.observes
        }
        return tuple(w.events for w in self.writers if observed & set(w.aggregates))

    def projection(self, name: str) -> Projection:
        for projection in self.projections:
            if projection.name == name:
                return projection
        known = ", ".join(p.name for p in self.projections) or "none"
        raise ConfigurationError(
            f"no projection named {name!r} in domain {self.name!r} (known: {known})"
        )

    def process_manager(self, name: str) -> ProcessManager[Any]:
        for manager in self.process_managers:
            if manager.name == name:
                return manager
        known = ", ".join(m.name for m in self.process_managers) or "none"
        raise ConfigurationError(f"no process manager {name!r} in domain {self.name!r} ({known})")

    def aggregate(self, name: str) -> Aggregate[Any]:
        for aggregate in self.aggregates:
            if aggregate.name == name:
                return aggregate
        raise KeyError(name)


def import_reference(reference: str, what: str) -> object:
    """The object ``package.module:attribute`` names; a ConfigurationError starting with
    ``what`` (the setting or declaration that holds the reference) otherwise."""
    module_name, _, attribute = reference.partition(":")
    if not module_name or not attribute:
        raise ConfigurationError(f"{what}: expected package.module:attribute")
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise ConfigurationError(
            f"{what}: cannot import {module_name} ({error}); is its package installed?"
        ) from error
    found = getattr(module, attribute, None)
    if found is None:
        raise ConfigurationError(f"{what}: {module_name} has no attribute {attribute}")
    return found


@cache
def load_domain(spec: str) -> Domain:
    """The ``Domain`` that ``package.module:attribute`` names; a ConfigurationError that
    says what is wrong otherwise."""
    setting = f"CQRS_DOMAIN={spec!r}"
    found = import_reference(spec, setting)
    if not isinstance(found, Domain):
        raise ConfigurationError(f"{setting}: {spec} is a {type(found).__name__}, not a Domain")
    if not found.schemas.is_dir():
        raise ConfigurationError(
            f"{setting}: the domain's schema folder {found.schemas} does not exist"
        )
    return found


def check_expected_version(expected: int | None, current: int) -> None:
    """Optimistic concurrency: ``None`` skips the check."""
    if expected is not None and expected != current:
        raise VersionConflictError(expected, current)
