"""Run a ``cqrs`` command as a child process until it is ready, and stop it gracefully.

Used where one process starts others on one host: ``cqrs demo`` and the
benchmarks. Readiness is read from the child's log, since every worker says so
there (a worker: ``worker ready``, ``WORKER_READY``; a sink: ``sink <name> assigned``).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

from core.errors import PipelineError
from core.observability import WORKER_READY

__all__ = ["WORKER_READY", "cqrs_process"]


@contextmanager
def cqrs_process(
    command: Sequence[str],
    log: Path,
    ready: Sequence[str],
    env: Mapping[str, str] | None = None,
    timeout_s: float = 120,
) -> Iterator[subprocess.Popen[bytes]]:
    """``python -m cqrs <command>`` writing to ``log``, yielded once every ``ready``
    marker is in the log; SIGTERM (then SIGKILL after 60 s) on the way out."""
    with log.open("ab") as out:
        child = subprocess.Popen(
            [sys.executable, "-m", "cqrs", *command],
            env={**os.environ, **(env or {})},
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + timeout_s
        while not all(marker in log.read_text(errors="replace") for marker in ready):
            if child.poll() is not None or time.monotonic() > deadline:
                raise PipelineError(f"cqrs {' '.join(command)} did not start; see {log}")
            time.sleep(0.2)
        yield child
    finally:
        child.terminate()
        try:
            child.wait(60)
        except subprocess.TimeoutExpired:
            child.kill()
