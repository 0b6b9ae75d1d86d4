"""A consumed record that a task cannot process, as a record for its dead-letter topic."""

from __future__ import annotations

import logging

from confluent_kafka import Message

from processors.task import Headers, Output
from schemas.dead_letters import dead_letter_headers, headers_of


def dead_letter_output(
    topic: str, message: Message, error: Exception, consumer: str, log: logging.Logger
) -> Output:
    """The original key, bytes and headers, with the error and the record's origin added
    (the one header contract, ``schemas.dead_letters``)."""
    source, partition, offset = message.topic() or "", message.partition(), message.offset()
    log.warning("dead-lettering %s[%s]@%s: %s", source, partition, offset, error)
    headers: Headers = [
        *headers_of(message),
        *dead_letter_headers(
            error,
            topic=source,
            partition=partition or 0,
            offset=offset or 0,
            timestamp_ms=message.timestamp()[1],
            component=consumer,
            component_class=f"cqrs.{consumer}",
        ),
    ]
    return Output(topic, message.key(), message.value() or b"", headers)
