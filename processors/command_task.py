"""The command processor as a task: one writer per aggregate id, its state in a table.

The task only orchestrates: read the command, look its aggregate up, let the
``CommandProcessor`` decide, and return what to send and store. Records that
are not decidable commands go to the dead-letter topic (and, when they carry
a command id, get a rejection); they never stop the partition and never
produce events. A command whose own data breaks a rule is decided (rejected,
and remembered like any result) and dead-lettered as well.
"""

from __future__ import annotations

import logging

from confluent_kafka import Message

from core import tracing
from core.errors import InputRejectedError
from core.metrics import count_command, count_dead_letter
from processors.command_processing import CommandProcessor
from processors.dead_letters import dead_letter_output
from processors.state import StateReader
from processors.task import Output, StateSpec, Step
from processors.tracing import DecisionTrace, DecisionTracing

log = logging.getLogger("cqrs.command_processor")
TABLE_NAME = "aggregates"


class CommandTask:
    name = "command-processor"

    def __init__(self, processor: CommandProcessor, topics: dict[str, str], app_id: str) -> None:
        self._processor = processor
        self._events = topics["events"]
        self._results = topics["command-results"]
        self._dead_letters = topics["commands-dlq"]
        self.topics = [topics["commands"]]
        self.outputs = [self._events, self._results, self._dead_letters]
        self.state: StateSpec | None = StateSpec(topics["commands"], changelog_topic(app_id))
        tracer = tracing.tracer()
        self._tracing = None if tracer is None else DecisionTracing(tracer, topics["commands"])

    def process(self, message: Message, state: StateReader | None) -> Step:
        assert state is not None  # the commands topic is the state's source
        if self._tracing is None:  # tracing off: this check is all it costs
            return self._decide(message, state, None)
        return self._tracing.traced(message, lambda trace: self._decide(message, state, trace))

    def _decide(self, message: Message, state: StateReader, trace: DecisionTrace | None) -> Step:
        processor = self._processor
        partition = message.partition()
        assert partition is not None
        try:
            incoming = processor.read(message.value())
            processor.check_placement(incoming, message.key(), partition)
            outcome = processor.process(incoming, state.get)
        except InputRejectedError as error:
            outputs = []
            answer = processor.rejection_for(error)
            if answer is not None:
                headers = None if trace is None else trace.input_rejected(error)
                outputs.append(Output(self._results, answer[0], answer[1], headers))
            outputs.append(self._dead_letter(message, error))
            count_command("dead_lettered")
            return Step(outputs)
        events = self._events
        headers = None if trace is None else trace.decided(incoming, outcome)
        outputs = [Output(events, key, value, headers) for key, value in outcome.events]
        outputs.append(Output(self._results, outcome.result_key, outcome.result, headers))
        if outcome.invalid is not None:
            outputs.append(self._dead_letter(message, outcome.invalid))
        count_command(outcome.status)
        return Step(outputs, outcome.writes)

    def _dead_letter(self, message: Message, error: Exception) -> Output:
        count_dead_letter("command-processor")
        return dead_letter_output(self._dead_letters, message, error, "command-processor", log)


def changelog_topic(app_id: str) -> str:
    """The aggregate table's changelog: ``<app id>-aggregates-changelog``."""
    return f"{app_id}-{TABLE_NAME}-changelog"
