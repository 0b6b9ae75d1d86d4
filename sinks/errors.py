"""Errors of the read side.

    PipelineError
    ├── SinkError(retryable)          a read store refused a write (core.errors)
    └── InvalidEventError(code)       an event a projection can never apply (poison:
                                      dead-letter topic, then the sink goes on)

``SerializationError`` (bytes that cannot be decoded) is poison too; the runner
dead-letters both kinds with their ``code`` in the headers.
"""

from __future__ import annotations

from core.errors import PipelineError, SinkError

__all__ = ["InvalidEventError", "SinkError"]


class InvalidEventError(PipelineError):
    """A decoded event that breaks a projection's expectations (e.g. totals that do not add up)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.reason = message
