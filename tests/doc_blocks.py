"""Every fenced code block of README.md and docs/*.md, and what holds it true.

A block is executed (a test runs it), checked (a test parses or validates it
without running it) or marked in the document itself as not runnable, with
``<!-- not-run: reason -->`` on the line before its fence. ``STATUSES`` names
the test of every executed or checked block, keyed by the block's file and
the start of its first line; tests/unit/test_doc_blocks.py fails on a block with no status, so
no block can rot unseen.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

ROOT = Path(__file__).parents[1]
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^(?P<indent> *)(?P<fence>```+|~~~+)(?P<info>.*)$")
NOT_RUN = re.compile(r"^\s*<!-- not-run: (?P<reason>.+?) -->\s*$")
SHELL = {"bash", "sh", "console"}

Kind = Literal["executed", "checked"]


@dataclass(frozen=True)
class Block:
    path: str  # relative to the repository, e.g. docs/query.md
    line: int  # of the opening fence, from 1
    info: str
    text: str  # dedented to the fence
    not_run: str | None  # the reason of a not-run marker right before the fence

    @property
    def first_line(self) -> str:
        return self.text.splitlines()[0] if self.text else ""

    def starts(self, path: str, start: str) -> bool:
        return self.path == path and self.first_line.startswith(start)

    def __str__(self) -> str:
        return f"{self.path}:{self.line} ({self.info or 'no info string'})"


@dataclass(frozen=True)
class Status:
    kind: Kind
    test: str  # module path::function of the test that runs or checks it
    why_not_run: str = ""  # for a checked block: what running it would need


def parse(path: Path) -> list[Block]:
    lines = path.read_text().splitlines()
    blocks: list[Block] = []
    index = 0
    while index < len(lines):
        opening = FENCE.match(lines[index])
        if not opening:
            index += 1
            continue
        indent, fence = len(opening["indent"]), opening["fence"]
        end = index + 1
        while end < len(lines) and not lines[end].strip().startswith(fence):
            end += 1
        if end == len(lines):
            raise ValueError(f"{path.name}:{index + 1}: code block never closed")
        body = [
            line[indent:] if line[:indent].isspace() else line for line in lines[index + 1 : end]
        ]
        previous = next((line for line in reversed(lines[:index]) if line.strip()), "")
        marker = NOT_RUN.match(previous)
        blocks.append(
            Block(
                path=path.relative_to(ROOT).as_posix(),
                line=index + 1,
                info=opening["info"].strip(),
                text="\n".join(body) + "\n",
                not_run=marker["reason"] if marker else None,
            )
        )
        index = end + 1
    return blocks


def all_blocks() -> list[Block]:
    return [block for document in DOCUMENTS for block in parse(document)]


def block(path: str, start: str) -> Block:
    """The one block of ``path`` whose first line starts with ``start`` (a test's own block)."""
    found = [b for b in all_blocks() if b.starts(path, start)]
    assert len(found) == 1, f"{path}: {len(found)} blocks start with {start!r}"
    return found[0]


def status(shown: Block) -> Status | None:
    found = [s for (path, start), s in STATUSES.items() if shown.starts(path, start)]
    assert len(found) <= 1, f"{shown}: more than one entry of STATUSES names it"
    return found[0] if found else None


def shell_commands(shown: Block) -> list[str]:
    """The block's command lines, comments and continuations resolved (``$ `` prompts kept
    out: output lines of a console block are not commands)."""
    text = re.sub(r"\\\n\s*", " ", shown.text)
    commands = []
    for line in text.splitlines():
        if shown.info == "console" and not line.startswith("$ "):
            continue
        words = shlex.split(
            line.removeprefix("$ ") if shown.info == "console" else line, comments=True
        )
        if words:
            commands.append(" ".join(w if w == "&" else shlex.quote(w) for w in words))
    return commands


UNIT = "tests/unit/test_doc_blocks.py"
HELM = "tests/deploy/test_doc_helm_blocks.py"
RUN = "tests/integration/test_docs_blocks.py"
GUIDE = (
    "tests/integration/test_new_domain_guide.py"
    "::test_the_guide_runs_from_an_empty_directory_to_a_read_model_and_chart_values"
)
CLUSTER = "a Kubernetes cluster"

# (file, the start of the block's first line): its status.
STATUSES: dict[tuple[str, str], Status] = {
    ("README.md", "make demo"): Status(
        "checked", f"{UNIT}::test_the_readme_make_targets_exist", "minutes: the demo, every test"
    ),
    ("README.md", "pyproject.toml"): Status(
        "checked", f"{UNIT}::test_the_layout_names_what_exists"
    ),
    ("docs/configuration.md", "[kafka]"): Status(
        "checked", f"{UNIT}::test_the_example_toml_file_loads_into_the_settings", "a remote cluster"
    ),
    ("docs/contracts.md", "upcasters = Upcasters()"): Status(
        "executed", f"{UNIT}::test_the_upcaster_example_upcasts"
    ),
    ("docs/contracts.md", "cqrs schemas list"): Status(
        "executed", f"{RUN}::test_the_schema_commands_run"
    ),
    ("docs/domain.md", "# library/domain.py"): Status(
        "checked",
        "tests/unit/test_domain.py::test_the_guide_shows_the_library_domain_as_the_tests_run_it",
        "it is tests/library/domain.py, which the tests run",
    ),
    ("docs/domain.md", "{"): Status(
        "checked", f"{UNIT}::test_the_contract_shown_is_the_library_file"
    ),
    ("docs/domain.md", "export CQRS_DOMAIN=library"): Status(
        "executed", f"{RUN}::test_the_library_domain_runs_as_shown"
    ),
    ("docs/new-domain.md", "cqrs new helpdesk"): Status("executed", GUIDE),
    ("docs/new-domain.md", "cqrs worker &"): Status("executed", GUIDE),
    ("docs/new-domain.md", "export PYTHONPATH=$PWD"): Status("executed", GUIDE),
    ("docs/new-domain.md", "cqrs sink run tickets &"): Status("executed", GUIDE),
    ("docs/new-domain.md", "cqrs deploy values"): Status("executed", GUIDE),
    ("docs/observability.md", '{"time"'): Status(
        "checked", f"{UNIT}::test_the_librdkafka_json_record_is_what_the_formatter_writes"
    ),
    ("docs/observability.md", "export CQRS_OBSERVABILITY__TRACING=otlp"): Status(
        "checked",
        f"{UNIT}::test_the_tracing_exports_are_settings_the_product_reads",
        "an OpenTelemetry collector",
    ),
    ("docs/observability.md", "$ cqrs lag"): Status(
        "executed", f"{RUN}::test_lag_prints_the_columns_shown"
    ),
    ("docs/operations.md", "apiVersion: kafka.strimzi.io/v1"): Status(
        "checked", f"{UNIT}::test_the_kafka_user_covers_the_default_names", CLUSTER
    ),
    ("docs/operations.md", "helm install shop"): Status(
        "checked", f"{HELM}::test_the_install_renders", CLUSTER
    ),
    ("docs/operations.md", "helm upgrade shop"): Status(
        "checked", f"{HELM}::test_the_upgrade_steps_render", CLUSTER
    ),
    ("docs/query.md", "GET /projections/order-summary?"): Status(
        "executed", f"{RUN}::test_the_query_requests_answer"
    ),
    ("docs/query.md", "POST /commands/AdjustStock"): Status(
        "executed", f"{RUN}::test_the_query_requests_answer"
    ),
    ("docs/read-side.md", "cqrs projections list"): Status(
        "executed", f"{RUN}::test_the_projection_commands_run"
    ),
    ("docs/read-side.md", "from confluent_kafka import Consumer"): Status(
        "executed", f"{RUN}::test_the_downstream_consumer_reads_the_views"
    ),
    ("docs/read-side.md", "result = client.send_and_wait("): Status(
        "executed", f"{RUN}::test_the_read_your_writes_example_waits"
    ),
    ("docs/write-side.md", "cqrs worker &"): Status(
        "executed", f"{RUN}::test_the_send_commands_answer_as_shown"
    ),
    ("docs/write-side.md", "from datetime import UTC, datetime"): Status(
        "executed", f"{RUN}::test_the_external_producer_is_answered"
    ),
}
