"""Upcasters: turn an old record into the next revision's shape when Avro resolution cannot.

Resolution handles added fields with defaults, removed fields, aliases and type
promotions. It cannot carry meaning across a change: a field that was split, a
unit that changed, a renamed meaning. For those, register a function per
(record full name, revision it upgrades from)::

    upcasters = Upcasters()

    @upcasters.register("cqrs.events.OrderPlaced", from_revision=1)
    def upcast_order_placed_v1_v2(old: dict[str, Any]) -> dict[str, Any]:
        ...

The serde decodes such a record with its writer schema, applies every upcaster
from the writer's revision upwards in order (missing steps change nothing), and
then conforms the result to the current schema (defaults filled, leftovers
dropped, shape validated).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Record = dict[str, Any]
Upcaster = Callable[[Record], Record]


class Upcasters:
    def __init__(self) -> None:
        self._steps: dict[tuple[str, int], Upcaster] = {}

    def register(self, full_name: str, *, from_revision: int) -> Callable[[Upcaster], Upcaster]:
        def add(function: Upcaster) -> Upcaster:
            key = (full_name, from_revision)
            if key in self._steps:
                raise ValueError(f"an upcaster for {full_name} revision {from_revision} exists")
            self._steps[key] = function
            return function

        return add

    def steps(self, full_name: str, from_revision: int, to_revision: int) -> list[Upcaster]:
        """The upcasters that lead from ``from_revision`` to ``to_revision``, in order."""
        return [
            self._steps[(full_name, revision)]
            for revision in range(from_revision, to_revision)
            if (full_name, revision) in self._steps
        ]
