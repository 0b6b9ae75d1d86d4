"""The ``cqrs schemas`` operations: list, register and check the local contracts."""

from __future__ import annotations

import difflib
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from core.errors import RegistryError
from core.settings import Settings
from schemas.catalog import SchemaCatalog
from schemas.registry_client import RegistryClient
from schemas.serde import subject_for
from schemas.topics import TopicSpec, settings_topic_specs

SUBJECT_NOT_FOUND = 40401


def _subjects(settings: Settings, catalog: SchemaCatalog) -> Iterator[tuple[TopicSpec, str, str]]:
    for spec in settings_topic_specs(settings):
        topic = settings.kafka.topic_prefix + spec.name
        for record in spec.records(catalog):
            yield spec, record, subject_for(topic, record)


@dataclass(frozen=True)
class SchemaState:
    record: str  # full Avro name
    revision: int
    subject: str
    registry: str  # registered / not registered / differs / not asked (offline)
    schema_id: int | None = None
    version: int | None = None

    def line(self) -> str:
        where = (
            f"registered: id {self.schema_id}, version {self.version}"
            if self.registry == "registered"
            else self.registry
        )
        return f"{self.record:<42} r{self.revision}  {self.subject:<58} {where}"


def list_states(settings: Settings, *, offline: bool = False) -> Iterator[SchemaState]:
    """Every local schema and its subject, with what the registry holds (``offline``: not
    asked, so no registry is needed)."""
    catalog = SchemaCatalog.for_settings(settings)
    registry = RegistryClient(settings.registry)
    for _spec, record, subject in _subjects(settings, catalog):
        revision = catalog.revision(record)
        if offline:
            yield SchemaState(record, revision, subject, "not asked (offline)")
            continue
        try:
            found = registry.lookup(subject, catalog.canonical_text(record))
        except RegistryError as error:
            if error.status == 0:
                raise
            state = "not registered" if error.code == SUBJECT_NOT_FOUND else "differs from registry"
            yield SchemaState(record, revision, subject, state)
            continue
        yield SchemaState(record, revision, subject, "registered", found.id, found.version)


def register_all(settings: Settings, catalog: SchemaCatalog | None = None) -> Iterator[str]:
    catalog = catalog or SchemaCatalog.for_settings(settings)
    registry = RegistryClient(settings.registry)
    known = set(registry.subjects())
    for spec, record, subject in _subjects(settings, catalog):
        if subject not in known:
            registry.set_compatibility(spec.compatibility.value, subject)
        schema_id = registry.register(subject, catalog.canonical_text(record))
        yield f"{subject:<58} id {schema_id} ({spec.compatibility.value})"


def check_all(
    settings: Settings, say: Callable[[str], None], catalog: SchemaCatalog | None = None
) -> int:
    """Print a diff and the reasons for every incompatible schema; return how many."""
    catalog = catalog or SchemaCatalog.for_settings(settings)
    registry = RegistryClient(settings.registry)
    known = set(registry.subjects())
    failures = 0
    for spec, record, subject in _subjects(settings, catalog):
        if subject not in known:
            say(f"new      {subject} (first version, {spec.compatibility.value})")
            continue
        local = catalog.canonical_text(record)
        verdict = registry.test_compatibility(subject, local, version=None)
        if verdict.compatible:
            say(f"ok       {subject}")
            continue
        failures += 1
        latest = registry.version(subject)
        say(
            f"BREAKING {subject} (registry version {latest.version}, mode "
            f"{registry.compatibility(subject)})"
        )
        for message in verdict.messages:
            say(f"    - {message}")
        say(_diff(latest.schema, local, f"{subject} v{latest.version}", catalog.path(record).name))
    return failures


def _diff(registered: str, local: str, old_label: str, new_label: str) -> str:
    def pretty(text: str) -> list[str]:
        return json.dumps(json.loads(text), indent=2, sort_keys=True).splitlines(keepends=True)

    lines = difflib.unified_diff(pretty(registered), pretty(local), old_label, new_label)
    return "".join("    " + line if line.endswith("\n") else "    " + line + "\n" for line in lines)
