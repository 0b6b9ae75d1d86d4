"""The command processor agent: one writer per aggregate id, state in a Faust table.

The agent only orchestrates: read the command, look its aggregate up, let the
``CommandProcessor`` decide, and send what comes back. Records that are not
decidable commands go to the dead-letter topic (and, when they carry a command
id, get a rejection); they never stop the partition and never produce events.
A command whose own data breaks a rule is decided (rejected, and remembered
like any result) and dead-lettered as well.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass

import faust
from faust.types import EventT, TableT

from cqrs.metrics import count_command, count_dead_letter
from processors.command_processing import (
    CommandProcessor,
    InputRejectedError,
    dead_letter_headers,
)
from processors.transactions import emit, processing, put

log = logging.getLogger("cqrs.command_processor")
TABLE_NAME = "aggregates"


@dataclass(frozen=True)
class _Outputs:
    app: faust.App
    events: str
    results: str
    dead_letters: str


def register_command_agent(
    app: faust.App, processor: CommandProcessor, topics: dict[str, str]
) -> TableT[bytes, bytes]:
    commands = app.topic(topics["commands"])
    outputs = _Outputs(app, topics["events"], topics["command-results"], topics["commands-dlq"])
    table: TableT[bytes, bytes] = app.Table(
        TABLE_NAME,
        default=None,
        key_type=bytes,
        value_type=bytes,  # bytes → "raw" codec
    )

    @app.agent(commands, name="command-processor")
    async def process_commands(stream: faust.StreamT[bytes]) -> AsyncIterator[None]:
        async for event in stream.events():
            async with processing(app, event) as ours:
                if ours:
                    await _process(event, processor, table, outputs)
            yield None

    return table


async def _process(
    event: EventT[bytes], processor: CommandProcessor, table: TableT[bytes, bytes], out: _Outputs
) -> None:
    try:
        incoming = processor.read(event.value)
        processor.check_placement(incoming, event.key, event.message.partition)
        # The store itself: Table.get adds a sensor call per read, and a command reads three.
        outcome = processor.process(incoming, table.data.get)
    except InputRejectedError as error:
        answer = processor.rejection_for(error)
        if answer is not None:
            await emit(out.app, out.results, answer[0], answer[1])
        await _dead_letter(event, error, out)
        count_command("dead_lettered")
        return
    for key, value in outcome.events:
        await emit(out.app, out.events, key, value)
    await emit(out.app, out.results, outcome.result_key, outcome.result)
    for table_key, table_value in outcome.writes:
        await put(table, event, table_key, table_value)
    if outcome.invalid is not None:
        await _dead_letter(event, outcome.invalid, out)
    count_command(outcome.status)


async def _dead_letter(event: EventT[bytes], error: Exception, out: _Outputs) -> None:
    message = event.message
    log.warning(
        "dead-lettering %s[%s]@%s: %s", message.topic, message.partition, message.offset, error
    )
    headers = dead_letter_headers(error, message.topic, message.partition, message.offset)
    await emit(out.app, out.dead_letters, event.key, event.value or b"", headers=headers)
    count_dead_letter("command-processor")
