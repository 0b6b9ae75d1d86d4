"""Abort whatever an earlier producer under the same transactional id left open.

``init_transactions`` aborts the previous transaction through its coordinator,
which writes the abort markers. A broker restarted within its controller session
(a single node, or every replica of a partition) can skip them: its coordinator
times the transaction out while the partitions have no leader and drops their
markers as if the topics were deleted (its log: "Couldn't find leader endpoint
for partitions ... likely deleted already and hence can be skipped"). Then:

- the batches stay open under this producer id; the next transaction of the
  same id would commit them with its own (records decided twice), and one that
  never touches the partition leaves its ``read_committed`` readers stuck;
- the offsets the lost transaction sent stay pending in the group coordinator,
  and every committed-offset read of the group (``require_stable``, as
  ``read_committed`` consumers ask) answers "unstable" until they end, so the
  worker never learns where to start and waits on.

So every new producer first runs one transaction that writes an empty record
(header ``cqrs-stray-fence``) to every partition it may write to and sends
offsets for the task's group, waits until the records are written, and aborts.
Its abort markers, under the new epoch, close any open batch and any pending
offsets of this producer id along with it. ``read_committed`` readers never see
these records, and the group's committed offsets stay as they were.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition

from core.settings import KafkaConfig

STRAY_FENCE = "cqrs-stray-fence"  # header of the aborted records
ATTEMPT_S = 5.0  # one try of a call
# retrying(what, call, deadline): call(timeout) again while it fails retriably.
Retrying = Callable[[str, Callable[[float], object], float], None]


@dataclass(frozen=True)
class Strays:
    kafka: KafkaConfig  # connection and security
    group_id: str  # the task's consumer group
    topics: list[str]  # every topic the producer may write to
    input_topic: str  # a topic of the group, for the offsets sent


def close_strays(producer: Producer, strays: Strays, retrying: Retrying, deadline: float) -> int:
    """Run the closing transaction on a producer fresh from ``init_transactions``; how many
    partitions it wrote to. KafkaException when it could not (take a new producer)."""
    metadata = producer.list_topics(timeout=ATTEMPT_S)
    producer.begin_transaction()
    count = 0
    for topic in strays.topics:
        described = metadata.topics.get(topic)
        if described is None or described.error is not None:
            raise KafkaException(
                KafkaError(KafkaError.UNKNOWN_TOPIC_OR_PART, f"{topic}: not described")
            )
        for partition in described.partitions:
            # A key, because compacted topics refuse records without one.
            producer.produce(topic, None, b"", partition, headers=[(STRAY_FENCE, b"1")])
            count += 1
    while producer.flush(ATTEMPT_S):
        if time.monotonic() >= deadline:
            raise KafkaException(KafkaError(KafkaError._TIMED_OUT, "closing strays: unsent"))
    # Metadata of no generation (a consumer that never joins): accepted whatever the
    # group's state, and the offsets are aborted anyway.
    outsider = Consumer({**strays.kafka, "group.id": strays.group_id})
    try:
        group = outsider.consumer_group_metadata()
    finally:
        outsider.close()
    offsets = [TopicPartition(strays.input_topic, 0, 0)]
    retrying(
        "send_offsets_to_transaction",
        lambda timeout: producer.send_offsets_to_transaction(offsets, group, timeout),
        deadline,
    )
    retrying("abort_transaction", producer.abort_transaction, deadline)
    return count
