"""What became of a transaction whose commit failed without saying: the group's offsets tell.

A ``commit_transaction`` that fails fatally (the producer fenced) or is given up
(its transaction must have expired) leaves the outcome open: the coordinator may
have written the commit before it failed over, or its ``EndTxn`` answer may have
been lost. The loop then replaces the producer; the new one's
``init_transactions`` returns only once the coordinator has finished the old
transaction one way or the other. Because the consumed offsets were sent to that
transaction, the group's committed offsets (read ``require_stable``, so never
while the transaction is still being completed) say which way it went:

- every partition at the offsets the transaction sent: it committed, so its
  staged state writes are the changelog's content and must be applied, and the
  records must not be processed again;
- every partition short of them: it aborted, so its records are processed again
  from where the group stands;
- anything else (a partition moved on by another member, offsets that could not
  be read): the outcome is not known here, and the partitions start over from
  the group's offsets with their state restored from the changelog.

Rewinding to the loop's own idea of the last commit instead would decide every
command of a committed transaction a second time.
"""

from __future__ import annotations

import enum
import logging
import time
from collections.abc import Callable, Mapping

from confluent_kafka import Consumer, KafkaException, TopicPartition

Place = tuple[str, int]  # topic, partition
OFFSETS_TIMEOUT_S = 5.0  # one try of the offset fetch
WARN_EVERY_S = 5.0
log = logging.getLogger("cqrs.loop")


class Outcome(enum.Enum):
    COMMITTED = "committed"
    ABORTED = "aborted"
    UNKNOWN = "unknown"


def judge(sent: Mapping[Place, int], committed: Mapping[Place, int] | None) -> Outcome:
    """The outcome, from the offsets the transaction sent and the group's committed
    offsets (negative: none committed; ``None``: they could not be read)."""
    if not sent or committed is None or set(committed) != set(sent):
        return Outcome.UNKNOWN
    if all(committed[place] == offset for place, offset in sent.items()):
        return Outcome.COMMITTED
    if all(committed[place] < offset for place, offset in sent.items()):
        return Outcome.ABORTED
    return Outcome.UNKNOWN


def committed_offsets(
    consumer: Consumer, places: list[Place], giving_up: Callable[[], bool]
) -> dict[Place, int] | None:
    """The group's committed offsets of ``places`` (stable: librdkafka asks with
    ``require_stable`` for a ``read_committed`` consumer), asked again until they come or
    ``giving_up()``; then ``None``. Without them the worker cannot know where to go on,
    so it waits as long as the group coordinator is away."""
    wanted = [TopicPartition(topic, partition) for topic, partition in places]
    warned = 0.0
    while True:
        try:
            answer = consumer.committed(wanted, timeout=OFFSETS_TIMEOUT_S)
            if not any(tp.error for tp in answer):
                return {(tp.topic, tp.partition): tp.offset for tp in answer}
            problem = "; ".join(str(tp.error) for tp in answer if tp.error)
        except KafkaException as error:
            problem = str(error.args[0])  # the group coordinator moving or loading
        if giving_up():
            return None
        if time.monotonic() - warned >= WARN_EVERY_S:
            warned = time.monotonic()
            log.warning("cannot read the group's committed offsets yet (%s); asking again", problem)
        time.sleep(0.2)
