"""A commit whose answer never comes back: the worker must learn what became of it.

When a transaction coordinator fails over after writing a commit, or its answer is
lost, ``commit_transaction`` fails fatally although the transaction committed. The
worker then replaces its producer, and must neither decide the transaction's
commands again (they are committed) nor lose their state writes. Here the loop
runs in this process on the real broker with its producer wrapped so that one
``commit_transaction`` fails fatally, once after really committing and once
without having committed, or never returns; a steady stream with retries checks
every guarantee.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka import KafkaError, KafkaException, Producer

from core.domain import load_domain
from core.settings import Settings
from processors.transactional_loop import LoopSettings, TransactionalLoop
from processors.worker import command_task
from schemas.topic_admin import ensure_changelog
from tests.integration.command_stream import CommandStream, check_exactly_once
from tests.integration.pipeline import Pipeline


class OneCommitLost:
    """A transactional producer whose first commit after ``arm()`` goes wrong: it commits
    and then fails fatally (``answer-lost``), fails fatally without committing
    (``request-lost``), or never returns (``hangs``, as librdkafka's calls can)."""

    def __init__(self, mode: str) -> None:
        self.mode = mode
        self.armed = threading.Event()
        self.fired = threading.Event()
        self._never = threading.Event()

    def wrap(self, producer: Producer) -> Producer:
        fault = self

        class Wrapped:
            def __getattr__(self, name: str) -> object:
                return getattr(producer, name)

            def commit_transaction(self, timeout: float = -1) -> None:
                if fault.armed.is_set() and not fault.fired.is_set():
                    fault.fired.set()
                    if fault.mode == "hangs":
                        fault._never.wait(120)
                    if fault.mode == "answer-lost":
                        producer.commit_transaction(timeout)
                    raise KafkaException(
                        KafkaError(KafkaError._FENCED, "the commit's answer was lost", fatal=True)
                    )
                producer.commit_transaction(timeout)

        return Wrapped()  # type: ignore[return-value]


def loop_losing(fault: OneCommitLost, settings: Settings) -> TransactionalLoop:
    class Losing(TransactionalLoop):
        def _new_producer(self) -> Producer:
            return fault.wrap(super()._new_producer())

    processor = settings.processor
    task = command_task(settings, load_domain(settings.domain).writers[0])
    assert task.state is not None
    ensure_changelog(settings, task.state.changelog, task.state.source_topic)
    return Losing(
        task,
        LoopSettings(
            kafka=settings.kafka.confluent_config(),
            group_id=processor.app_id,
            transactional_id=f"{processor.app_id}-in-test",
            commit_interval_s=processor.commit_interval_s,
            transaction_timeout_s=processor.transaction_timeout_s,
            session_timeout_s=processor.session_timeout_s,
        ),
    )


@pytest.fixture
def pipeline(local_stack: Settings, tmp_path: Path) -> Pipeline:
    return Pipeline.create(local_stack, tmp_path, tmp_path / "state", partitions=2)


@pytest.fixture
def stream(pipeline: Pipeline) -> Iterator[CommandStream]:
    stream = CommandStream(pipeline)
    yield stream
    stream.stop()


@pytest.mark.parametrize(
    ("mode", "verdict"),
    [("answer-lost", "was committed"), ("request-lost", "is aborted"), ("hangs", "is aborted")],
)
def test_a_commit_failing_fatally_is_settled_from_the_groups_offsets(
    pipeline: Pipeline,
    stream: CommandStream,
    mode: str,
    verdict: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    fault = OneCommitLost(mode)
    loop = loop_losing(fault, pipeline.settings)
    runner = threading.Thread(target=loop.run, daemon=True)
    with caplog.at_level(logging.WARNING, logger="cqrs.loop"):
        runner.start()
        try:
            stream.start()
            time.sleep(4)  # the stream's aggregates registered, steady traffic
            fault.armed.set()
            assert fault.fired.wait(30), "no commit came to fail"
            time.sleep(4)
            stream.stop()
            check_exactly_once(pipeline, stream)
        finally:
            loop.stop()
            runner.join(30)
    settled = [r.getMessage() for r in caplog.records if "whose commit failed" in r.getMessage()]
    assert settled and verdict in settled[0], settled
    if mode == "hangs":
        assert any("did not return within" in r.getMessage() for r in caplog.records)
    assert not runner.is_alive(), "the loop did not stop"
