"""Which Avro record is which command or event of the domain, and of which aggregate.

The contracts (the domain's schema folder) and the domain's types are kept apart;
this look-up, built once from the ``Domain``, is the only place that joins them.
"""

from __future__ import annotations

from typing import Any

from core.domain import Aggregate, Domain
from core.errors import PipelineError


class MessageTypes:
    def __init__(self, domain: Domain, deciding: tuple[str, ...] | None = None) -> None:
        """``deciding``: the aggregate types whose commands count as this process's own
        (a writer of a per-aggregate topic pair decides one type); all by default."""
        self.domain = domain
        self.kinds: dict[str, Aggregate[Any]] = {a.name: a for a in domain.aggregates}
        self.commands = {
            name: (aggregate, command)
            for name, (aggregate, command) in domain.command_types.items()
            if deciding is None or aggregate.name in deciding
        }
        self.all_commands = domain.command_types
        self.events = domain.event_types
        self._names: dict[type, str] = {
            cls: name for name, (_, cls) in (*self.all_commands.items(), *self.events.items())
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
