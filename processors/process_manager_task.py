"""A process manager as a task (see ``process_manager``).

One consumer group reads two topics. Events from ``events`` (keyed by
aggregate id) that the process manager observes are forwarded to its inbox
``<name>-inbox``, keyed by flow instance; records of the inbox reach the
partition that holds the instance's state, where ``react`` decides the commands
to send. Each step's output, state write and offset commit in one
transaction, so a crash between the two steps loses and repeats nothing.
"""

from __future__ import annotations

import logging

from confluent_kafka import Message

from core import tracing
from core.errors import SerializationError
from core.metrics import count_dead_letter
from processors.dead_letters import dead_letter_output
from processors.process_manager import Observed, ProcessManagerProcessor
from processors.state import StateReader, StateWrite
from processors.task import Headers, Output, StateSpec, Step
from processors.tracing import ReactionTracing

log = logging.getLogger("cqrs.process_manager")


class ProcessManagerTask:
    def __init__(
        self,
        processor: ProcessManagerProcessor,
        topics: dict[str, str],
        app_id: str,
        *,
        events: list[str],
        commands: list[str],
    ) -> None:
        """``events``: the topics of the events it observes; ``commands``: every topic
        the commands it issues may go to."""
        manager = processor.manager
        self.name = f"process-manager-{manager.name}"
        self._processor = processor
        self._inbox, self._dead_letters = topics[inbox_topic(manager.name)], topics["events-dlq"]
        self.topics = [*events, self._inbox]
        self.outputs = [self._inbox, *commands, self._dead_letters]
        self.state: StateSpec | None = StateSpec(self._inbox, changelog_topic(app_id, manager.name))
        tracer = tracing.tracer()
        self._tracing = (
            None if tracer is None else ReactionTracing(tracer, manager.name, self._inbox)
        )

    def process(self, message: Message, state: StateReader | None) -> Step:
        if message.topic() == self._inbox:
            assert state is not None
            return self._react(message, state)
        return self._route(message)

    def _route(self, message: Message) -> Step:
        try:
            observed = self._processor.read(message.value())
        except (SerializationError, KeyError, TypeError, ValueError) as error:
            count_dead_letter(self.name)
            return Step([dead_letter_output(self._dead_letters, message, error, self.name, log)])
        if observed is None:
            return Step()
        headers = None if self._tracing is None else self._tracing.forwarded(message)
        return Step([Output(self._inbox, observed.key.encode(), message.value(), headers)])

    def _react(self, message: Message, state: StateReader) -> Step:
        # Only the router writes here, and it forwards events it has already read.
        observed = self._processor.read(message.value())
        if observed is None:
            return Step()
        if self._tracing is None:
            return self._step(observed, state, None)
        return self._tracing.traced(
            message, observed, lambda headers: self._step(observed, state, headers)
        )

    def _step(self, observed: Observed, state: StateReader, headers: Headers | None) -> Step:
        key = observed.key.encode()
        reaction = self._processor.process(observed, state.get(key))
        outputs = [Output(topic, k, v, headers) for topic, k, v in reaction.commands]
        writes: list[StateWrite] = (
            [] if reaction.record is None else [(key, reaction.record.to_bytes())]
        )
        return Step(outputs, writes)


def inbox_topic(name: str) -> str:
    """A process manager's inbox (before the topic prefix): ``<name>-inbox``."""
    return f"{name}-inbox"


def changelog_topic(app_id: str, name: str) -> str:
    """A process manager's state changelog: ``<app id>-<name>-changelog``."""
    return f"{app_id}-{name}-changelog"
