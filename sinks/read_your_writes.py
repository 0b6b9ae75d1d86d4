"""Read-your-own-writes: wait until a projection shows the version a command produced.

A command's result carries the aggregate's version after the command. A
client that must read its own write from a read model waits for that version:

    result = client.send_and_wait("PlaceOrder", order_id, payload)
    wait_for_projection(settings, "order-summary", order_id, result.version, timeout_s=10)

Each projection answers in its own way (PostgreSQL: the row's ``version``,
woken by ``NOTIFY`` after every commit). Raises ``ProjectionTimeoutError`` when
the time runs out, e.g. because the projection's sink is not running.
"""

from __future__ import annotations

from core.errors import ProjectionTimeoutError
from core.settings import Settings
from sinks.registry import projection

__all__ = ["ProjectionTimeoutError", "wait_for_projection"]


def wait_for_projection(
    settings: Settings, name: str, aggregate_id: str, version: int, timeout_s: float = 30.0
) -> int:
    """Block until projection ``name`` has applied ``version`` of the aggregate; returns it."""
    return projection(name, settings).wait_for(settings, aggregate_id, version, timeout_s)
