"""Rebuild the order index from the event log, side by side, then switch the alias.

1. Create the next generation ``<prefix>-orders-<n+1>`` (no refreshes, no
   replicas while loading).
2. Replay ``events`` from the beginning into that index (not through the
   alias) with the live sink's own code, chasing the end of the log until the
   rest fits in one batch.
3. Give it its live settings, refresh, and move the alias in one atomic
   ``_aliases`` request (``must_exist`` on the removal, so an alias moved by
   someone else meanwhile fails the switch instead of being overwritten).
4. Catch up: replay from where step 2 stopped up to the end measured after the
   switch. Events the live sink wrote into the old index just before the
   switch are applied here; later ones are written by the live sink through
   the alias into the new index. External versions make the overlap harmless.
5. Delete the previous generation(s).

The live sink keeps running throughout. A failure before the switch deletes
the new index and leaves the live one untouched. Events the live sink
dead-lettered are skipped (counted), not dead-lettered again.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from core.settings import Settings
from schemas.serde import AvroSerde
from sinks.base import Partition
from sinks.rebuild import RebuildProgress, RebuildReport, Replayer, SilentProgress
from sinks.search.backend import SearchBackend, open_backend
from sinks.search.index import SearchIndex
from sinks.search.projection import SearchProjection
from sinks.search.sink import SearchSink, SkippedEvents

log = logging.getLogger("cqrs.sinks.search")


def rebuild_search_index(
    settings: Settings,
    projection: SearchProjection[Any, Any],
    serde: AvroSerde,
    progress: RebuildProgress | None = None,
    *,
    backend: SearchBackend | None = None,
) -> RebuildReport:
    """Build a new generation of the projection's index from the event log and switch the
    alias."""
    started = time.monotonic()
    progress = progress or SilentProgress()
    backend = backend or open_backend(settings.search)
    index = SearchIndex(backend, settings.search, projection)
    new = index.create_next_generation()
    skipped = SkippedEvents()
    sink = SearchSink(projection, settings, backend, skipped, target_index=new)
    replayer = Replayer(settings, sink, serde, progress)
    switched = False
    try:
        sink.setup()
        _chase(settings, replayer, progress, new)
        index.make_live_ready(new)
        previous = index.switch_to(new)
        switched = True
        ends = replayer.ends()
        progress.phase("catching up after the switch", _gap(ends, replayer))
        replayer.run_until(ends)
    except BaseException:
        if not switched:
            log.warning("rebuild of %s failed before the switch; deleting %s", projection.name, new)
            backend.delete_index(new)
        raise
    finally:
        replayer.close()
    for old in previous:
        backend.delete_index(old)
    log.info("%s now serves from %s (was %s)", index.alias, new, ", ".join(previous) or "-")
    return RebuildReport(
        projection.name,
        new,
        replayer.replayed,
        replayer.skipped + skipped.count,
        time.monotonic() - started,
        dict(replayer.positions),
    )


def _chase(settings: Settings, replayer: Replayer, progress: RebuildProgress, target: str) -> None:
    """Replay up to the end of the log until what is left fits in one batch."""
    ends = replayer.ends()
    progress.phase(f"indexing events into {target}", _gap(ends, replayer))
    while True:
        replayer.run_until(ends)
        ends = replayer.ends()
        gap = _gap(ends, replayer)
        if gap <= settings.sinks.batch_max_records:
            return
        progress.phase("catching up with the log", gap)


def _gap(ends: dict[Partition, int], replayer: Replayer) -> int:
    return sum(max(0, end - replayer.positions.get(p, 0)) for p, end in ends.items())
