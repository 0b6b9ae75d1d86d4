"""The outcome of a transaction whose commit failed, judged from the group's offsets."""

from __future__ import annotations

from processors.commit_outcome import Outcome, judge

SENT = {("commands", 0): 120, ("commands", 1): 48}


def test_every_partition_at_the_sent_offsets_means_committed() -> None:
    assert judge(SENT, dict(SENT)) is Outcome.COMMITTED


def test_every_partition_short_of_them_means_aborted() -> None:
    assert judge(SENT, {("commands", 0): 100, ("commands", 1): 40}) is Outcome.ABORTED


def test_a_partition_never_committed_counts_as_short() -> None:
    assert judge(SENT, {("commands", 0): 100, ("commands", 1): -1001}) is Outcome.ABORTED


def test_some_at_and_some_short_cannot_be_one_transaction() -> None:
    assert judge(SENT, {("commands", 0): 120, ("commands", 1): 40}) is Outcome.UNKNOWN


def test_a_partition_moved_on_by_another_member_is_not_known() -> None:
    assert judge(SENT, {("commands", 0): 130, ("commands", 1): 48}) is Outcome.UNKNOWN


def test_offsets_that_could_not_be_read_are_not_known() -> None:
    assert judge(SENT, None) is Outcome.UNKNOWN
    assert judge(SENT, {("commands", 0): 120}) is Outcome.UNKNOWN


def test_nothing_sent_is_not_known() -> None:
    assert judge({}, {}) is Outcome.UNKNOWN
