"""The plain confluent-kafka peer: the practical limit of an exactly-once loop in Python.

Consume a batch, decide each command (``benchmarks.peers.decider``), produce three
records per command inside one transaction (the event keyed by aggregate id, the
result keyed by command id, the new state to the peer's changelog on the command's
partition), and every ``--commit-interval`` send the consumed offsets with the
consumer's group metadata and commit. State is a dict; a command's state is read
from the writes of the open transaction first, and those become the committed
state only once their transaction commits. Nothing else: no rebalance or fencing
handling (a round runs one peer on fresh topics; any error ends it, visibly).

    python -m benchmarks.peers.plain_loop --bootstrap ... --registry ... --prefix ...
        --group ... --state-dir ...
"""

from __future__ import annotations

import json
import signal
import time
from types import FrameType

from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic

from benchmarks.peers.decider import Decider, State, peer_options

BATCH = 500


def create_changelog(bootstrap: str, commands: str, changelog: str) -> None:
    """The state's compacted changelog, partitioned as the commands topic."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    partitions = len(admin.list_topics(commands, timeout=15).topics[commands].partitions)
    config = {"cleanup.policy": "compact"}
    for future in admin.create_topics([NewTopic(changelog, partitions, 1, config=config)]).values():
        future.result(30)
    deadline = time.monotonic() + 30
    while changelog not in admin.list_topics(timeout=15).topics:
        if time.monotonic() > deadline:
            raise KafkaException(f"{changelog} not visible after 30 s")
        time.sleep(0.1)


def main() -> None:
    options = peer_options()
    commands, events = options.prefix + "commands", options.prefix + "events"
    results, changelog = options.prefix + "command-results", options.group + "-aggregates-changelog"
    create_changelog(options.bootstrap, commands, changelog)
    decider = Decider(options.registry, events, results)
    consumer = Consumer(
        {
            "bootstrap.servers": options.bootstrap,
            "group.id": options.group,
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "isolation.level": "read_committed",
        }
    )
    producer = Producer(
        {"bootstrap.servers": options.bootstrap, "transactional.id": options.group + "-txn"}
    )
    stopping: list[bool] = []

    def stop(_signal: int, _frame: FrameType | None) -> None:
        stopping.append(True)

    signal.signal(signal.SIGTERM, stop)
    producer.init_transactions(30)
    consumer.subscribe([commands])
    committed: dict[bytes, State] = {}
    pending: dict[bytes, State] = {}
    producer.begin_transaction()
    due, consumed = time.monotonic() + options.commit_interval, False
    print("plain loop ready", flush=True)
    while not stopping:
        for message in consumer.consume(BATCH, max(0.0, due - time.monotonic())):
            if message.error():
                raise KafkaException(message.error())
            key = message.key() or b""
            state = pending[key] if key in pending else committed.get(key)
            decision = decider.decide(message.value() or b"", state)
            if decision.event is not None:
                producer.produce(events, decision.event, key)
            producer.produce(results, decision.result, decision.result_key)
            record = json.dumps(decision.state, separators=(",", ":")).encode()
            producer.produce(changelog, record, key, partition=message.partition() or 0)
            pending[key] = decision.state
            consumed = True
        producer.poll(0)
        if time.monotonic() >= due:
            if consumed:
                commit(consumer, producer)
                committed.update(pending)
                pending.clear()
                producer.begin_transaction()
            due, consumed = time.monotonic() + options.commit_interval, False
    producer.abort_transaction(10)
    consumer.close()


def commit(consumer: Consumer, producer: Producer) -> None:
    positions: list[TopicPartition] = consumer.position(consumer.assignment())
    offsets = [position for position in positions if position.offset >= 0]
    producer.send_offsets_to_transaction(offsets, consumer.consumer_group_metadata(), 10)
    producer.commit_transaction(10)


if __name__ == "__main__":
    main()
