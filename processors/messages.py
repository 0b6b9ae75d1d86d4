"""Which Avro record is which command or event of the domain, and of which aggregate.

The contracts (the domain's schema folder) and the domain's types are kept apart;
this look-up, built once from the ``Domain``, is the only place that joins them.
"""

from __future__ import annotations

from typing import Any

from core.domain import Aggregate, Domain
from core.errors import PipelineError


class MessageTypes:
    def __init__(self, domain: Domain) -> None:
        self.domain = domain
        self.kinds: dict[str, Aggregate[Any]] = {a.name: a for a in domain.aggregates}
        self.commands = domain.command_types
        self.events = domain.event_types
        self._names: dict[type, str] = {
            cls: name for name, (_, cls) in (*self.commands.items(), *self.events.items())
        }

    def name_of(self, message: object) -> str:
        """The record full name of a command or event instance."""
        try:
            return self._names[type(message)]
        except KeyError:
            raise PipelineError(
                f"{type(message).__name__} is not a command or event of any aggregate of "
                f"domain {self.domain.name!r}; declare it on its Aggregate"
            ) from None
