"""Exactly-once under failure: workers killed mid-stream and partitions moving between workers.

A steady stream of commands goes to many aggregates while workers crash or
join and leave; now and then a client retries an earlier command, often across
a crash or a move of its partition (``command_stream`` says what is checked).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from core.settings import Settings
from tests.integration.command_stream import CommandStream, check_exactly_once
from tests.integration.pipeline import Pipeline


@pytest.fixture
def pipeline(local_stack: Settings, tmp_path: Path) -> Pipeline:
    return Pipeline.create(local_stack, tmp_path, tmp_path / "state", partitions=4)


@pytest.fixture
def stream(pipeline: Pipeline) -> Iterator[CommandStream]:
    stream = CommandStream(pipeline)
    yield stream
    stream.stop()


def test_a_worker_killed_mid_stream_recovers_without_duplicates_or_gaps(
    pipeline: Pipeline, stream: CommandStream
) -> None:
    worker = pipeline.process("worker", name="worker")
    worker.start()
    stream.start()
    time.sleep(6)
    worker.kill()  # SIGKILL inside open transactions
    time.sleep(2)  # commands keep arriving while nobody processes them
    worker.start()
    time.sleep(6)
    worker.kill()
    worker.start()
    time.sleep(4)
    stream.stop()
    try:
        check_exactly_once(pipeline, stream)
    finally:
        worker.stop()


def test_two_workers_sharing_partitions_keep_every_guarantee_across_rebalances(
    pipeline: Pipeline, stream: CommandStream
) -> None:
    first = pipeline.process("worker", name="first")
    second = pipeline.process("worker", name="second")
    second.env = {**second.env, "CQRS_PROCESSOR__DATADIR": str(pipeline.logs / "second-state")}
    first.start()
    stream.start()
    time.sleep(5)
    second.start()  # partitions are split between the two
    time.sleep(6)
    first.stop()  # graceful leave: the second takes everything over
    time.sleep(5)
    first.start()  # and a join again
    time.sleep(5)
    second.kill()  # a crash while sharing
    time.sleep(5)
    stream.stop()
    try:
        check_exactly_once(pipeline, stream)
    finally:
        first.stop()
        second.stop()
