"""What a task is: the pure-ish step a worker's loop runs for each consumed record.

A task names its input topics and, when it keeps state, the input topic whose
partitions own that state and the changelog it is kept in. ``process`` turns
one record into the records to send and the state writes to make; the loop
sends both and the record's offset in one Kafka transaction. A task does no
IO of its own.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from confluent_kafka import Message

from processors.state import StateReader, StateWrite

# confluent-kafka's header type: values may also be text or absent.
Headers = list[tuple[str, str | bytes | None]]


@dataclass(frozen=True, slots=True)
class Output:
    """A record to send; without a partition, the key decides it (Kafka's murmur2)."""

    topic: str
    key: bytes | None
    value: bytes | None
    headers: Headers | None = None
    partition: int | None = None


@dataclass(frozen=True, slots=True)
class Step:
    outputs: list[Output] = field(default_factory=list)
    writes: list[StateWrite] = field(default_factory=list)  # to the record's state partition


@dataclass(frozen=True)
class StateSpec:
    source_topic: str  # the input topic whose partition numbers are the state's partitions
    changelog: str  # compacted topic holding the state, one partition per source partition


class Task(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def topics(self) -> list[str]: ...

    @property
    def outputs(self) -> list[str]:
        """Every topic ``process`` may send to (the state's changelog aside)."""
        ...

    @property
    def state(self) -> StateSpec | None: ...

    def process(self, message: Message, state: StateReader | None) -> Step:
        """What ``message`` leads to; ``state`` is its partition's state, if the task keeps
        state and the message comes from the state's source topic."""
        ...
