"""Transactional ids of worker processes: stable across restarts, unique among live ones."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from processors.instance import claim_transactional_id


def test_live_processes_sharing_a_directory_get_distinct_ids(tmp_path: Path) -> None:
    first = claim_transactional_id("app", tmp_path)
    second = claim_transactional_id("app", tmp_path)
    try:
        assert first.transactional_id != second.transactional_id
        assert first.transactional_id.startswith("app-")
    finally:
        first.release()
        second.release()


def test_a_restarted_process_takes_its_predecessors_id(tmp_path: Path) -> None:
    first = claim_transactional_id("app", tmp_path)
    kept = claim_transactional_id("app", tmp_path)
    transactional_id = first.transactional_id
    first.release()  # the process ended
    try:
        again = claim_transactional_id("app", tmp_path)
        assert again.transactional_id == transactional_id
        again.release()
    finally:
        kept.release()


def test_a_killed_process_leaves_its_id_free(tmp_path: Path) -> None:
    script = (
        "import sys, pathlib, os, signal\n"
        "from processors.instance import claim_transactional_id\n"
        "claim = claim_transactional_id('app', pathlib.Path(sys.argv[1]))\n"
        "print(claim.transactional_id, flush=True)\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    run = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path)], capture_output=True, text=True, check=False
    )
    assert run.returncode == -9
    claim = claim_transactional_id("app", tmp_path)
    try:
        assert claim.transactional_id == run.stdout.strip()
    finally:
        claim.release()


def test_directories_of_their_own_never_share_an_id(tmp_path: Path) -> None:
    first = claim_transactional_id("app", tmp_path / "one")
    second = claim_transactional_id("app", tmp_path / "two")
    try:
        assert first.transactional_id != second.transactional_id
    finally:
        first.release()
        second.release()
