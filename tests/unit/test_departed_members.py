"""Whose transactional id a worker takes over: static names seen before, gone now."""

from processors.departed import departed


def test_a_member_the_group_no_longer_has_is_departed() -> None:
    assert departed({"a", "b", "c"}, {"a", "c"}, me="a") == {"b"}


def test_this_worker_is_never_departed_even_when_the_description_misses_it() -> None:
    assert departed({"a", "b"}, {"b"}, me="a") == set()


def test_a_member_never_seen_before_is_not_departed() -> None:
    assert departed(set(), {"a"}, me="a") == set()
    assert departed({"a"}, {"a", "new"}, me="a") == set()
