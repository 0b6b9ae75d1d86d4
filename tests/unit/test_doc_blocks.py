"""The documents' code blocks: each has a status, and the static checks hold (no stack).

What runs on the stack is tests/integration/test_docs_blocks.py; the Helm
blocks are rendered in tests/deploy/test_doc_helm_blocks.py.
"""

from __future__ import annotations

import ast
import importlib
import json
import logging
import re
import shlex
import tomllib
from pathlib import Path
from typing import Any

import pytest
import typer
import yaml

from core.logs import JsonFormatter
from core.settings import Settings, load_settings
from cqrs.cli import app
from tests.doc_blocks import (
    ROOT,
    SHELL,
    STATUSES,
    Block,
    all_blocks,
    block,
    shell_commands,
    status,
)

BLOCKS = all_blocks()


def test_every_block_names_its_language_and_has_exactly_one_status() -> None:
    unnamed = [str(b) for b in BLOCKS if not b.info]
    without = [str(b) for b in BLOCKS if status(b) is None and b.not_run is None]
    both = [str(b) for b in BLOCKS if status(b) is not None and b.not_run is not None]
    assert not unnamed, f"blocks without an info string: {unnamed}"
    assert not without, (
        f"blocks with no status: {without}; run or check them (tests/doc_blocks.py STATUSES) "
        "or mark them <!-- not-run: reason --> in the document"
    )
    assert not both, f"blocks both marked not-run and listed in STATUSES: {both}"


def test_every_listed_status_names_one_block_and_an_existing_test() -> None:
    for (path, start), listed in STATUSES.items():
        assert len([b for b in BLOCKS if b.starts(path, start)]) == 1, f"{path}: {start!r}"
        test_path, name = listed.test.split("::")
        source = ROOT / test_path
        tree = ast.parse(source.read_text()) if source.is_file() else ast.Module([], [])
        tests = {node.name for node in ast.walk(tree) if isinstance(node, ast.FunctionDef)}
        assert name in tests, f"no test {listed.test}"


def dry_parse(arguments: list[str]) -> str | None:
    """Why the command line would not parse (``None``: it parses), without running it.

    Each (sub)command parses its own part as ``cqrs`` would, then hands the rest on."""
    command: Any = typer.main.get_command(app)
    try:
        context = command.make_context("cqrs", list(arguments))
        while hasattr(command, "resolve_command"):  # a group: on to its subcommand
            rest = [*getattr(context, "_protected_args", []), *context.args]
            if not rest:
                break
            name, command, rest = command.resolve_command(context, rest)
            context = command.make_context(name, rest, parent=context)
    except typer.Exit as done:  # --version is eager: parsed, printed and done
        return None if done.exit_code == 0 else f"exit {done.exit_code}"
    except Exception as error:  # click's UsageError family (exit code 2), typer's own copy
        if getattr(error, "exit_code", None) != 2:
            raise
        return str(error.format_message()) if hasattr(error, "format_message") else str(error)
    return None


def _cqrs_lines() -> list[tuple[Block, list[str]]]:
    found = []
    for shown in BLOCKS:
        if shown.info not in SHELL:
            continue
        for command in shell_commands(shown):
            words = shlex.split(command)
            if words and words[0] == "cqrs":
                found.append((shown, [w for w in words[1:] if w != "&"]))
    return found


@pytest.mark.parametrize(("shown", "arguments"), _cqrs_lines(), ids=lambda v: str(v)[:60])
def test_every_cqrs_line_parses_against_the_command_line(
    shown: Block, arguments: list[str]
) -> None:
    problem = dry_parse(arguments)
    assert problem is None, f"{shown}: cqrs {shlex.join(arguments)}: {problem}"


@pytest.mark.parametrize(
    ("arguments", "problem"),
    [
        (["send", "AddBook", "--bogus"], "No such option"),
        (["send"], "Missing argument"),
        (["schemas", "lists"], "No such command"),
        (["sink", "run", "order-summary", "--all", "--nope"], "No such option"),
    ],
)
def test_the_dry_parse_refuses_what_cqrs_refuses(arguments: list[str], problem: str) -> None:
    assert problem in (dry_parse(arguments) or "")


@pytest.mark.parametrize("shown", [b for b in BLOCKS if b.info == "python"], ids=str)
def test_python_blocks_compile_and_their_imports_resolve(shown: Block) -> None:
    tree = compile(shown.text, str(shown), "exec", flags=0x400, dont_inherit=True)  # AST only
    for node in getattr(tree, "body", []):
        if node.__class__.__name__ == "ImportFrom" and node.module:
            module = importlib.import_module(node.module)
            for alias in node.names:
                assert hasattr(module, alias.name), f"{shown}: {node.module} has no {alias.name}"


