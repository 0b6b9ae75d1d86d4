"""Dead-letter tooling: list, show and replay the domain's dead letters.

The API the ``cqrs dlq`` commands (and any admin front end) call:

- ``list_dead_letters``: the dead letters of every dead-letter topic of the
  domain (or one), each with what failed, where it came from, its age and
  whether it was replayed; read ``read_committed`` up to the end offsets
  measured first, so a call always ends.
- ``show_dead_letter``: one dead letter with every header, its key, and its
  value decoded through the product's Avro serde, or its raw bytes and why
  they did not decode.
- ``replay_dead_letters``: produce selected dead letters again to their
  original topic, each recorded in ``dead-letter-replays`` in the same
  transaction (``cqrs.dead_letter_replay``); a replayed one is skipped unless
  asked ``again``.

Topics are named by their logical name (``commands-dlq``) or their real one
(with ``kafka.topic_prefix``); results carry the real one. Every failure is a
``DeadLetterError`` (a ``PipelineError``) whose message says what to do.
"""

from __future__ import annotations

import heapq

from core.domain import load_domain
from core.errors import (
    BadSelectionError,
    DeadLetterError,
    DeadLetterNotFoundError,
    RegistryError,
    SerializationError,
)
from core.settings import Settings
from cqrs.dead_letter_reading import (
    DeadLetterReader,
    dead_letter_topics,
    letter_of,
    now_ms,
    replay_marks,
    replays_topic,
)
from cqrs.dead_letter_records import (
    DeadLetter,
    DeadLetterDetail,
    DeadLetterRef,
    Matching,
    Outcome,
    ReplayMark,
    Selection,
    parse_selection,
    raw_value,
    resolve_topic,
    text_headers,
)
from cqrs.dead_letter_replay import ReplayOutcome, ReplayReport, replay_dead_letters
from schemas.catalog import SchemaCatalog
from schemas.dead_letters import headers_of
from schemas.registry_client import RegistryClient
from schemas.serde import AvroSerde

__all__ = [
    "BadSelectionError",
    "DeadLetter",
    "DeadLetterDetail",
    "DeadLetterError",
    "DeadLetterNotFoundError",
    "DeadLetterRef",
    "Matching",
    "Outcome",
    "ReplayMark",
    "ReplayOutcome",
    "ReplayReport",
    "Selection",
    "list_dead_letters",
    "parse_selection",
    "replay_dead_letters",
    "show_dead_letter",
]


def list_dead_letters(
    settings: Settings,
    *,
    topic: str | None = None,
    limit: int = 100,
    code: str | None = None,
    timeout_s: float = 30.0,
) -> list[DeadLetter]:
    """The newest ``limit`` dead letters (of ``topic``, with ``code``), oldest first.

    Every dead letter up to the end offsets is read (a dead-letter topic is kept
    forever, but holds only what could not be processed); those with the same
    timestamp are ordered by topic, partition and offset.
    """
    if limit < 1:
        raise BadSelectionError(f"limit must be at least 1, not {limit}")
    known = dead_letter_topics(settings)
    topics = [resolve_topic(topic, known)] if topic is not None else list(known.values())
    with DeadLetterReader(settings, timeout_s) as reader:
        marks = replay_marks(reader, replays_topic(settings))
        now = now_ms()
        letters = (letter_of(message, marks, now) for message in reader.scan(topics))
        matching = (letter for letter in letters if code is None or letter.code == code)
        newest = heapq.nlargest(limit, matching, key=_recency)
    return sorted(newest, key=_recency)


def _recency(letter: DeadLetter) -> tuple[int, str, int, int]:
    return (letter.timestamp_ms or 0, letter.topic, letter.partition, letter.offset)


def show_dead_letter(
    settings: Settings,
    topic: str,
    partition: int,
    offset: int,
    *,
    timeout_s: float = 30.0,
) -> DeadLetterDetail:
    """The dead letter at ``topic``/``partition``/``offset`` in full."""
    ref = DeadLetterRef(resolve_topic(topic, dead_letter_topics(settings)), partition, offset)
    with DeadLetterReader(settings, timeout_s) as reader:
        marks = replay_marks(reader, replays_topic(settings))
        message = reader.at(ref)
    letter = letter_of(message, marks, now_ms())
    headers = text_headers(headers_of(message))
    value = message.value()
    if value is None:
        return DeadLetterDetail(letter, headers, 0, undecoded_reason="no value (a tombstone)")
    domain = load_domain(settings.domain)
    registry = RegistryClient(settings.registry)
    serde = AvroSerde(
        registry, SchemaCatalog.for_domain(domain), domain.upcasters, auto_register=False
    )
    try:
        decoded = serde.decode(value)
    except SerializationError as error:
        reason = f"{error.code}: {error}"
    except RegistryError as error:
        reason = f"the schema registry could not be asked: {error}"
    else:
        return DeadLetterDetail(
            letter,
            headers,
            len(value),
            record_type=decoded.full_name,
            schema_id=decoded.schema_id,
            value=decoded.value,
            decoded=True,
        )
    finally:
        registry.close()
    hex_text, base64_text = raw_value(value)
    return DeadLetterDetail(
        letter,
        headers,
        len(value),
        value_hex=hex_text,
        value_base64=base64_text,
        undecoded_reason=reason,
    )
