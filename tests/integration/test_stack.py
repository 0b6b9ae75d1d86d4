"""The local stack's own contract: a second ``up`` is a no-op, ``status`` tells the truth."""

from __future__ import annotations

import json
import subprocess
import sys
import time

from core.settings import Settings
from deploy.stack import stack


def test_a_second_up_only_probes_running_services(local_stack: Settings) -> None:
    pids_before = {state.name: state.pid for state in stack.status(local_stack)}
    lines: list[str] = []
    started = time.monotonic()

    states = stack.up(local_stack, lines.append)

    assert time.monotonic() - started < 15
    assert {state.name: state.pid for state in states} == pids_before
    assert all(state.ready for state in states)
    assert len(lines) == len(states)
    assert all("already running" in line for line in lines)


def test_status_reports_every_service_ready_as_json(local_stack: Settings) -> None:
    result = subprocess.run(
        [sys.executable, "-c", "from cqrs.cli import main; main()", "stack", "status", "--json"],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    states = json.loads(result.stdout)
    assert {state["name"] for state in states} == {"kafka", "registry", "postgres", "opensearch"}
    assert all(state["ready"] and state["pid"] for state in states)
