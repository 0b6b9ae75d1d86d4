"""Which records travel on which topic, and how each topic is configured.

One table for the whole product: the processors create their topics from it at
start-up, the schema commands register subjects from it, and the Kubernetes
topic manifests are generated from it, so the three can never drift.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from core.domain import Domain, View, Writer, load_domain
from core.settings import Settings
from schemas.catalog import SchemaCatalog
from schemas.compatibility import CompatibilityMode

COMPACTED = {"cleanup.policy": "compact", "min.compaction.lag.ms": "0"}
# Which dead letters were produced again, and where to (``cqrs dlq replay``).
DEAD_LETTER_REPLAYS = "dead-letter-replays"


@dataclass(frozen=True)
class TopicSpec:
    name: str
    # Full record names, or namespaces whose records all travel here; () for raw bytes.
    records_under: tuple[str, ...]
    partitions: int
    config: dict[str, str] = field(default_factory=dict)
    compatibility: CompatibilityMode = CompatibilityMode.BACKWARD
    key: str = ""  # what the key is, for humans
    dead_letter: bool = False  # raw copies of records that could not be processed

    def records(self, catalog: SchemaCatalog) -> list[str]:
        return [
            name
            for name in catalog.records()
            if any(name == under or name.startswith(under + ".") for under in self.records_under)
        ]


def settings_topic_specs(settings: Settings) -> list[TopicSpec]:
    """The topics of the domain ``settings.domain`` names, at the configured partitions."""
    return domain_topic_specs(load_domain(settings.domain), settings.processor.partitions)


def event_topic_names(settings: Settings) -> list[str]:
    """Every topic the domain's events travel on, prefixed."""
    prefix = settings.kafka.topic_prefix
    return [prefix + topic for topic in load_domain(settings.domain).event_topics]


def domain_topic_specs(domain: Domain, partitions: int = 6) -> list[TopicSpec]:
    """The topics of ``domain``: the commands and events of each of its writers (one
    shared pair, or one per aggregate type), an inbox per process manager, the view
    topic of each projection that publishes views."""
    inboxes = tuple(manager.name for manager in domain.process_managers)
    views = tuple(p.view for p in domain.projections if p.view is not None)
    if domain.topic_layout == "shared":
        pairs = [
            TopicPair(domain.writers[0], (domain.commands_namespace,), (domain.events_namespace,))
        ]
    else:
        pairs = [
            TopicPair(
                writer,
                tuple(f"{domain.commands_namespace}.{t.__name__}" for t in aggregate.commands),
                tuple(f"{domain.events_namespace}.{t.__name__}" for t in aggregate.events),
            )
            for writer in domain.writers
            for aggregate in [domain.aggregate(writer.aggregates[0])]
        ]
    specs = topic_specs(partitions, pairs=pairs, inboxes=inboxes, views=views)
    names = [spec.name for spec in specs]
    if len(set(names)) != len(names):
        repeated = sorted({name for name in names if names.count(name) > 1})
        raise ValueError(f"domain {domain.name!r}: topic names repeat: {repeated}")
    return specs


@dataclass(frozen=True)
class TopicPair:
    """A writer's command and event topics, and what travels on each (``records_under``)."""

    writer: Writer
    commands: tuple[str, ...]
    events: tuple[str, ...]


SHARED_PAIR = TopicPair(Writer((), "commands", "events"), ("cqrs.commands",), ("cqrs.events",))


def topic_specs(
    partitions: int = 6,
    *,
    pairs: list[TopicPair] | None = None,
    inboxes: tuple[str, ...] = (),
    views: tuple[View, ...] = (),
) -> list[TopicSpec]:
    """Every topic the product owns; names are prefixed with ``kafka.topic_prefix`` in use.
    ``pairs`` are the domain's command and event topics (the shop's shared pair when not
    given)."""
    pairs = pairs or [SHARED_PAIR]
    return [
        *(
            TopicSpec(
                pair.writer.commands,
                pair.commands,
                partitions,
                {"retention.ms": "604800000"},
                CompatibilityMode.BACKWARD_TRANSITIVE,
                "aggregate id",
            )
            for pair in pairs
        ),
        TopicSpec(
            "command-results",
            ("cqrs.envelope.CommandResult",),
            partitions,
            {"retention.ms": "604800000"},
            CompatibilityMode.BACKWARD,
            "command id",
        ),
        *(
            TopicSpec(
                pair.writer.events,
                pair.events,
                partitions,
                {"retention.ms": "-1"},
                CompatibilityMode.BACKWARD_TRANSITIVE,
                "aggregate id",
            )
            for pair in pairs
        ),
        *(
            TopicSpec(
                view.topic,
                (view.record,),
                partitions,
                COMPACTED,
                CompatibilityMode.BACKWARD,
                view.key,
            )
            for view in views
        ),
        *(
            TopicSpec(
                f"{name}-inbox",
                (),  # the events' own bytes, re-keyed: no subjects of its own
                partitions,
                {"retention.ms": "604800000"},
                key=f"{name} instance (its correlation key)",
            )
            for name in inboxes
        ),
        TopicSpec(
            "commands-dlq",
            (),
            partitions,
            {"retention.ms": "-1"},
            key="original key",
            dead_letter=True,
        ),
        TopicSpec(
            "events-dlq",
            (),
            partitions,
            {"retention.ms": "-1"},
            key="original key",
            dead_letter=True,
        ),
        TopicSpec(
            DEAD_LETTER_REPLAYS,
            (),  # JSON replay records, written with the replayed records in one transaction
            partitions,
            COMPACTED,
            key="<dead-letter topic>/<partition>/<offset>",
        ),
    ]
