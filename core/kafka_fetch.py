"""Fetching what a consumer holds without holding a lone record back."""

from __future__ import annotations

from confluent_kafka import Consumer, Message


def available(consumer: Consumer, room: int, timeout_s: float) -> list[Message]:
    """Up to ``room`` records the consumer holds now; if it holds none, wait up to
    ``timeout_s`` for the first one only, then take what came with it.

    ``consume(n, timeout)`` returns only once it has ``n`` records or the timeout
    passed, so asking for a whole batch would hold a lone record for the timeout."""
    messages = consumer.consume(room, 0)
    if messages:
        return messages
    messages = consumer.consume(1, timeout_s)
    if messages and room > 1:
        messages += consumer.consume(room - 1, 0)
    return messages
