"""Dead letters as data, and the rules for replaying one; no Kafka here.

A dead letter is named by where it is, ``<dead-letter topic>/<partition>/<offset>``
(Kafka topic names never contain ``/``). Its headers follow the contract in
``schemas.dead_letters``: the original record's own headers first, then the ones
the component that gave up added, so when a name occurs twice the last one is
the dead letter's. A replay produces the original key, value and headers again
(the contract's headers removed, ``dead_letter.replayed_from`` added) and is
remembered by a replay record keyed by the dead letter's name.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any
from uuid import UUID

from core.errors import BadSelectionError, DeadLetterNotFoundError
from schemas.dead_letters import REPLAYED_FROM, is_dead_letter_header

Headers = Sequence[tuple[str, str | bytes | None]]
TextHeaders = tuple[tuple[str, str | None], ...]
_TOPIC = re.compile(r"^[A-Za-z0-9._-]{1,249}$")  # what Kafka accepts as a topic name


@dataclass(frozen=True, order=True)
class DeadLetterRef:
    """Where one dead letter is."""

    topic: str
    partition: int
    offset: int

    def __str__(self) -> str:
        return f"{self.topic}/{self.partition}/{self.offset}"


@dataclass(frozen=True)
class Matching:
    """Every dead letter of ``topic``, with ``code``, or both (the letters that match both)."""

    topic: str | None = None
    code: str | None = None

    def __post_init__(self) -> None:
        if self.topic is None and self.code is None:
            raise BadSelectionError("a selection needs a topic, an error code or both")


Selection = DeadLetterRef | Matching


def parse_selection(text: str) -> DeadLetterRef:
    """``TOPIC/PARTITION/OFFSET`` as the one dead letter it names; ``BadSelectionError``
    (a ``ValueError``) saying what is wrong."""
    parts = text.rsplit("/", 2)
    if len(parts) != 3:
        raise BadSelectionError(f"{text!r} is not TOPIC/PARTITION/OFFSET (e.g. commands-dlq/0/42)")
    topic, partition, offset = parts
    if not _TOPIC.match(topic):
        raise BadSelectionError(f"{topic!r} in {text!r} is not a Kafka topic name")
    for what, number in (("partition", partition), ("offset", offset)):
        if not (number.isascii() and number.isdigit()):
            raise BadSelectionError(f"the {what} in {text!r} must be a number ≥ 0, not {number!r}")
    return DeadLetterRef(topic, int(partition), int(offset))


def resolve_topic(name: str, known: Mapping[str, str]) -> str:
    """The dead-letter topic ``name`` means, by its logical name (``commands-dlq``) or its
    real one (prefixed); ``known`` maps the first to the second."""
    if name in known:
        return known[name]
    if name in known.values():
        return name
    raise DeadLetterNotFoundError(
        f"{name!r} is not a dead-letter topic of this pipeline; one of {', '.join(known)}"
    )


def header_text(value: str | bytes | None) -> str | None:
    """A header value as text; bytes that are not UTF-8 keep their bytes as escapes."""
    if value is None or isinstance(value, str):
        return value
    return value.decode("utf-8", errors="backslashreplace")


def text_headers(headers: Headers) -> TextHeaders:
    return tuple((name, header_text(value)) for name, value in headers)


def last_header(headers: TextHeaders, name: str) -> str | None:
    """The last value of ``name``: the dead letter's own, should the record have one too."""
    found = [value for key, value in headers if key == name]
    return found[-1] if found else None


def key_text(key: bytes | None) -> tuple[str | None, bool]:
    """The key as text, and whether that text is hex (a key that is not UTF-8)."""
    if key is None:
        return None, False
    try:
        return key.decode("utf-8"), False
    except UnicodeDecodeError:
        return key.hex(), True


def replayed_headers(headers: Headers, ref: DeadLetterRef) -> list[tuple[str, str | bytes | None]]:
    """The headers a replayed record carries: the original record's, in their order and
    bytes, without the dead-letter contract's (an earlier replay's mark included), and
    where it was replayed from."""
    kept = [(name, value) for name, value in headers if not is_dead_letter_header(name)]
    return [*kept, (REPLAYED_FROM, str(ref).encode())]


@dataclass(frozen=True)
class ReplayMark:
    """The replay record of a dead letter: when, where to and by whom it was replayed."""

    replayed_at: str  # ISO 8601, UTC
    target_topic: str
    target_partition: int
    target_offset: int
    by: str

    def to_json(self) -> bytes:
        return json.dumps(asdict(self), sort_keys=True).encode()

    @classmethod
    def from_json(cls, data: bytes) -> ReplayMark:
        """A replay record as read back; one that cannot be read still marks a replay."""
        try:
            fields = json.loads(data)
            return cls(
                str(fields["replayed_at"]),
                str(fields["target_topic"]),
                int(fields["target_partition"]),
                int(fields["target_offset"]),
                str(fields["by"]),
            )
        except (ValueError, TypeError, KeyError):
            return cls("", "", -1, -1, f"an unreadable replay record ({data[:80]!r})")


