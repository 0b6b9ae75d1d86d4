"""Offsets from the admin client: librdkafka's placeholder for "no answer" is an error."""

from __future__ import annotations

from concurrent.futures import Future
from typing import Any

import pytest
from confluent_kafka import IsolationLevel, KafkaException, TopicPartition
from confluent_kafka.admin import ListOffsetsResultInfo, OffsetSpec  # type: ignore[attr-defined]

from schemas.partition_offsets import partition_offsets


class AnsweringAdmin:
    """Answers ``list_offsets`` with fixed offsets, as librdkafka's futures would."""

    def __init__(self, offsets: dict[int, int]) -> None:
        self.offsets = offsets

    def list_offsets(self, request: dict[TopicPartition, Any], **_: Any) -> dict[Any, Any]:
        futures = {}
        for tp in request:
            future: Future[ListOffsetsResultInfo] = Future()
            future.set_result(ListOffsetsResultInfo(self.offsets[tp.partition], -1, -1))
            futures[tp] = future
        return futures


def listed(offsets: dict[int, int]) -> dict[tuple[str, int], int]:
    return partition_offsets(
        AnsweringAdmin(offsets),  # type: ignore[arg-type]
        [("changelog", p) for p in offsets],
        OffsetSpec.latest(),  # type: ignore[no-untyped-call]
        IsolationLevel.READ_UNCOMMITTED,
        timeout_s=1,
    )


def test_offsets_are_returned_by_partition() -> None:
    assert listed({0: 5693, 1: 0}) == {("changelog", 0): 5693, ("changelog", 1): 0}


def test_a_partition_whose_leader_did_not_answer_is_an_error_not_an_empty_partition() -> None:
    with pytest.raises(KafkaException, match=r"no offset for changelog\[1\]"):
        listed({0: 5693, 1: -1001})  # OFFSET_INVALID, librdkafka's pre-filled result


def test_nothing_asked_is_nothing_answered() -> None:
    assert listed({}) == {}
