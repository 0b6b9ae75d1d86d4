"""Start, find and stop the local stack's server processes.

Each server runs in its own session (process group) so that stopping it also
stops anything it forked. Its pid file records the pid and the process start
time, so a pid recycled by the OS is never mistaken for our server.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from core.errors import PrerequisiteError


@dataclass(frozen=True)
class LaunchSpec:
    """How to run one server process."""

    argv: list[str]
    cwd: Path
    log_path: Path
    env: dict[str, str] = field(default_factory=dict)
    user: str | None = None
    stop_signal: int = signal.SIGTERM
    stop_timeout_s: float = 30.0


def launch(spec: LaunchSpec, pid_path: Path) -> int:
    """Start the process detached from us, logging to ``spec.log_path``."""
    spec.log_path.parent.mkdir(parents=True, exist_ok=True)
    with spec.log_path.open("ab") as log:
        process = subprocess.Popen(
            spec.argv,
            cwd=spec.cwd,
            env={**os.environ, **spec.env},
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            user=spec.user,
        )
    record = {
        "pid": process.pid,
        "create_time": psutil.Process(process.pid).create_time(),
        "stop_signal": int(spec.stop_signal),
        "stop_timeout_s": spec.stop_timeout_s,
    }
    pid_path.parent.mkdir(parents=True, exist_ok=True)
    pid_path.write_text(json.dumps(record))
    return process.pid


def running_process(pid_path: Path) -> psutil.Process | None:
    """The live process recorded in ``pid_path``, or None (stale files are removed)."""
    try:
        record = json.loads(pid_path.read_text())
        process = psutil.Process(int(record["pid"]))
        same = abs(process.create_time() - float(record["create_time"])) < 1.0
        if same and process.status() != psutil.STATUS_ZOMBIE:
            return process
    except (FileNotFoundError, ValueError, KeyError, psutil.Error):
        pass
    pid_path.unlink(missing_ok=True)
    return None


def stop(pid_path: Path) -> bool:
    """Stop the recorded process group gracefully, then forcefully. True if one ran."""
    process = running_process(pid_path)
    if process is None:
        return False
    record = json.loads(pid_path.read_text())
    group = os.getpgid(process.pid)
    _signal_group(group, int(record["stop_signal"]))
    deadline = time.monotonic() + float(record["stop_timeout_s"])
    while time.monotonic() < deadline and _group_alive(group):
        _reap(process.pid)
        time.sleep(0.2)
    if _group_alive(group):
        _signal_group(group, signal.SIGKILL)
        while _group_alive(group):
            time.sleep(0.1)
    pid_path.unlink(missing_ok=True)
    return True


def ensure_port_free(host: str, port: int, what: str, setting: str) -> None:
    """Fail with a one-line, actionable error when someone else listens on the port."""
    if not tcp_open(host, port):
        return
    raise PrerequisiteError(
        f"port {port} on {host} is taken by another process ({_port_owner(port)}); "
        f"stop it or set {setting} to move the {what} elsewhere"
    )


def tcp_open(host: str, port: int, timeout: float = 0.5) -> bool:
    """Whether something accepts TCP connections on the port."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.settimeout(timeout)
        return probe.connect_ex((host, port)) == 0


def tail(path: Path, lines: int = 15) -> str:
    """The last lines of a log, for error messages."""
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return "(no log written)"


def _port_owner(port: int) -> str:
    try:
        for conn in psutil.net_connections(kind="tcp"):
            if conn.laddr and conn.laddr.port == port and conn.status == psutil.CONN_LISTEN:
                if conn.pid is None:
                    return "owner unknown"
                return f"pid {conn.pid}, {psutil.Process(conn.pid).name()}"
    except psutil.Error:
        pass
    return "owner unknown"


def _reap(pid: int) -> None:
    # When this process started the server (tests do), collect its exit status.
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def _signal_group(group: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(group, sig)


def _group_alive(group: int) -> bool:
    try:
        os.killpg(group, 0)
    except ProcessLookupError:
        return False
    # Zombies (exited, not yet reaped by their parent) still count as members.
    return any(_is_live_member(process, group) for process in psutil.process_iter(["status"]))


def _is_live_member(process: psutil.Process, group: int) -> bool:
    try:
        return os.getpgid(process.pid) == group and process.status() != psutil.STATUS_ZOMBIE
    except (ProcessLookupError, psutil.Error):
        return False
