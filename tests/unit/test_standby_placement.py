"""Where warm standbys go: rendezvous hashing over the group's static member names."""

from __future__ import annotations

from collections import Counter
from types import SimpleNamespace

from confluent_kafka import TopicPartition

from processors.standby import followers, owners

MEMBERS = [f"app-host-{n}" for n in range(4)]


def test_followers_never_include_the_owner_and_are_as_many_as_asked() -> None:
    for partition in range(24):
        owner = MEMBERS[partition % 4]
        for replicas in (1, 2, 3):
            chosen = followers(partition, owner, MEMBERS, replicas)
            assert owner not in chosen
            assert len(chosen) == len(set(chosen)) == replicas
        assert followers(partition, owner, MEMBERS, 10) == followers(partition, owner, MEMBERS, 3)


def test_every_member_computes_the_same_choice_whatever_order_it_lists_the_group() -> None:
    for partition in range(24):
        chosen = followers(partition, MEMBERS[0], MEMBERS, 2)
        assert followers(partition, MEMBERS[0], list(reversed(MEMBERS)), 2) == chosen


def test_a_member_leaving_moves_only_the_standbys_it_held() -> None:
    before = {p: followers(p, MEMBERS[0], MEMBERS, 1) for p in range(200)}
    after = {p: followers(p, MEMBERS[0], MEMBERS[:3], 1) for p in range(200)}
    moved = [p for p in before if before[p] != after[p]]
    assert all(before[p] == [MEMBERS[3]] for p in moved)
    spread = Counter(chosen[0] for chosen in before.values())
    assert set(spread) == set(MEMBERS[1:]) and min(spread.values()) > 40  # spread about evenly


def test_owners_come_from_the_group_description_by_static_name() -> None:
    def member(name: str | None, member_id: str, partitions: list[tuple[str, int]]) -> object:
        assignment = SimpleNamespace(topic_partitions=[TopicPartition(t, p) for t, p in partitions])
        return SimpleNamespace(group_instance_id=name, member_id=member_id, assignment=assignment)

    description = SimpleNamespace(
        members=[
            member("a", "m-1", [("commands", 0), ("commands", 2), ("other", 1)]),
            member(None, "m-2", [("commands", 1)]),
        ]
    )
    members, owned = owners(description, "commands")
    assert members == ["a", "m-2"]
    assert owned == {0: "a", 2: "a", 1: "m-2"}
