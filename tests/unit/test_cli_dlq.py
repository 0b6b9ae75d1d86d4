"""``cqrs dlq``: a bad selection or topic is one line on stderr with its exit code."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest


def cqrs(*arguments: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cqrs", "dlq", *arguments],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, **env},
    )


def one_line(run: subprocess.CompletedProcess[str]) -> str:
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1, run.stderr
    assert lines[0].startswith("error: "), lines[0]
    assert run.stdout == "", run.stdout
    return lines[0]


@pytest.mark.parametrize(
    ("arguments", "says"),
    [
        (["replay", "commands-dlq/x/1"], "the partition in 'commands-dlq/x/1' must be a number"),
        (["replay", "commands-dlq/0"], "is not TOPIC/PARTITION/OFFSET"),
        (["replay", "commands-dlq/0/1", "--topic", "commands-dlq"], "not both"),
        (["replay", "--yes"], "select dead letters"),
        (["show", "commands-dlq", "1"], "got 2 values"),
        (["show", "commands-dlq", "one", "2"], "the partition"),
        (["list", "--limit", "0"], "--limit"),
    ],
    ids=["partition", "short", "both", "nothing", "two-values", "three-values", "limit"],
)
def test_a_bad_argument_is_one_line_and_exit_code_2(arguments: list[str], says: str) -> None:
    run = cqrs(*arguments)
    assert run.returncode == 2, run
    line = one_line(run)
    assert says in line and "--help" in line, line


@pytest.mark.parametrize(
    "arguments",
    [["list", "--topic", "commands"], ["replay", "--topic", "nosuch"], ["show", "nosuch/0/1"]],
)
def test_a_topic_that_is_no_dead_letter_topic_is_one_line_and_exit_code_1(
    arguments: list[str],
) -> None:
    run = cqrs(*arguments, CQRS_KAFKA__BOOTSTRAP_SERVERS="127.0.0.1:9")  # never asked
    assert run.returncode == 1, run
    assert "is not a dead-letter topic of this pipeline; one of commands-dlq, events-dlq" in (
        one_line(run)
    )


def test_kafka_unreachable_is_one_line_naming_the_brokers() -> None:
    run = cqrs("list", CQRS_KAFKA__BOOTSTRAP_SERVERS="127.0.0.1:9")
    assert run.returncode == 1, run
    assert "cannot reach Kafka at 127.0.0.1:9" in one_line(run)
