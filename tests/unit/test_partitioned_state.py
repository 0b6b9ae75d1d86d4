"""Local state holds a transaction's writes apart until it commits (pure)."""

from __future__ import annotations

from processors.state import PartitionedState


def test_staged_writes_are_read_back_but_reach_the_table_only_at_commit() -> None:
    state = PartitionedState()
    state.add(0, [(b"a", b"1"), (b"b", b"2")])
    reader = state.reader(0)
    state.stage(0, [(b"a", b"9"), (b"b", None), (b"c", b"3")])
    assert [reader.get(k) for k in (b"a", b"b", b"c")] == [b"9", None, b"3"]
    assert dict(state.items(0)) == {b"a": b"1", b"b": b"2"}
    state.commit()
    assert dict(state.items(0)) == {b"a": b"9", b"c": b"3"}


def test_an_aborted_transaction_leaves_nothing_behind() -> None:
    state = PartitionedState()
    state.add(1, [(b"a", b"1")])
    state.stage(1, [(b"a", b"2"), (b"z", b"x")])
    state.abort()
    assert state.reader(1).get(b"a") == b"1"
    assert state.reader(1).get(b"z") is None
    state.commit()
    assert dict(state.items(1)) == {b"a": b"1"}


def test_a_restore_applies_deletions_in_log_order_and_a_dropped_partition_is_forgotten() -> None:
    state = PartitionedState()
    state.add(2, [(b"a", b"1"), (b"a", None), (b"b", b"1"), (b"b", b"2")])
    assert dict(state.items(2)) == {b"b": b"2"}
    state.stage(2, [(b"c", b"3")])
    state.drop(2)
    state.commit()  # staged writes of a partition that moved away are not applied
    assert not state.owns(2)
    assert dict(state.items(2)) == {}
