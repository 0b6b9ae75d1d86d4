"""The worker's local state store: committed writes with their changelog position, atomically."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from core.errors import LocalStoreError
from processors.local_store import LocalStore, Position, usable


def test_writes_and_positions_land_together(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "state.sqlite")
    store.apply({0: {b"a": b"1", b"b": b"2"}, 1: {b"c": b"3"}}, {0: 10, 1: 4}, now=100.0)
    store.apply({0: {b"a": None, b"b": b"2'"}}, {0: 12}, now=101.0)
    assert sorted(store.entries(0)) == [(b"b", b"2'")]
    assert store.position(0) == Position(12, 101.0)
    assert store.position(1) == Position(4, 100.0)
    assert store.position(2) is None
    store.close()
    reopened = LocalStore(tmp_path / "state.sqlite")  # what a restarted worker finds
    assert sorted(reopened.entries(1)) == [(b"c", b"3")]
    assert reopened.count(0) == 1


def test_a_failed_apply_leaves_nothing(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "state.sqlite")
    store.apply({0: {b"a": b"1"}}, {0: 1})
    store.apply({0: {b"b": b"2"}, 1: {b"c": object()}}, {0: 5})  # type: ignore[dict-item]
    with pytest.raises(LocalStoreError, match="writing local state") as failure:
        store.flush()
    assert isinstance(failure.value.__cause__, sqlite3.Error)
    with pytest.raises(LocalStoreError):  # every later call: the worker must stop
        store.apply({0: {b"d": b"4"}}, {0: 6})

    reopened = LocalStore(tmp_path / "state.sqlite")
    assert sorted(reopened.entries(0)) == [(b"a", b"1")]
    assert reopened.position(0) == Position(1, reopened.position(0).written_at)  # type: ignore[union-attr]


def test_writes_land_in_the_order_asked_and_close_writes_what_is_queued(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "state.sqlite")
    for number in range(200):
        store.apply({0: {b"k": str(number).encode(), b"gone": None}}, {0: number})
        store.apply({0: {b"gone": b"x"}}, {})
    store.forget(1)
    store.close()

    reopened = LocalStore(tmp_path / "state.sqlite")
    assert sorted(reopened.entries(0)) == [(b"gone", b"x"), (b"k", b"199")]
    assert reopened.position(0) is not None and reopened.position(0).next_offset == 199  # type: ignore[union-attr]


def test_restored_records_keep_the_last_write_of_each_key(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "state.sqlite")
    store.append_restored(3, [(b"k", b"1"), (b"j", b"x"), (b"k", None), (b"k", b"3")])
    assert sorted(store.entries(3)) == [(b"j", b"x"), (b"k", b"3")]
    assert store.position(3) is None  # set only once the restore ends
    store.forget(3)
    assert list(store.entries(3)) == []


def test_a_damaged_store_is_moved_aside_and_replaced(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite"
    path.write_bytes(b"not a database" * 100)
    store = LocalStore(path)
    assert store.position(0) is None
    assert [p.name for p in tmp_path.iterdir() if ".damaged-" in p.name]


@pytest.mark.parametrize(
    ("position", "first", "end", "now", "expected"),
    [
        (Position(50, 1000.0), 0, 80, 1010.0, True),
        (Position(80, 1000.0), 0, 80, 1010.0, True),  # nothing left to read
        (Position(90, 1000.0), 0, 80, 1010.0, False),  # past the end: the topic was recreated
        (Position(5, 1000.0), 10, 80, 1010.0, False),  # before the log's start
        (Position(50, 1000.0), 0, 80, 1000.0 + 86_400, False),  # tombstones may be gone
        (None, 0, 80, 1010.0, False),
    ],
)
def test_a_store_is_used_only_when_the_log_can_complete_it(
    position: Position | None, first: int, end: int, now: float, expected: bool
) -> None:
    assert usable(position, first, end, 86_400.0, now=now) is expected


def test_a_store_from_a_changelog_created_again_is_emptied(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "state.sqlite")
    store.bind("topic-a")
    store.apply({0: {b"k": b"v"}}, {0: 5})
    store.bind("topic-a")  # the same topic: kept
    assert store.position(0) is not None
    store.bind("topic-b")  # deleted and created again under the same name
    assert store.position(0) is None
    assert list(store.entries(0)) == []
