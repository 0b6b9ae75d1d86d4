"""docs/new-domain.md, executed: every command of the guide, in its order, on the real stack.

The guide's commands are listed here once; a check holds the document to the
same list, so the guide and this test cannot drift apart. ``cqrs X`` runs as
``python -m cqrs X`` with the pipeline's environment (its own topic prefix and
groups), the commands the guide puts in the background as product processes.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import yaml

from core.settings import Settings
from cqrs.cli import EXIT_REJECTED
from tests.integration.pipeline import Pipeline

GUIDE = Path(__file__).parents[2] / "docs" / "new-domain.md"
NEW = "cqrs new helpdesk --aggregate Ticket"
TESTS = "python -m pytest helpdesk/tests"
EXPORT = "export PYTHONPATH=$PWD CQRS_DOMAIN=helpdesk.domain:domain"
WORKER = "cqrs worker &"
OPEN = """cqrs send OpenTicket -a ticket-1 --json '{"title": "Printer on fire"}'"""
CLOSE = """cqrs send CloseTicket -a ticket-1 --json '{"reason": "extinguished"}'"""
AGAIN = """cqrs send CloseTicket -a ticket-1 --json '{"reason": "again"}'"""
SINK = "cqrs sink run tickets &"
READ = (
    """cqrs send OpenTicket -a ticket-2 --json '{"title": "No coffee"}'"""
    " --wait-projection tickets"
)
VALUES = "cqrs deploy values -o helpdesk-values.yaml"
STEPS = [NEW, EXPORT, TESTS, WORKER, OPEN, CLOSE, AGAIN, SINK, READ, VALUES]


def test_the_guide_lists_exactly_these_commands_in_this_order() -> None:
    blocks = re.findall(r"```bash\n(.*?)```", GUIDE.read_text(), flags=re.DOTALL)
    lines = [line for block in blocks for line in block.strip().splitlines()]
    assert lines == STEPS


def _arguments(step: str) -> list[str]:
    """``cqrs send X --json '{...}'`` as arguments (the guide's quoting is shell's)."""
    return shlex.split(step.removesuffix(" &"))[1:]


def test_the_guide_runs_from_an_empty_directory_to_a_read_model_and_chart_values(
    local_stack: Settings, tmp_path: Path
) -> None:
    work = tmp_path / "work"
    work.mkdir()
    base = Pipeline.create(
        local_stack, tmp_path / "logs", tmp_path / "state", domain="helpdesk.domain:domain"
    )
    (tmp_path / "logs").mkdir()
    pipeline = dataclasses.replace(base, env={**base.env, "PYTHONPATH": str(work)})

    def run(step: str, expect: int = 0) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [sys.executable, "-m", "cqrs", *_arguments(step)],
            cwd=work,
            env={**os.environ, **pipeline.env},
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
        )
        assert done.returncode == expect, f"{step}\n{done.stdout}\n{done.stderr[-3000:]}"
        return done

    run(NEW)
    assert (work / "helpdesk" / "domain.py").is_file()
    tests = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "helpdesk/tests"],
        cwd=work,
        env={**os.environ, "PYTHONPATH": str(work)},
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    # Its own end-to-end test runs too: the stack is up.
    assert tests.returncode == 0 and "4 passed" in tests.stdout, tests.stdout[-3000:]

    worker = pipeline.process(*_arguments(WORKER), name="worker")
    sink = pipeline.process(*_arguments(SINK), name="sink", ready="sink tickets assigned")
    worker.start()
    try:
        opened = json.loads(run(OPEN).stdout)
        closed = json.loads(run(CLOSE).stdout)
        again = json.loads(run(AGAIN, expect=EXIT_REJECTED).stdout)
        assert (opened["status"], opened["version"]) == ("ACCEPTED", 1)
        assert (closed["status"], closed["version"]) == ("ACCEPTED", 2)
        assert (again["status"], again["rejection_code"]) == ("REJECTED", "TICKET_NOT_OPEN")
        sink.start()
        try:
            shown = json.loads(run(READ).stdout)
            assert (shown["status"], shown["version"]) == ("ACCEPTED", 1)
        finally:
            sink.stop()
    finally:
        worker.stop()

    run(VALUES)
    values = yaml.safe_load((work / "helpdesk-values.yaml").read_text())
    assert values["domain"]["reference"] == "helpdesk.domain:domain"
    assert values["sinks"]["projections"]["tickets"] == {"enabled": True, "stores": ["postgres"]}
    assert values["processManagers"] == {"fulfilment": None}