@dataclass(frozen=True)
class DeadLetter:
    """One dead letter as listed: where it is, what failed, where it came from."""

    topic: str
    partition: int
    offset: int
    code: str | None
    error_class: str | None
    message: str | None
    original_topic: str | None
    original_partition: int | None
    original_offset: int | None
    component: str | None
    timestamp_ms: int | None  # of the dead letter (when it was written)
    age_s: float | None
    key: str | None  # text when the key is UTF-8, else hex (``key_is_hex``)
    key_is_hex: bool
    replayed: bool
    replay: ReplayMark | None  # when, where to and by whom; None: never replayed

    @property
    def ref(self) -> DeadLetterRef:
        return DeadLetterRef(self.topic, self.partition, self.offset)

    @property
    def original(self) -> str:
        """``topic/partition/offset`` of the original record, ``?`` for what is unknown."""
        parts = (self.original_topic, self.original_partition, self.original_offset)
        return "/".join("?" if part is None else str(part) for part in parts)

    def as_dict(self) -> dict[str, Any]:
        return {"ref": str(self.ref), **asdict(self)}


def dead_letter(
    ref: DeadLetterRef,
    key: bytes | None,
    headers: TextHeaders,
    *,
    timestamp_ms: int | None,
    now_ms: int,
    replay: ReplayMark | None,
) -> DeadLetter:
    """A listed dead letter from a record's parts (headers already text)."""
    text, is_hex = key_text(key)
    return DeadLetter(
        topic=ref.topic,
        partition=ref.partition,
        offset=ref.offset,
        code=last_header(headers, "error.code"),
        error_class=last_header(headers, "error.class"),
        message=last_header(headers, "error.message"),
        original_topic=last_header(headers, "original.topic"),
        original_partition=_number(last_header(headers, "original.partition")),
        original_offset=_number(last_header(headers, "original.offset")),
        component=last_header(headers, "dead_letter.component"),
        timestamp_ms=timestamp_ms,
        age_s=None if timestamp_ms is None else max(0.0, (now_ms - timestamp_ms) / 1000),
        key=text,
        key_is_hex=is_hex,
        replayed=replay is not None,
        replay=replay,
    )


def _number(text: str | None) -> int | None:
    try:
        return None if text is None else int(text)
    except ValueError:
        return None


def selected(letter: DeadLetter, selection: Matching) -> bool:
    return (selection.topic is None or letter.topic == selection.topic) and (
        selection.code is None or letter.code == selection.code
    )


@dataclass(frozen=True)
class DeadLetterDetail:
    """One dead letter in full: every header, and its value decoded or as raw bytes."""

    letter: DeadLetter
    headers: TextHeaders
    value_size: int  # bytes; 0 for no value
    record_type: str | None = None  # the Avro record's full name, when it decoded
    schema_id: int | None = None
    value: dict[str, Any] | None = None  # the decoded record, in its current shape
    value_hex: str | None = None  # the raw bytes, when they did not decode
    value_base64: str | None = None
    undecoded_reason: str | None = None
    decoded: bool = False

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready: bytes in the decoded value as base64, decimals, dates and ids as text."""
        found = {name: getattr(self, name) for name in self.__dataclass_fields__}
        found["letter"] = self.letter.as_dict()
        found["headers"] = [list(header) for header in self.headers]
        return {name: plain(value) for name, value in found.items()}


def raw_value(value: bytes) -> tuple[str, str]:
    """Bytes that did not decode, as hex and as base64."""
    return value.hex(), base64.b64encode(value).decode()


def plain(value: Any) -> Any:
    """``value`` with what JSON cannot hold (bytes, decimals, dates, UUIDs) as text."""
    if isinstance(value, dict):
        return {str(key): plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [plain(item) for item in value]
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal | UUID):
        return str(value)
    return value


class Outcome(StrEnum):
    REPLAYED = "replayed"
    PLANNED = "would-replay"  # a dry run: what ``--yes`` would replay
    SKIPPED = "skipped"
    FAILED = "failed"


def reason_not_to_replay(
    letter: DeadLetter, *, again: bool, targets: frozenset[str], source_of_truth: frozenset[str]
) -> tuple[Outcome, str] | None:
    """Why ``letter`` is not replayed (skipped or refused), or None when it may be.

    A dead letter replayed once is skipped unless ``again``: its replay may already
    have been processed, and a second copy would be processed again. The event log
    (``source_of_truth``: its topics) is never written to: a sink's dead letter is applied by
    rebuilding its projection once the sink can apply it. Only the pipeline's own
    topics (``targets``) are written to, whatever a header says.
    """
    if letter.replay is not None and not again:
        mark = letter.replay
        return (
            Outcome.SKIPPED,
            f"already replayed {mark.replayed_at} by {mark.by} to "
            f"{mark.target_topic}/{mark.target_partition}/{mark.target_offset} "
            "(--again replays it anyway)",
        )
    target = letter.original_topic
    if target is None:
        return Outcome.FAILED, "no original.topic header: not a dead letter of this pipeline"
    if target in source_of_truth:
        return (
            Outcome.FAILED,
            f"{target} is the event log and is never written to; once the sink can apply "
            "the event, rebuild its projection (cqrs projections rebuild)",
        )
    if target not in targets:
        return Outcome.FAILED, f"{target} is not a topic of this pipeline"
    return None
