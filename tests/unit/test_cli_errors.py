"""The command line fails in one line on stderr with an exit code that says which failure."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest


def cqrs(*arguments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cqrs", *arguments],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize(
    ("arguments", "says"),
    [
        (["nosuch"], "No such command 'nosuch'"),
        (["config", "--bad"], "No such option: --bad"),
        (["send", "AdjustStock", "--json", "{}"], "Missing option '--aggregate-id'"),
        (["send", "NoSuchCommand", "-a", "x", "--no-wait"], "'NoSuchCommand' is not a command"),
        (["send", "AdjustStock", "-a", "x", "--json", "[1]"], "must be a JSON object"),
        (["send", "AdjustStock", "-a", "x", "--json", "{x"], "--json: not valid JSON"),
    ],
    ids=["command", "option", "missing", "unknown-command", "json-list", "json-syntax"],
)
def test_a_usage_error_is_one_line_and_exit_code_2(arguments: list[str], says: str) -> None:
    run = cqrs(*arguments)
    assert run.returncode == 2, run
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1, run.stderr
    assert lines[0].startswith("error: ") and says in lines[0], lines[0]
    assert "--help" in lines[0]


def test_a_bad_setting_is_one_line_and_exit_code_1() -> None:
    run = subprocess.run(
        [sys.executable, "-m", "cqrs", "config"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={"CQRS_PROCESSOR__PARTITIONS": "abc", "PATH": "/usr/bin:/bin"},
    )
    assert run.returncode == 1, run
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and "CQRS_PROCESSOR__PARTITIONS" in lines[0], run.stderr


def test_version_and_bare_help_exit_0() -> None:
    version = cqrs("--version")
    assert version.returncode == 0 and version.stdout.startswith("cqrs "), version
    bare = cqrs()
    assert bare.returncode == 0 and "Usage" in bare.stdout, bare


def test_lag_with_kafka_unreachable_is_one_line_naming_the_brokers() -> None:
    run = subprocess.run(
        [sys.executable, "-m", "cqrs", "lag"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, "CQRS_KAFKA__BOOTSTRAP_SERVERS": "127.0.0.1:9"},
    )
    assert run.returncode == 1, run
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and "cannot reach Kafka at 127.0.0.1:9" in lines[0], run.stderr


def test_schemas_list_offline_needs_no_registry() -> None:
    env = {**os.environ, "CQRS_REGISTRY__URL": "http://127.0.0.1:9"}
    offline = subprocess.run(
        [sys.executable, "-m", "cqrs", "schemas", "list", "--offline", "--json"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=env,
    )
    assert offline.returncode == 0, offline.stderr
    listed = json.loads(offline.stdout)
    assert {"record": "cqrs.commands.PlaceOrder", "revision": 1} in [
        {"record": s["record"], "revision": s["revision"]} for s in listed
    ]
    asking = subprocess.run(
        [sys.executable, "-m", "cqrs", "schemas", "list"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=env,
    )
    assert asking.returncode == 1 and "unreachable" in asking.stderr.strip().splitlines()[-1]


def test_projections_list_json_names_each_projections_group_and_store() -> None:
    listed = subprocess.run(
        [sys.executable, "-m", "cqrs", "projections", "list", "--json"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    by_name = {item["name"]: item for item in json.loads(listed.stdout)}
    assert by_name["search-orders"]["store"] == "search"
    assert by_name["order-summary"]["group"] == "cqrs-sink-order-summary"
