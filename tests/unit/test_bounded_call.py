"""A transactional call bounded in wall-clock time, whatever the library does."""

from __future__ import annotations

import threading
import time

import pytest
from confluent_kafka import KafkaError, KafkaException

from core.errors import CallOverranError
from processors.bounded_call import call_within


def test_the_call_gets_its_timeout_and_its_exception_comes_back() -> None:
    given: list[float] = []
    call_within(given.append, 1.5, "commit")
    assert given == [1.5]

    def failing(_: float) -> None:
        raise KafkaException(KafkaError(KafkaError._FENCED, "fenced", fatal=True))

    with pytest.raises(KafkaException, match="fenced"):
        call_within(failing, 1.0, "commit")


def test_a_call_that_outlives_its_timeout_and_grace_is_abandoned() -> None:
    release = threading.Event()
    started = time.monotonic()
    with pytest.raises(CallOverranError, match=r"commit did not return within 0\.3 s"):
        call_within(lambda _: release.wait(10), 0.1, "commit", grace_s=0.2)
    assert time.monotonic() - started < 2
    release.set()  # the abandoned thread ends as soon as the call returns
