"""Domain errors: a command breaks a rule. Never retried; each becomes a rejection.

    DomainError (code)
    ├── InvalidCommandError       the command's own data is wrong (no lines, quantity <= 0)
    ├── IllegalTransitionError    the aggregate is not in a state that allows the command
    ├── AggregateNotFoundError    the aggregate does not exist (yet)
    ├── AlreadyExistsError        creating an aggregate that exists
    └── VersionConflictError      optimistic concurrency: expected version != current

Codes are stable: clients may branch on them.
"""

from __future__ import annotations

from core.errors import PipelineError


class DomainError(PipelineError):
    def __init__(self, code: str, reason: str) -> None:
        super().__init__(f"{code}: {reason}")
        self.code = code
        self.reason = reason


class InvalidCommandError(DomainError):
    pass


class IllegalTransitionError(DomainError):
    pass


class AggregateNotFoundError(DomainError):
    pass


class AlreadyExistsError(DomainError):
    pass


class VersionConflictError(DomainError):
    def __init__(self, expected: int, current: int) -> None:
        super().__init__(
            "VERSION_CONFLICT",
            f"expected version {expected}, but the aggregate is at version {current}",
        )
        self.expected = expected
        self.current = current


def check_expected_version(expected: int | None, current: int) -> None:
    """Optimistic concurrency: ``None`` skips the check."""
    if expected is not None and expected != current:
        raise VersionConflictError(expected, current)
