"""The local Avro contracts: the pipeline's own (``schemas/avro``) and a domain's.

The pipeline's envelope records (command and event metadata, results) are under
``schemas/avro``; a domain's commands, events and views are under its own folder
(``Domain.schemas``); ``SchemaCatalog.for_domain`` reads both.

One named type per file. Files reference each other's types by full name; the
catalog resolves the references, validates every schema with fastavro once at
start-up, and hands out self-contained schemas (referenced types inlined) for
the registry, so any Confluent-API client can read them without references.

A record schema may carry a ``revision`` attribute (an integer, default 1) that
is raised whenever its shape changes; upcasters are keyed by it. Unlike
registry versions, which differ between environments, the revision travels
with the schema itself.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import fastavro
from fastavro.types import Schema as ParsedSchema

from core.domain import Domain, load_domain
from core.errors import SchemaCatalogError
from core.settings import Settings

ENVELOPE_ROOT = Path(__file__).parent / "avro"
PRIMITIVES = frozenset({"null", "boolean", "int", "long", "float", "double", "bytes", "string"})
JsonSchema = dict[str, Any]


@dataclass(frozen=True)
class SchemaFile:
    full_name: str
    path: Path
    definition: JsonSchema


def revision_of(schema: Mapping[str, Any]) -> int:
    """The shape revision a record schema declares (1 when it declares none)."""
    value = schema.get("revision", 1)
    return value if isinstance(value, int) and value > 0 else 1


class SchemaCatalog:
    """All local schemas, parsed once; look-ups by full name."""

    def __init__(self, *roots: Path) -> None:
        self._roots = (ENVELOPE_ROOT, *roots)
        self._files: dict[str, SchemaFile] = {}
        for root in self._roots:
            for found in _read_files(root):
                if found.full_name in self._files:
                    raise SchemaCatalogError(
                        f"{found.path}: {found.full_name} is also defined by "
                        f"{self._files[found.full_name].path}"
                    )
                self._files[found.full_name] = found
        self._expanded: dict[str, JsonSchema] = {}
        self._parsed: dict[str, ParsedSchema] = {}
        for name in self._files:
            self._expanded[name] = self._expand(name)
            try:
                self._parsed[name] = fastavro.parse_schema(copy.deepcopy(self._expanded[name]))
            except Exception as error:  # fastavro raises several unrelated types
                raise SchemaCatalogError(
                    f"{self._files[name].path}: invalid Avro schema: {error}"
                ) from error

    @classmethod
    def for_domain(cls, domain: Domain) -> SchemaCatalog:
        """The envelope's records and the domain's."""
        return cls(domain.schemas)

    @classmethod
    def for_settings(cls, settings: Settings) -> SchemaCatalog:
        """The catalog of the domain ``settings.domain`` names."""
        return cls.for_domain(load_domain(settings.domain))

    def __contains__(self, full_name: object) -> bool:
        return full_name in self._files

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._files))

    def records(self, namespace_prefix: str = "") -> list[str]:
        """Full names of the record types (not enums) under a namespace prefix."""
        return [
            name
            for name in self
            if self._files[name].definition["type"] == "record"
            and name.startswith(namespace_prefix)
        ]

    def path(self, full_name: str) -> Path:
        return self._file(full_name).path

    def self_contained(self, full_name: str) -> JsonSchema:
        """The schema with every referenced named type inlined (a copy)."""
        self._file(full_name)
        return copy.deepcopy(self._expanded[full_name])

    def canonical_text(self, full_name: str) -> str:
        """The self-contained schema as the compact JSON sent to the registry."""
        return json.dumps(self._expanded[full_name], separators=(",", ":"))

    def parsed(self, full_name: str) -> ParsedSchema:
        self._file(full_name)
        return self._parsed[full_name]

    def revision(self, full_name: str) -> int:
        return revision_of(self._file(full_name).definition)

    @cached_property
    def short_names(self) -> dict[str, str]:
        """``PlaceOrder`` → ``cqrs.commands.PlaceOrder``, for names unique without namespace."""
        by_short: dict[str, list[str]] = {}
        for name in self:
            by_short.setdefault(name.rsplit(".", 1)[-1], []).append(name)
        return {short: names[0] for short, names in by_short.items() if len(names) == 1}

    def _file(self, full_name: str) -> SchemaFile:
        try:
            return self._files[full_name]
        except KeyError:
            folders = ", ".join(str(root) for root in self._roots)
            raise SchemaCatalogError(f"no schema named {full_name!r} under {folders}") from None

    def _expand(self, full_name: str) -> JsonSchema:
        defined: set[str] = set()
        expanded = _inline(self._files[full_name].definition, None, self._files, defined, [])
        if not isinstance(expanded, dict):
            raise SchemaCatalogError(f"{full_name} is not a named type")
        return expanded


def _read_files(root: Path) -> Iterator[SchemaFile]:
    for path in sorted(root.rglob("*.avsc")):
        try:
            definition = json.loads(path.read_text())
        except json.JSONDecodeError as error:
            raise SchemaCatalogError(f"{path}: not JSON: {error}") from error
        if not isinstance(definition, dict) or "name" not in definition:
            raise SchemaCatalogError(f"{path}: expected one named type (record, enum, fixed)")
        full_name = qualified_name(definition["name"], definition.get("namespace"))
        if path.stem != full_name.rsplit(".", 1)[-1]:
            raise SchemaCatalogError(f"{path}: file name must be the type's name ({full_name})")
        yield SchemaFile(full_name, path, definition)


def qualified_name(name: str, namespace: str | None) -> str:
    """Avro's rule: a dotted name is already full; otherwise it takes the namespace."""
    return name if "." in name or not namespace else f"{namespace}.{name}"


def _inline(
    node: Any,
    namespace: str | None,
    files: Mapping[str, SchemaFile],
    defined: set[str],
    stack: list[str],
) -> Any:
    """Replace the first reference to each named type by its definition."""
    if isinstance(node, str):
        if node in PRIMITIVES:
            return node
        name = qualified_name(node, namespace)
        if name in defined:
            return name
        if name not in files:
            raise SchemaCatalogError(f"unknown type {node!r} referenced from {stack[-1]}")
        return _inline(files[name].definition, None, files, defined, stack)
    if isinstance(node, list):
        return [_inline(branch, namespace, files, defined, stack) for branch in node]
    if not isinstance(node, dict):
        return node
    kind = node.get("type")
    if kind in {"record", "error", "enum", "fixed"}:
        full = qualified_name(node["name"], node.get("namespace", namespace))
        defined.add(full)
        out = {**node, "name": full}
        out.pop("namespace", None)
        if kind in {"record", "error"}:
            inner_namespace = full.rsplit(".", 1)[0] if "." in full else None
            out["fields"] = [
                {
                    **field,
                    "type": _inline(field["type"], inner_namespace, files, defined, [*stack, full]),
                }
                for field in node["fields"]
            ]
        return out
    if kind == "array":
        return {**node, "items": _inline(node["items"], namespace, files, defined, stack)}
    if kind == "map":
        return {**node, "values": _inline(node["values"], namespace, files, defined, stack)}
    if isinstance(kind, (str, list, dict)) and kind not in PRIMITIVES:
        return {**node, "type": _inline(kind, namespace, files, defined, stack)}
    return node
