"""Which records travel on which topic, and how each topic is configured.

One table for the whole product: the processors create their topics from it at
start-up, the schema commands register subjects from it, and the Kubernetes
topic manifests are generated from it, so the three can never drift.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from core.domain import Domain, View, load_domain
from core.settings import Settings
from schemas.catalog import SchemaCatalog
from schemas.compatibility import CompatibilityMode

COMPACTED = {"cleanup.policy": "compact", "min.compaction.lag.ms": "0"}
# Which dead letters were produced again, and where to (``cqrs dlq replay``).
DEAD_LETTER_REPLAYS = "dead-letter-replays"


@dataclass(frozen=True)
class TopicSpec:
    name: str
    records_under: str  # a record's full name, or a namespace whose records all travel here
    partitions: int
    config: dict[str, str] = field(default_factory=dict)
    compatibility: CompatibilityMode = CompatibilityMode.BACKWARD
    key: str = ""  # what the key is, for humans
    dead_letter: bool = False  # raw copies of records that could not be processed

    def records(self, catalog: SchemaCatalog) -> list[str]:
        return [
            name
            for name in catalog.records()
            if name == self.records_under or name.startswith(self.records_under + ".")
        ]


def settings_topic_specs(settings: Settings) -> list[TopicSpec]:
    """The topics of the domain ``settings.domain`` names, at the configured partitions."""
    return domain_topic_specs(load_domain(settings.domain), settings.processor.partitions)


def domain_topic_specs(domain: Domain, partitions: int = 6) -> list[TopicSpec]:
    """The topics of ``domain``: its namespace's commands and events, an inbox per
    process manager, the view topic of each projection that publishes views."""
    inboxes = tuple(manager.name for manager in domain.process_managers)
    views = tuple(p.view for p in domain.projections if p.view is not None)
    return topic_specs(partitions, domain.namespace, inboxes, views)


def topic_specs(
    partitions: int = 6,
    namespace: str = "cqrs",
    inboxes: tuple[str, ...] = (),
    views: tuple[View, ...] = (),
) -> list[TopicSpec]:
    """Every topic the product owns; names are prefixed with ``kafka.topic_prefix`` in use.
    ``namespace`` is the domain's (``Domain.namespace``): its commands and events travel
    on ``commands`` and ``events``."""
    return [
        TopicSpec(
            "commands",
            f"{namespace}.commands",
            partitions,
            {"retention.ms": "604800000"},
            CompatibilityMode.BACKWARD_TRANSITIVE,
            "aggregate id",
        ),
        TopicSpec(
            "command-results",
            "cqrs.envelope.CommandResult",
            partitions,
            {"retention.ms": "604800000"},
            CompatibilityMode.BACKWARD,
            "command id",
        ),
        TopicSpec(
            "events",
            f"{namespace}.events",
            partitions,
            {"retention.ms": "-1"},
            CompatibilityMode.BACKWARD_TRANSITIVE,
            "aggregate id",
        ),
        *(
            TopicSpec(
                view.topic,
                view.record,
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
                "",  # the events' own bytes, re-keyed: no subjects of its own
                partitions,
                {"retention.ms": "604800000"},
                key=f"{name} instance (its correlation key)",
            )
            for name in inboxes
        ),
        TopicSpec(
            "commands-dlq",
            "",
            partitions,
            {"retention.ms": "-1"},
            key="original key",
            dead_letter=True,
        ),
        TopicSpec(
            "events-dlq",
            "",
            partitions,
            {"retention.ms": "-1"},
            key="original key",
            dead_letter=True,
        ),
        TopicSpec(
            DEAD_LETTER_REPLAYS,
            "",  # JSON replay records, written with the replayed records in one transaction
            partitions,
            COMPACTED,
            key="<dead-letter topic>/<partition>/<offset>",
        ),
    ]
