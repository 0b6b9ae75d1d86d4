"""One transactional producer per worker, fenced by the consumer group, on the real broker.

The recovery tests reach these paths only when a kill happens to fall at the
right moment; here each is forced: offsets committed under the group's
generation, a stale generation refused with the transaction's output never
visible, and a takeover waiting while a transaction still holds offsets.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace

import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.structs import TopicPartition

from cqrs.settings import Settings
from processors.group_transactions import (
    GroupFencedError,
    GroupMetadata,
    GroupTransactionalProducer,
)
from tests.integration.conftest import TopicFactory
from tests.integration.pipeline import read_topic


@asynccontextmanager
async def member(bootstrap: str, topic: str, group: str) -> AsyncIterator[AIOKafkaConsumer]:
    """A consumer that has joined ``group`` and owns ``topic``'s partitions."""
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=group,
        enable_auto_commit=False,
        isolation_level="read_committed",
    )
    await consumer.start()
    try:
        for _ in range(100):
            if consumer.assignment():
                break
            await consumer.getmany(timeout_ms=100)
        assert consumer.assignment(), "the consumer never got its partitions"
        yield consumer
    finally:
        await consumer.stop()


@asynccontextmanager
async def transactional(bootstrap: str) -> AsyncIterator[GroupTransactionalProducer]:
    producer = GroupTransactionalProducer(
        bootstrap_servers=bootstrap,
        transactional_id=f"group-txn-test-{uuid.uuid4().hex}",
        transaction_timeout_ms=10_000,
    )
    await producer.start()
    try:
        yield producer
    finally:
        await producer.stop()


def membership(consumer: AIOKafkaConsumer, group: str) -> GroupMetadata:
    coordinator = consumer._coordinator
    return GroupMetadata(group, coordinator.generation, coordinator.member_id)


async def committed(consumer: AIOKafkaConsumer, partition: TopicPartition, want: int) -> int | None:
    """The committed offset, once the commit markers have reached the group (≤ 10 s)."""
    offset: int | None = None
    for _ in range(100):
        offset = await consumer.committed(partition)
        if offset == want:
            break
        await asyncio.sleep(0.1)
    return offset


@dataclass(frozen=True)
class Space:
    bootstrap: str
    topic: str  # two partitions
    group: str


@pytest.fixture
def space(
    local_stack: Settings, new_topic: TopicFactory, unique_name: Callable[[str], str]
) -> Space:
    return Space(local_stack.kafka.bootstrap_servers, new_topic("gt", 2), unique_name("group"))


def test_offsets_commit_under_the_groups_generation(local_stack: Settings, space: Space) -> None:
    bootstrap, topic, group = space.bootstrap, space.topic, space.group
    partition = TopicPartition(topic, 0)

    async def scenario() -> int | None:
        async with member(bootstrap, topic, group) as consumer, transactional(bootstrap) as p:
            await p.begin_transaction()
            await p.send_and_wait(topic, b"output", partition=0)
            await p.send_offsets_to_transaction({partition: 7}, membership(consumer, group))
            await p.commit_transaction()
            return await committed(consumer, partition, 7)

    assert asyncio.run(scenario()) == 7
    assert [value for _, value, _ in read_topic(local_stack, topic)] == [b"output"]


def test_a_stale_generation_is_refused_and_its_output_never_seen(
    local_stack: Settings, space: Space
) -> None:
    bootstrap, topic, group = space.bootstrap, space.topic, space.group
    partition = TopicPartition(topic, 0)

    async def scenario() -> int | None:
        async with member(bootstrap, topic, group) as consumer, transactional(bootstrap) as p:
            current = membership(consumer, group)
            zombie = replace(current, generation_id=current.generation_id + 1000)
            await p.begin_transaction()
            await p.send_and_wait(topic, b"zombie output", partition=0)
            with pytest.raises(GroupFencedError, match="IllegalGeneration"):
                await p.send_offsets_to_transaction({partition: 5}, zombie)
            await p.abort_transaction()
            stranger = replace(current, member_id=f"someone-else-{uuid.uuid4().hex}")
            await p.begin_transaction()
            with pytest.raises(GroupFencedError, match="UnknownMemberId"):
                await p.send_offsets_to_transaction({partition: 5}, stranger)
            await p.abort_transaction()
            offset: int | None = await consumer.committed(partition)
            return offset

    assert asyncio.run(scenario()) is None
    assert read_topic(local_stack, topic) == []


def test_a_takeover_waits_while_a_transaction_holds_offsets(space: Space) -> None:
    bootstrap, topic, group = space.bootstrap, space.topic, space.group
    held, free = TopicPartition(topic, 0), TopicPartition(topic, 1)

    async def scenario() -> None:
        async with member(bootstrap, topic, group) as consumer, transactional(bootstrap) as p:
            await p.begin_transaction()
            await p.send_and_wait(topic, b"pending", partition=0)
            await p.send_offsets_to_transaction({held: 3}, membership(consumer, group))
            await p.wait_for_stable_offsets(group, [free], timeout_s=5)  # not held: at once
            with pytest.raises(TimeoutError, match=r"held by an open transaction"):
                await p.wait_for_stable_offsets(group, [held, free], timeout_s=1.5)
            loop = asyncio.get_running_loop()
            ending = loop.create_task(asyncio.sleep(1, result=None))
            ending.add_done_callback(lambda _: loop.create_task(p.commit_transaction()))
            started = loop.time()
            await p.wait_for_stable_offsets(group, [held, free], timeout_s=20)
            assert loop.time() - started >= 0.9, "returned before the transaction ended"
            assert await consumer.committed(held) == 3  # what the new owner reads is final

    asyncio.run(scenario())
