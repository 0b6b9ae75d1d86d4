"""The Helm chart's topic table, generated from ``schemas/topics.py``.

On Kubernetes the topics are Strimzi ``KafkaTopic`` resources owned by the
platform, and the processes run with ``kafka.topic_creation = "verify"``. The
chart renders those resources from ``files/topics.json``, which this module
writes from the product's one topic table (plus the embedded registry's
schema topic), so the manifests cannot drift from what the code expects:
``cqrs deploy topics`` rewrites the file, ``cqrs deploy topics --check`` (and a
unit test) fail when the committed file is stale.

Partition counts, retention and compaction come from the code; replication
and ``min.insync.replicas`` depend on the cluster and are chart values.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from core.domain import Domain, load_domain
from core.settings import ProcessorSettings, Settings
from processors import command_task
from processors.process_manager_task import changelog_topic
from schemas.registry.store import TOPIC_CONFIG as SCHEMA_TOPIC_CONFIG
from schemas.topic_admin import CHANGELOG_CONFIG
from schemas.topics import TopicSpec, domain_topic_specs

# The chart renders the default domain's topics (the shop's).
DEFAULT_DOMAIN = load_domain(Settings.model_fields["domain"].default)

CHART_DIR = Path(__file__).parent / "helm" / "cqrs-pipeline"
TOPICS_FILE = CHART_DIR / "files" / "topics.json"
GENERATED_BY = "cqrs deploy topics (from schemas/topics.py); do not edit by hand"


def _entry(spec: TopicSpec) -> dict[str, Any]:
    return {
        "name": spec.name,
        "partitions": spec.partitions,
        "config": dict(sorted(spec.config.items())),
        "key": spec.key,
        "compatibility": str(spec.compatibility),
        "deadLetter": spec.dead_letter,
    }


def topic_table(domain: Domain = DEFAULT_DOMAIN) -> dict[str, Any]:
    """What the chart needs to know about every topic of ``domain``, as plain data."""
    return {
        "generatedBy": GENERATED_BY,
        "productTopics": [_entry(spec) for spec in domain_topic_specs(domain)],
        # The workers' state, one partition per input partition; named by the app ids
        # (the chart runs the default ones), never prefixed.
        "changelogTopics": _changelogs(domain),
        # The embedded registry's log: one partition, so one ordered history.
        "schemaTopic": {"partitions": 1, "config": dict(sorted(SCHEMA_TOPIC_CONFIG.items()))},
    }


def _changelogs(domain: Domain) -> list[dict[str, Any]]:
    processor = ProcessorSettings()
    names = {
        command_task.changelog_topic(writer.app_id(processor.app_id)): (
            "command processor state"
            if domain.topic_layout == "shared"
            else f"command processor state of {writer.aggregates[0]}"
        )
        for writer in domain.writers
    }
    for manager in domain.process_managers:
        group = processor.process_manager_group(manager.name)
        names[changelog_topic(group, manager.name)] = f"process manager {manager.name} state"
    config = dict(sorted(CHANGELOG_CONFIG.items()))
    return [{"name": name, "config": config, "key": key} for name, key in names.items()]


def render() -> str:
    return json.dumps(topic_table(), indent=2) + "\n"


def is_current(path: Path = TOPICS_FILE) -> bool:
    return path.is_file() and path.read_text() == render()


def write(path: Path = TOPICS_FILE) -> bool:
    """Write the table; returns whether the file changed."""
    if is_current(path):
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render())
    return True
