"""Producing dead letters again to where they came from, each replay recorded once.

A replay produces a dead letter's original key, value and headers (the
dead-letter headers removed, ``dead_letter.replayed_from`` added) to its
``original.topic``. Keys are placed by Kafka's own partitioner, as the
product's producers place them, so a command lands on the partition its
aggregate's worker expects; the record is stamped now, since an old timestamp
could put it past its topic's retention at once. A replay record keyed
``<dead-letter topic>/<partition>/<offset>`` goes to the compacted
``dead-letter-replays`` topic in the same Kafka transaction: after a crash,
either both exist or neither does. A transaction holds at most ``BATCH``
dead letters.

Every replay of a pipeline uses one transactional id. Starting it fences a
replay still running and completes that one's transaction, and only then are
the replay records read, so two replays at once never both produce a dead
letter (the fenced one cannot commit, and says so).
"""

from __future__ import annotations

import getpass
import logging
import socket
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Message, Producer

from core.errors import BadSelectionError, DeadLetterError, DeadLetterNotFoundError
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
    DeadLetterRef,
    Matching,
    Outcome,
    ReplayMark,
    Selection,
    reason_not_to_replay,
    replayed_headers,
    resolve_topic,
    selected,
)
from schemas.dead_letters import headers_of
from schemas.topic_admin import ensure_topics
from schemas.topics import DEAD_LETTER_REPLAYS, event_topic_names, settings_topic_specs

TRANSACTIONAL_ID = "cqrs-dead-letter-replay"  # after the topic prefix
BATCH = 500
log = logging.getLogger("cqrs.dead_letters")


@dataclass(frozen=True)
class ReplayOutcome:
    """What happened to one selected dead letter."""

    ref: str
    outcome: Outcome
    reason: str | None = None
    target_topic: str | None = None
    target_partition: int | None = None
    target_offset: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "outcome": str(self.outcome)}


@dataclass(frozen=True)
class ReplayReport:
    """How many were replayed, skipped (replayed before), failed, or in a dry run would
    be replayed (``planned``), and what happened to each."""

    dry_run: bool
    replayed: int
    skipped: int
    failed: int
    planned: int
    outcomes: tuple[ReplayOutcome, ...]

    @classmethod
    def of(cls, outcomes: Sequence[ReplayOutcome], dry_run: bool) -> ReplayReport:
        def count(outcome: Outcome) -> int:
            return sum(1 for found in outcomes if found.outcome is outcome)

        return cls(
            dry_run,
            count(Outcome.REPLAYED),
            count(Outcome.SKIPPED),
            count(Outcome.FAILED),
            count(Outcome.PLANNED),
            tuple(outcomes),
        )

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "outcomes": [found.as_dict() for found in self.outcomes]}


@dataclass
class _Candidate:
    ref: str
    letter: DeadLetter | None = None
    message: Message | None = None
    error: str | None = None


def replay_dead_letters(
    settings: Settings,
    selections: Sequence[Selection],
    *,
    again: bool = False,
    dry_run: bool = False,
    by: str | None = None,
    timeout_s: float = 30.0,
) -> ReplayReport:
    """Replay the selected dead letters (each once, in selection order); with ``dry_run``
    only say what would be replayed. ``by`` names who replays (default: user@host)."""
    known = dead_letter_topics(settings)
    chosen = [_resolved(selection, known) for selection in selections]
    if not chosen:
        raise BadSelectionError(
            "nothing selected: name dead letters (TOPIC/PARTITION/OFFSET), a topic or a code"
        )
    producer = None if dry_run else _producer(settings, timeout_s)
    with DeadLetterReader(settings, timeout_s) as reader:
        marks = replay_marks(reader, replays_topic(settings))
        candidates = _candidates(reader, chosen, list(known.values()), marks)
        allowed = _targets(settings)
        existing = frozenset(topic for topic, _ in reader.partitions(allowed))
    events = frozenset(event_topic_names(settings))
    outcomes: list[ReplayOutcome] = []
    todo: list[tuple[int, DeadLetter, Message]] = []
    for candidate in candidates:
        found = _decision(candidate, again, allowed, existing, events)
        if found is None and producer is not None:
            assert candidate.letter is not None and candidate.message is not None
            todo.append((len(outcomes), candidate.letter, candidate.message))
        outcomes.append(found or _planned(candidate))
    if producer is not None:
        who = by or _operator()
        for start in range(0, len(todo), BATCH):
            batch = todo[start : start + BATCH]
            letters = [(letter, message) for _, letter, message in batch]
            done = _replay_batch(producer, letters, settings, who, timeout_s)
            for (index, _, _), outcome in zip(batch, done, strict=True):
                outcomes[index] = outcome
    return ReplayReport.of(outcomes, dry_run)


def _resolved(selection: Selection, known: dict[str, str]) -> Selection:
    if isinstance(selection, DeadLetterRef):
        return DeadLetterRef(
            resolve_topic(selection.topic, known), selection.partition, selection.offset
        )
    topic = None if selection.topic is None else resolve_topic(selection.topic, known)
    return Matching(topic, selection.code)


