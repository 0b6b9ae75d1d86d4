"""Partition offsets (earliest, latest) through the admin client, with no answer never read
as an offset.

librdkafka's admin ``ListOffsets`` fans out one request per partition leader and
pre-fills every partition's result with offset ``OFFSET_INVALID`` (-1001) and no
error. When the request to one leader fails (it times out while a broker is
restarting, say), its partitions come back with that placeholder and still no
error. A caller comparing offsets would then see an empty partition: a restore
that treated such a changelog partition as empty ran the partition on no state
and answered its retried commands as if they had never been decided. Every
earliest or latest offset is at least 0, so anything below is reported here as
the error it is.
"""

from __future__ import annotations

from collections.abc import Iterable

from confluent_kafka import IsolationLevel, KafkaError, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient
from confluent_kafka.admin._listoffsets import OffsetSpec

Place = tuple[str, int]  # topic, partition


def partition_offsets(
    admin: AdminClient,
    places: Iterable[Place],
    spec: OffsetSpec,
    isolation_level: IsolationLevel,
    timeout_s: float,
) -> dict[Place, int]:
    """The offset ``spec`` names of each partition; ``KafkaException`` if any is unknown."""
    request = {TopicPartition(topic, partition): spec for topic, partition in places}
    if not request:
        return {}
    futures = admin.list_offsets(
        request, isolation_level=isolation_level, request_timeout=timeout_s
    )
    offsets: dict[Place, int] = {}
    for tp, future in futures.items():
        offset = future.result(timeout=timeout_s + 5).offset
        if offset < 0:
            raise KafkaException(
                KafkaError(
                    KafkaError._TIMED_OUT,
                    f"no offset for {tp.topic}[{tp.partition}] (its leader did not answer)",
                )
            )
        offsets[(tp.topic, tp.partition)] = offset
    return offsets
