"""A consumed record that a task cannot process, as a record for its dead-letter topic."""

from __future__ import annotations

import logging

from confluent_kafka import Message

from processors.command_processing import dead_letter_headers
from processors.task import Headers, Output


def dead_letter_output(
    topic: str, message: Message, error: Exception, consumer: str, log: logging.Logger
) -> Output:
    """The original key and bytes, with the error and the record's origin in headers."""
    source, partition, offset = message.topic() or "", message.partition(), message.offset()
    log.warning("dead-lettering %s[%s]@%s: %s", source, partition, offset, error)
    headers: Headers = [*dead_letter_headers(error, source, partition or 0, offset or 0)]
    headers.append(("dead_letter.consumer", consumer.encode()))
    return Output(topic, message.key(), message.value() or b"", headers)
