from __future__ import annotations

import json
import os
import socket
import sys
import time
from pathlib import Path

import psutil
import pytest

from core.errors import PrerequisiteError
from deploy.stack.processes import (
    LaunchSpec,
    ensure_port_free,
    launch,
    running_process,
    stop,
    tail,
)


def _group_members(pid: int) -> list[psutil.Process]:
    group = os.getpgid(pid)
    members = []
    for process in psutil.process_iter():
        try:
            if os.getpgid(process.pid) == group and process.status() != psutil.STATUS_ZOMBIE:
                members.append(process)
        except (ProcessLookupError, psutil.Error):
            continue
    return members


def test_stop_ends_the_whole_process_group(tmp_path: Path) -> None:
    pid_path = tmp_path / "server.pid"
    # A parent that forks a child which ignores nothing: both must be gone after stop().
    spec = LaunchSpec(
        argv=["sh", "-c", "sleep 300 & sleep 300"], cwd=tmp_path, log_path=tmp_path / "log"
    )
    pid = launch(spec, pid_path)
    time.sleep(0.3)
    assert len(_group_members(pid)) >= 2
    members = _group_members(pid)

    assert stop(pid_path) is True

    assert not any(
        member.is_running() and member.status() != psutil.STATUS_ZOMBIE for member in members
    )
    assert not pid_path.exists()
    assert stop(pid_path) is False


def test_stop_escalates_to_sigkill_when_sigterm_is_ignored(tmp_path: Path) -> None:
    pid_path = tmp_path / "server.pid"
    script = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(300)"
    spec = LaunchSpec(
        argv=[sys.executable, "-c", script],
        cwd=tmp_path,
        log_path=tmp_path / "log",
        stop_timeout_s=1.0,
    )
    pid = launch(spec, pid_path)
    time.sleep(0.5)
    started = time.monotonic()
    assert stop(pid_path) is True
    assert time.monotonic() - started < 10
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE


def test_a_recycled_pid_is_not_mistaken_for_the_server(tmp_path: Path) -> None:
    pid_path = tmp_path / "server.pid"
    # Our own pid is alive, but with another start time: the record is stale.
    pid_path.write_text(
        json.dumps(
            {
                "pid": psutil.Process().pid,
                "create_time": 1.0,
                "stop_signal": 15,
                "stop_timeout_s": 1,
            }
        )
    )
    assert running_process(pid_path) is None
    assert not pid_path.exists()


def test_launch_writes_output_to_the_log(tmp_path: Path) -> None:
    spec = LaunchSpec(
        argv=["sh", "-c", "echo hello from the server"],
        cwd=tmp_path,
        log_path=tmp_path / "logs" / "server.log",
    )
    launch(spec, tmp_path / "pid")
    deadline = time.monotonic() + 5
    while "hello" not in tail(spec.log_path) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert tail(spec.log_path) == "hello from the server"


def test_a_taken_port_is_a_one_line_error_naming_the_setting() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        with pytest.raises(PrerequisiteError) as raised:
            ensure_port_free("127.0.0.1", port, "Apache Kafka", "CQRS_KAFKA__BOOTSTRAP_SERVERS")
    message = str(raised.value)
    assert "\n" not in message
    assert f"port {port}" in message
    assert "CQRS_KAFKA__BOOTSTRAP_SERVERS" in message


def test_a_free_port_passes() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    ensure_port_free("127.0.0.1", port, "x", "Y")
