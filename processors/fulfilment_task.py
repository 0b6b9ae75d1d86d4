"""The fulfilment process manager as a task (see ``fulfilment_processing``).

One consumer group reads two topics. Events from ``events`` (keyed by
aggregate id) that the saga observes are forwarded to ``fulfilment-inbox``
keyed by order id; records of the inbox reach the partition that holds the
order's saga state, where ``react`` decides the commands to send. Each step's
output, state write and offset commit in one transaction, so a crash between
the two steps loses and repeats nothing.
"""

from __future__ import annotations

import logging

from confluent_kafka import Message

from processors.dead_letters import dead_letter_output
from processors.fulfilment_processing import FulfilmentProcessor, SagaRecord
from processors.state import StateReader, StateWrite
from processors.task import Output, StateSpec, Step
from schemas.errors import SerializationError

log = logging.getLogger("cqrs.fulfilment")
TABLE_NAME = "fulfilment"


class FulfilmentTask:
    name = "fulfilment"

    def __init__(self, processor: FulfilmentProcessor, topics: dict[str, str], app_id: str) -> None:
        self._processor = processor
        self._events, self._inbox = topics["events"], topics["fulfilment-inbox"]
        self._commands, self._dead_letters = topics["commands"], topics["events-dlq"]
        self.topics = [self._events, self._inbox]
        self.outputs = [self._inbox, self._commands, self._dead_letters]
        self.state: StateSpec | None = StateSpec(self._inbox, changelog_topic(app_id))

    def process(self, message: Message, state: StateReader | None) -> Step:
        if message.topic() == self._inbox:
            assert state is not None
            return self._react(message, state)
        return self._route(message)

    def _route(self, message: Message) -> Step:
        try:
            observed = self._processor.read(message.value())
        except (SerializationError, KeyError, TypeError, ValueError) as error:
            return Step([dead_letter_output(self._dead_letters, message, error, "fulfilment", log)])
        if observed is None:
            return Step()
        return Step([Output(self._inbox, observed.order_id.encode(), message.value())])

    def _react(self, message: Message, state: StateReader) -> Step:
        # Only the router writes here, and it forwards events it has already read.
        observed = self._processor.read(message.value())
        if observed is None:
            return Step()
        key = observed.order_id.encode()
        stored = state.get(key)
        reaction = self._processor.process(
            observed, SagaRecord.from_bytes(stored) if stored else None
        )
        outputs = [Output(self._commands, k, v) for k, v in reaction.commands]
        writes: list[StateWrite] = (
            [] if reaction.record is None else [(key, reaction.record.to_bytes())]
        )
        return Step(outputs, writes)


def changelog_topic(app_id: str) -> str:
    """The saga table's changelog: ``<saga app id>-fulfilment-changelog``."""
    return f"{app_id}-{TABLE_NAME}-changelog"
