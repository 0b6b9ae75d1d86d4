"""The pipeline's error tree. Library errors are converted to these at the edges.

    PipelineError
    ├── ConfigurationError        a setting is missing or contradicts another
    ├── StackError                the local stack cannot start or is unhealthy
    │   └── PrerequisiteError     a tool (java, mvn) or a free port is missing
    ├── DomainError               a command breaks an invariant (never retried;
    │                             becomes a rejection; lives in aggregates/)
    ├── SerializationError        bytes that cannot be decoded (poison: DLQ)
    ├── SinkError(retryable)      a read store refused a write
    └── BackpressureError         slow down and retry after ``retry_after`` s

Every message names what failed and what to do about it.
"""

from __future__ import annotations


class PipelineError(Exception):
    """Root of every error the pipeline raises on purpose."""


class ConfigurationError(PipelineError):
    """A setting is missing, malformed or contradicts another."""


class StackError(PipelineError):
    """A service of the local stack failed to start or to become ready."""


class PrerequisiteError(StackError):
    """Something the local stack needs is missing on this machine."""


class SinkError(PipelineError):
    """A read store refused a write; ``retryable`` says whether trying again can help."""

    def __init__(self, message: str, *, retryable: bool) -> None:
        super().__init__(message)
        self.retryable = retryable


class BackpressureError(PipelineError):
    """The receiver is saturated; retry after ``retry_after`` seconds."""

    def __init__(self, message: str, *, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after
