"""The fulfilment process manager as two Faust agents (see fulfilment_processing).

``fulfilment-router`` re-keys the events the saga observes by order id onto
``fulfilment-inbox``; ``fulfilment`` keeps one saga state per order in the
``fulfilment`` table and sends the commands it decides on to ``commands``.
Under exactly-once, each agent's output, table write and consumed offset
commit together, so a crash between the two steps loses and repeats nothing.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import faust
from faust.types import EventT, TableT

from processors.command_processing import dead_letter_headers
from processors.fulfilment_processing import FulfilmentProcessor, SagaRecord
from processors.transactions import emit, processing, put
from schemas.errors import SerializationError

log = logging.getLogger("cqrs.fulfilment")
TABLE_NAME = "fulfilment"


def register_fulfilment_agents(
    app: faust.App, processor: FulfilmentProcessor, topics: dict[str, str]
) -> TableT[bytes, bytes]:
    inbox, commands, dead_letters = (
        topics["fulfilment-inbox"],
        topics["commands"],
        topics["events-dlq"],
    )
    table: TableT[bytes, bytes] = app.Table(
        TABLE_NAME, default=None, key_type=bytes, value_type=bytes
    )

    @app.agent(app.topic(topics["events"]), name="fulfilment-router")
    async def route(stream: faust.StreamT[bytes]) -> AsyncIterator[None]:
        async for event in stream.events():
            async with processing(app, event) as ours:
                if ours:
                    await _route(app, event, processor, (inbox, dead_letters))
            yield None

    @app.agent(app.topic(inbox), name="fulfilment")
    async def react(stream: faust.StreamT[bytes]) -> AsyncIterator[None]:
        async for event in stream.events():
            async with processing(app, event) as ours:
                if ours:
                    await _react(app, event, processor, table, commands)
            yield None

    return table


async def _route(
    app: faust.App,
    event: EventT[bytes],
    processor: FulfilmentProcessor,
    outputs: tuple[str, str],  # inbox, dead letters
) -> None:
    inbox, dead_letters = outputs
    try:
        observed = processor.read(event.value)
    except (SerializationError, KeyError, TypeError, ValueError) as error:
        message = event.message
        log.warning(
            "dead-lettering %s[%s]@%s: %s", message.topic, message.partition, message.offset, error
        )
        headers = dead_letter_headers(error, message.topic, message.partition, message.offset)
        headers.append(("dead_letter.consumer", b"fulfilment"))
        await emit(app, dead_letters, event.key, event.value or b"", headers=headers)
        return
    if observed is not None:
        await emit(app, inbox, observed.order_id.encode(), event.value)


async def _react(
    app: faust.App,
    event: EventT[bytes],
    processor: FulfilmentProcessor,
    table: TableT[bytes, bytes],
    commands: str,
) -> None:
    # Only the router writes here, and it forwards events it has already read.
    observed = processor.read(event.value)
    if observed is None:
        return
    key = observed.order_id.encode()
    stored = table.get(key)
    reaction = processor.process(observed, SagaRecord.from_bytes(stored) if stored else None)
    for command_key, command in reaction.commands:
        await emit(app, commands, command_key, command)
    if reaction.record is not None:
        await put(table, event, key, reaction.record.to_bytes())
