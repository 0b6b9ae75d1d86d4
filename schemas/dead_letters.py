"""The dead-letter header contract, one for every component that gives up on a record.

A dead letter is the original record (key, value and headers unchanged) on the
dead-letter topic of where it came from (``commands-dlq``, ``events-dlq``),
with these headers added, all UTF-8 text. The second column repeats them under
the names Kafka Connect's dead-letter queue uses, so tooling written for
Connect reads the product's dead letters as they are.

- ``error.class`` (Connect: ``__connect.errors.exception.class.name``, the
  module-qualified class): the exception class, e.g. ``NotConfluentFramedError``;
- ``error.code``: its stable code, e.g. ``UNKNOWN_SCHEMA_ID``, ``ORDER_NOT_PLACED``;
- ``error.message`` (``__connect.errors.exception.message``): the message, at
  most 2,000 characters; ``__connect.errors.exception.stacktrace``: where it
  was raised, at most 8,000;
- ``original.topic``, ``original.partition``, ``original.offset``
  (``__connect.errors.topic``, ``.partition``, ``.offset``): where the record
  was; ``original.timestamp``: its Kafka timestamp (ms);
- ``dead_letter.component`` (``__connect.errors.connector.name``): who gave
  up, e.g. ``command-processor``, ``sink-order-summary``;
  ``__connect.errors.task.id``: always ``0`` (one task per component);
  ``__connect.errors.class.name``: the component's class;
- ``__connect.errors.stage``: ``VALUE_CONVERTER`` (the record could not be
  decoded) or ``TASK_PUT`` (it could not be decided or applied).

A dead letter produced again (``cqrs dlq replay``) carries the original headers
without these, plus ``dead_letter.replayed_from``: ``<topic>/<partition>/<offset>``
of the dead letter it came from.
"""

from __future__ import annotations

import traceback

from confluent_kafka import Message

from core.errors import SerializationError

MAX_MESSAGE = 2000
MAX_STACKTRACE = 8000
CONNECT = "__connect.errors."
# Added to a dead letter's original headers when ``cqrs dlq replay`` produces it again:
# ``<dead-letter topic>/<partition>/<offset>`` of the copy it came from.
REPLAYED_FROM = "dead_letter.replayed_from"
OWN_HEADERS = frozenset(
    {
        "error.class",
        "error.code",
        "error.message",
        "original.topic",
        "original.partition",
        "original.offset",
        "original.timestamp",
        "dead_letter.component",
        REPLAYED_FROM,
    }
)


def is_dead_letter_header(name: str) -> bool:
    """Whether ``name`` is one this contract adds (the rest are the original record's)."""
    return name in OWN_HEADERS or name.startswith(CONNECT)


def headers_of(message: Message) -> list[tuple[str, str | bytes | None]]:
    """A record's own headers as a list (confluent-kafka may hand out a dict), which a
    dead letter keeps before its own."""
    found = message.headers() or []
    return list(found.items()) if isinstance(found, dict) else list(found)


def dead_letter_headers(
    error: BaseException,
    *,
    topic: str,
    partition: int,
    offset: int,
    timestamp_ms: int,
    component: str,
    component_class: str,
) -> list[tuple[str, bytes]]:
    """The headers a dead letter of ``topic[partition]@offset`` gets for ``error``."""
    code = getattr(error, "code", None) or type(error).__name__
    message = str(error)[:MAX_MESSAGE]
    decoding = isinstance(error, SerializationError) or isinstance(
        error.__cause__, SerializationError
    )
    stage = "VALUE_CONVERTER" if decoding else "TASK_PUT"
    trace = "".join(traceback.format_exception(error))[:MAX_STACKTRACE]
    texts = [
        ("error.class", type(error).__name__),
        ("error.code", str(code)),
        ("error.message", message),
        ("original.topic", topic),
        ("original.partition", str(partition)),
        ("original.offset", str(offset)),
        ("original.timestamp", str(timestamp_ms)),
        ("dead_letter.component", component),
        (CONNECT + "topic", topic),
        (CONNECT + "partition", str(partition)),
        (CONNECT + "offset", str(offset)),
        (CONNECT + "connector.name", component),
        (CONNECT + "task.id", "0"),
        (CONNECT + "stage", stage),
        (CONNECT + "class.name", component_class),
        (CONNECT + "exception.class.name", f"{type(error).__module__}.{type(error).__name__}"),
        (CONNECT + "exception.message", message),
        (CONNECT + "exception.stacktrace", trace),
    ]
    return [(name, value.encode()) for name, value in texts]
