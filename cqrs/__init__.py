"""The pipeline's public API: what a team imports to declare its domain.

    from cqrs import Aggregate, Domain, DomainError, Upcasters

A domain module builds one ``Domain`` and names it in ``CQRS_DOMAIN``
(``package.module:attribute``); see docs/domain.md.
"""

from core.domain import (
    Aggregate,
    Domain,
    Issue,
    Observation,
    ProcessManager,
    Projection,
    View,
    check_expected_version,
    load_domain,
)
from core.errors import (
    AggregateNotFoundError,
    AlreadyExistsError,
    DomainError,
    IllegalTransitionError,
    InvalidCommandError,
    VersionConflictError,
)
from core.settings import Settings, load_settings
from core.upcasting import Upcasters

__all__ = [
    "Aggregate",
    "AggregateNotFoundError",
    "AlreadyExistsError",
    "Domain",
    "DomainError",
    "IllegalTransitionError",
    "InvalidCommandError",
    "Issue",
    "Observation",
    "ProcessManager",
    "Projection",
    "Settings",
    "Upcasters",
    "VersionConflictError",
    "View",
    "check_expected_version",
    "load_domain",
    "load_settings",
]
