"""``cqrs new PACKAGE``: a new domain package that runs on the pipeline as it is written.

The package holds one aggregate with two commands and two events (a thing that
is opened and closed, named by ``--aggregate``), their Avro schemas, a
PostgreSQL projection with one row per aggregate, and pure unit tests of the
rules and the projection's conversion, and a test end to end on the local
stack. It imports only the public API
(``cqrs``, ``cqrs.read_models``), so it is also the shortest example of one.
docs/new-domain.md walks through it.
"""

from __future__ import annotations

import json
import keyword
import re
from dataclasses import dataclass
from pathlib import Path
from string import Template

from core.errors import ConfigurationError
from cqrs import scaffold_templates as templates

PACKAGE = re.compile(r"[a-z][a-z0-9_]*")
AGGREGATE = re.compile(r"[A-Z][A-Za-z0-9]*")


@dataclass(frozen=True)
class Names:
    package: str  # helpdesk
    aggregate: str  # Ticket

    @property
    def lower(self) -> str:  # ticket
        return re.sub(r"(?<!^)(?=[A-Z])", "_", self.aggregate).lower()

    @property
    def upper(self) -> str:  # TICKET
        return self.lower.upper()

    @property
    def projection(self) -> str:  # tickets (table, projection and entry name)
        return self.lower + "s"

    def substitutions(self) -> dict[str, str]:
        return {
            "package": self.package,
            "Agg": self.aggregate,
            "agg": self.lower,
            "AGG": self.upper,
            "aggs": self.projection,
            "AGGS": self.projection.upper(),
        }


def check_names(package: str, aggregate: str) -> Names:
    if not PACKAGE.fullmatch(package) or keyword.iskeyword(package):
        raise ConfigurationError(
            f"{package!r} cannot be a package name: lower case letters, digits and _, "
            "starting with a letter"
        )
    if not AGGREGATE.fullmatch(aggregate):
        raise ConfigurationError(
            f"{aggregate!r} cannot be an aggregate name: CamelCase letters and digits, "
            "starting with a capital"
        )
    return Names(package, aggregate)


def files(names: Names) -> dict[str, str]:
    """Path within the package → content."""
    values = names.substitutions()

    def fill(text: str) -> str:
        return Template(text).substitute(values)

    a, lower = names.aggregate, names.lower
    schemas = {
        f"schemas/commands/Open{a}.avsc": _schema(
            f"Open{a}", "commands", f"Open the {lower}.", "title"
        ),
        f"schemas/commands/Close{a}.avsc": _schema(
            f"Close{a}", "commands", f"Close the {lower}, which must be open.", "reason"
        ),
        f"schemas/events/{a}Opened.avsc": _schema(
            f"{a}Opened", "events", f"The {lower} was opened.", "title"
        ),
        f"schemas/events/{a}Closed.avsc": _schema(
            f"{a}Closed", "events", f"The {lower} was closed.", "reason"
        ),
    }
    return {
        "__init__.py": fill(templates.INIT),
        "domain.py": fill(templates.DOMAIN),
        "read_models.py": fill(templates.READ_MODELS),
        "tests/__init__.py": "",
        "tests/test_domain.py": fill(templates.TESTS),
        "tests/test_end_to_end.py": fill(templates.END_TO_END),
        "README.md": fill(templates.README),
        **{path: text.replace("$package", names.package) for path, text in schemas.items()},
    }


def _schema(name: str, kind: str, doc: str, field: str) -> str:
    metadata = "CommandMetadata" if kind == "commands" else "EventMetadata"
    record = {
        "type": "record",
        "name": name,
        "namespace": f"$package.{kind}",
        "doc": doc,
        "fields": [
            {"name": "metadata", "type": f"cqrs.envelope.{metadata}", "doc": "Envelope."},
            {"name": field, "type": "string", "doc": f"The {field}."},
        ],
    }
    return json.dumps(record, indent=2) + "\n"


def write(names: Names, into: Path) -> list[Path]:
    """Write the package under ``into``; refuses to overwrite anything."""
    root = into / names.package
    if root.exists():
        raise ConfigurationError(f"{root} exists already; choose another name or directory")
    written = []
    for relative, text in files(names).items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        written.append(path)
    return written