def _candidates(
    reader: DeadLetterReader,
    selections: list[Selection],
    topics: list[str],
    marks: dict[str, ReplayMark],
) -> list[_Candidate]:
    """The selected dead letters, each once, in the order selected."""
    found: dict[str, _Candidate] = {}
    now = now_ms()
    for selection in selections:
        if isinstance(selection, DeadLetterRef):
            try:
                message = reader.at(selection)
            except DeadLetterNotFoundError as error:  # others (Kafka gone) end the replay
                found.setdefault(str(selection), _Candidate(str(selection), error=str(error)))
                continue
            letter = letter_of(message, marks, now)
            found.setdefault(str(selection), _Candidate(str(selection), letter, message))
            continue
        for message in reader.scan([selection.topic] if selection.topic else topics):
            letter = letter_of(message, marks, now)
            if selected(letter, selection):
                found.setdefault(str(letter.ref), _Candidate(str(letter.ref), letter, message))
    return list(found.values())


def _targets(settings: Settings) -> frozenset[str]:
    """Topics a replay may write to: the pipeline's own, but no dead letters or replays."""
    prefix = settings.kafka.topic_prefix
    return frozenset(
        prefix + spec.name
        for spec in settings_topic_specs(settings)
        if not spec.dead_letter and spec.name != DEAD_LETTER_REPLAYS
    )


def _decision(
    candidate: _Candidate,
    again: bool,
    allowed: frozenset[str],
    existing: frozenset[str],
    events: frozenset[str],
) -> ReplayOutcome | None:
    """The outcome of a dead letter that is not to be produced; None for one that is."""
    if candidate.letter is None:
        return ReplayOutcome(candidate.ref, Outcome.FAILED, candidate.error)
    letter = candidate.letter
    reason = reason_not_to_replay(letter, again=again, targets=allowed, source_of_truth=events)
    if reason is None and letter.original_topic not in existing:
        reason = Outcome.FAILED, f"{letter.original_topic} does not exist"
    if reason is None:
        return None
    outcome, why = reason
    return ReplayOutcome(candidate.ref, outcome, why, letter.original_topic)


def _planned(candidate: _Candidate) -> ReplayOutcome:
    assert candidate.letter is not None
    return ReplayOutcome(candidate.ref, Outcome.PLANNED, None, candidate.letter.original_topic)


def _producer(settings: Settings, timeout_s: float) -> Producer:
    """The replays' transactional producer, started; the replay record topic exists."""
    spec = next(s for s in settings_topic_specs(settings) if s.name == DEAD_LETTER_REPLAYS)
    try:
        ensure_topics(settings, [spec])
        producer = Producer(
            {
                **settings.kafka.confluent_config(),
                "transactional.id": settings.kafka.topic_prefix + TRANSACTIONAL_ID,
                "partitioner": "murmur2_random",  # Kafka's own: keys land as Java's do
            }
        )
        producer.init_transactions(timeout_s)
    except KafkaException as error:
        raise DeadLetterError(
            f"cannot start the replay transaction at {settings.kafka.bootstrap_servers} "
            f"({_text(error)}); is Kafka reachable?"
        ) from error
    return producer


def _replay_batch(
    producer: Producer,
    batch: list[tuple[DeadLetter, Message]],
    settings: Settings,
    by: str,
    timeout_s: float,
) -> list[ReplayOutcome]:
    """Produce ``batch`` and its replay records in one transaction: all of it, or none."""
    delivered: dict[int, tuple[int, int]] = {}
    errors: list[str] = []
    try:
        producer.begin_transaction()
        for index, (letter, message) in enumerate(batch):
            producer.produce(
                str(letter.original_topic),
                key=message.key(),
                value=message.value(),
                headers=replayed_headers(headers_of(message), letter.ref),
                on_delivery=_recorder(index, delivered, errors),
            )
            producer.poll(0)
        # The replay records name the offsets the replayed records got: wait for them.
        if producer.flush(timeout_s) or errors:
            raise DeadLetterError(errors[0] if errors else f"no acknowledgement in {timeout_s}s")
        replayed_at = datetime.now(UTC).isoformat(timespec="milliseconds")
        for index, (letter, _) in enumerate(batch):
            partition, offset = delivered[index]
            mark = ReplayMark(replayed_at, str(letter.original_topic), partition, offset, by)
            producer.produce(
                replays_topic(settings), key=str(letter.ref).encode(), value=mark.to_json()
            )
        producer.commit_transaction(timeout_s)
    except (KafkaException, DeadLetterError, BufferError) as error:
        _abort(producer, timeout_s)
        why = f"the transaction was aborted, nothing of it written: {_text(error)}"
        return [
            ReplayOutcome(str(letter.ref), Outcome.FAILED, why, letter.original_topic)
            for letter, _ in batch
        ]
    return [
        ReplayOutcome(str(letter.ref), Outcome.REPLAYED, None, letter.original_topic, *delivered[i])
        for i, (letter, _) in enumerate(batch)
    ]


def _recorder(
    index: int, delivered: dict[int, tuple[int, int]], errors: list[str]
) -> Callable[[KafkaError | None, Message], None]:
    def record(error: KafkaError | None, message: Message) -> None:
        if error is not None:
            errors.append(error.str())
        else:
            delivered[index] = (int(message.partition() or 0), int(message.offset() or 0))

    return record


def _abort(producer: Producer, timeout_s: float) -> None:
    try:
        producer.abort_transaction(timeout_s)
    except KafkaException as error:  # fenced or fatal: the broker aborts it by itself
        log.warning("aborting the replay transaction: %s", _text(error))


def _text(error: BaseException) -> str:
    if isinstance(error, KafkaException) and isinstance(error.args[0], KafkaError):
        return str(error.args[0].str())
    return str(error)


def _operator() -> str:
    try:
        user = getpass.getuser()
    except (OSError, KeyError):  # no login name in some containers
        user = "unknown"
    return f"{user}@{socket.gethostname()}"
