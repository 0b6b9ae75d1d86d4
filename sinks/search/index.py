"""A projection's index behind its alias: ``<prefix>-<index>`` → ``<prefix>-<index>-<generation>``.

Readers and the live sink only ever use the alias. The first generation
(``-000001``) is created together with the alias in one request, so two sinks
starting at once cannot create two indexes. A rebuild creates the next
generation, fills it, and moves the alias in one ``_aliases`` request (remove
the old index, add the new one): readers switch atomically and never see a
half-built index. Creating a generation that exists fails, so two rebuilds
cannot fill the same index.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from core.errors import ResourceMissingError, SinkError
from core.settings import SearchSettings
from sinks.search.backend import SearchBackend
from sinks.search.mapping import index_settings, live_settings
from sinks.search.projection import SearchProjection

log = logging.getLogger("cqrs.sinks.search")
FIRST_GENERATION = 1


class SearchIndex:
    def __init__(
        self, backend: SearchBackend, search: SearchSettings, projection: SearchProjection[Any, Any]
    ) -> None:
        self.backend = backend
        self.search = search
        self.projection = projection
        self.alias = f"{search.index_prefix}-{projection.index}"
        self._generation = re.compile(re.escape(self.alias) + r"-(\d{6})$")

    def generation_name(self, generation: int) -> str:
        return f"{self.alias}-{generation:06d}"

    def live_index(self) -> str | None:
        """The index the alias points at, or None before the first one exists."""
        targets = self.backend.indices_of_alias(self.alias)
        if len(targets) > 1:
            raise SinkError(
                f"alias {self.alias} points at {len(targets)} indexes ({', '.join(targets)}); "
                "writes through it would fail. Keep one: POST _aliases with remove actions",
                retryable=False,
            )
        return targets[0] if targets else None

    def ensure(self) -> str:
        """The live index, creating the first generation with the alias if there is none."""
        live = self.live_index()
        if live is not None:
            return live
        if self.backend.indices(self.alias) == [self.alias]:
            raise SinkError(
                f"{self.alias} is an index, not an alias; delete or rename it, then start again",
                retryable=False,
            )
        generations = self.generations()
        if generations:
            raise SinkError(
                f"alias {self.alias} is missing although {generations[-1]} exists; restore it "
                f"with `cqrs projections rebuild {self.projection.name}` (builds and "
                "switches a new index)",
                retryable=False,
            )
        first = self.generation_name(FIRST_GENERATION)
        created = self.backend.create_index(
            first,
            settings=index_settings(self.search),
            mappings=dict(self.projection.mappings),
            alias=self.alias,
        )
        if created:
            log.info("created index %s behind alias %s", first, self.alias)
        live = self.live_index()
        if live is None:
            raise SinkError(f"alias {self.alias} missing after creating {first}", retryable=True)
        return live

    def generations(self) -> list[str]:
        """Every generation of the index, oldest first."""
        names = self.backend.indices(f"{self.alias}-*")
        return sorted(name for name in names if self._generation.match(name))

    def create_next_generation(self) -> str:
        """A new, empty generation set up for bulk loading (no refreshes, no replicas)."""
        numbers = [
            int(found.group(1))
            for name in self.generations()
            if (found := self._generation.match(name))
        ]
        name = self.generation_name(max(numbers, default=0) + 1)
        created = self.backend.create_index(
            name,
            settings=index_settings(self.search, bulk_load=True),
            mappings=dict(self.projection.mappings),
            alias="",
        )
        if not created:
            raise SinkError(
                f"index {name} exists already: another rebuild is running (or crashed; "
                f"delete {name} and run the rebuild again)",
                retryable=False,
            )
        return name

    def make_live_ready(self, name: str) -> None:
        """Give a bulk-loaded index its live settings and make everything in it searchable."""
        self.backend.put_settings(name, live_settings(self.search))
        self.backend.refresh(name)

    def switch_to(self, name: str) -> list[str]:
        """Point the alias at ``name`` atomically; returns the indexes it pointed at before."""
        previous = self.backend.indices_of_alias(self.alias)
        # must_exist: if the alias moved since it was read, the whole request fails.
        actions: list[dict[str, Any]] = [
            {"remove": {"index": old, "alias": self.alias, "must_exist": True}} for old in previous
        ]
        actions.append({"add": {"index": name, "alias": self.alias}})
        try:
            self.backend.update_aliases(actions)
        except ResourceMissingError as error:
            raise SinkError(
                f"alias {self.alias} changed while switching it to {name} (another rebuild?); "
                f"nothing was switched: {error}",
                retryable=False,
            ) from error
        log.info("alias %s now points at %s (was %s)", self.alias, name, previous or "-")
        return [old for old in previous if old != name]