@pytest.mark.parametrize(
    "shown", [b for b in BLOCKS if b.info in {"json", "yaml", "toml"}], ids=str
)
def test_data_blocks_parse(shown: Block) -> None:
    parsers: dict[str, Any] = {"json": json.loads, "yaml": yaml.safe_load, "toml": tomllib.loads}
    assert parsers[shown.info](shown.text) is not None


def test_the_readme_make_targets_exist() -> None:
    shown = block("README.md", "make demo")
    targets = set(re.findall(r"^([a-z][\w-]*):", (ROOT / "Makefile").read_text(), flags=re.M))
    named = {shlex.split(line)[1] for line in shell_commands(shown)}
    assert named == {"demo", "test"} and named <= targets


def test_the_layout_names_what_exists() -> None:
    shown = block("README.md", "pyproject.toml")
    named = [line.split()[0] for line in shown.text.splitlines() if line and not line[0].isspace()]
    missing = [name for name in named if not (ROOT / name).exists()]
    assert len(named) >= 10 and not missing, (
        f"the README's layout names what is not there: {missing}"
    )
    folders = {p.name + "/" for p in ROOT.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    assert folders <= set(named), f"packages the layout leaves out: {folders - set(named)}"


def test_the_example_toml_file_loads_into_the_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "cqrs.toml"
    config.write_text(block("docs/configuration.md", "[kafka]").text)
    for name in ("CQRS_KAFKA__BOOTSTRAP_SERVERS", "CQRS_POSTGRES__HOST"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("CQRS_CONFIG_FILE", str(config))
    loaded: Settings = load_settings()
    assert loaded.kafka.bootstrap_servers == "kafka-0.kafka:9093"
    assert (loaded.kafka.security_protocol, loaded.kafka.sasl_mechanism) == (
        "SASL_SSL",
        "SCRAM-SHA-512",
    )
    assert loaded.postgres.host == "read-models.internal"


def test_the_librdkafka_json_record_is_what_the_formatter_writes() -> None:
    shown = json.loads(block("docs/observability.md", '{"time"').text)
    record = logging.LogRecord(shown["logger"], logging.ERROR, __file__, 1, "%s", (), None)
    record.msg, record.args = "%s", (shown["message"],)
    record.__dict__.update(kafka_facility="FAIL", kafka_client="cqrs#producer-1")
    written = json.loads(JsonFormatter().format(record))
    assert set(written) == set(shown)
    assert {k: written[k] for k in ("level", "logger", "message", "kafka_facility")} == {
        k: shown[k] for k in ("level", "logger", "message", "kafka_facility")
    }


def test_the_tracing_exports_are_settings_the_product_reads(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for command in shell_commands(block("docs/observability.md", "export CQRS_OBSERVABILITY")):
        for assignment in shlex.split(command.removeprefix("export ")):
            name, _, value = assignment.partition("=")
            assert name.startswith(("CQRS_", "OTEL_")), name
            monkeypatch.setenv(name, value)
    monkeypatch.delenv("CQRS_CONFIG_FILE", raising=False)
    assert load_settings().observability.tracing == "otlp"


def test_the_upcaster_example_upcasts() -> None:
    namespace: dict[str, Any] = {}
    exec(
        "from typing import Any\nfrom cqrs import Upcasters\n"
        + block("docs/contracts.md", "upcasters = Upcasters()").text,
        namespace,
    )
    [step] = namespace["upcasters"].steps("cqrs.events.OrderRejected", 1, 2)
    assert step({"reason": "Out of stock: sku-9"})["reason_code"] == "OUT_OF_STOCK"
    assert step({"reason": "payment declined"})["reason_code"] == "OTHER"


def test_the_contract_shown_is_the_library_file() -> None:
    shown = json.loads(block("docs/domain.md", "{").text)
    source = ROOT / "tests" / "library" / "schemas" / "commands" / "AddBook.avsc"
    assert shown == json.loads(source.read_text())


def test_the_kafka_user_covers_the_default_names() -> None:
    user = yaml.safe_load(
        block(
            "docs/operations.md",
            "apiVersion: kafka.strimzi.io/v1",
        ).text
    )
    assert user["kind"] == "KafkaUser"
    prefixes = {
        acl["resource"]["type"]: acl["resource"].get("name")
        for acl in user["spec"]["authorization"]["acls"]
    }
    defaults = Settings()
    worker_groups = [
        defaults.processor.app_id,
        defaults.processor.process_manager_app_id.format(name="fulfilment"),
        "cqrs-sink-order-summary",
    ]
    for name in worker_groups:  # consumer groups, and transactional ids start with app ids
        assert name.startswith(prefixes["group"]) and name.startswith(prefixes["transactionalId"])
    assert prefixes["topic"] == "" and "cluster" in prefixes
