"""The registry waits out a broker restarted on its old data, and fails on anything else."""

from __future__ import annotations

import pytest
from confluent_kafka import KafkaError

from schemas.registry.store import broker_starting


@pytest.mark.parametrize(
    "code",
    [
        KafkaError.NOT_LEADER_FOR_PARTITION,  # seen after a restart: not flagged retriable
        KafkaError.LEADER_NOT_AVAILABLE,
        KafkaError._TRANSPORT,
        KafkaError._TIMED_OUT,
    ],
)
def test_a_broker_still_electing_leaders_is_waited_for(code: int) -> None:
    assert broker_starting(KafkaError(code))


@pytest.mark.parametrize(
    "code", [KafkaError.TOPIC_AUTHORIZATION_FAILED, KafkaError.UNKNOWN_TOPIC_OR_PART]
)
def test_other_errors_are_failures(code: int) -> None:
    assert not broker_starting(KafkaError(code))


def test_errors_librdkafka_marks_retriable_are_waited_for() -> None:
    assert broker_starting(KafkaError(KafkaError.REQUEST_TIMED_OUT, retriable=True))
