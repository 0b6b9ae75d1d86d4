"""The loop's commit timing: whole batches under a backlog, early commits once caught up."""

from __future__ import annotations

from pytest import approx

from processors.commit_policy import CommitPolicy

POLICY = CommitPolicy(interval_s=0.05, early_s=0.01)


def test_a_backlog_commits_at_the_interval_only() -> None:
    assert not POLICY.due(0.03, caught_up=False)
    assert POLICY.due(0.05, caught_up=False)


def test_a_caught_up_worker_commits_once_the_transaction_is_early_s_old() -> None:
    assert not POLICY.due(0.005, caught_up=True)
    assert POLICY.due(0.01, caught_up=True)


def test_early_commits_can_be_turned_off() -> None:
    never = CommitPolicy(interval_s=0.05)
    assert not never.due(0.04, caught_up=True)
    assert never.due(0.05, caught_up=True)


def test_the_loop_waits_for_input_until_the_next_moment_it_may_commit() -> None:
    assert POLICY.wait_s(0.004) == approx(0.006)
    assert POLICY.wait_s(0.02) == 0.0
    assert CommitPolicy(interval_s=0.05).wait_s(0.02) == approx(0.03)
    assert CommitPolicy(interval_s=0.05, early_s=0.2).wait_s(0.0) == 0.05
