"""Local table state under exactly-once is trusted only after a clean stop.

A RocksDB store applies every table write at once, including the writes of a
transaction that is later aborted (a kill, a crash, an event that failed
half-way). The changelog never holds them, but the local store does, and a
restarted worker would read them back as committed state: a command whose
result was rolled back would look already decided and never emit its events.
So, as Kafka Streams does under exactly-once, the store survives only a clean
stop: a marker written after one, consumed at start; without it the local
tables are dropped and restored from their changelogs.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path
from typing import cast

import faust
from faust.types.enums import ProcessingGuarantee

log = logging.getLogger("cqrs.local_state")
CLEAN_STOP_MARKER = "clean-stop"


def keeps_local_state(app: faust.App) -> bool:
    guarantee = cast(ProcessingGuarantee, app.conf.processing_guarantee)
    exactly_once = guarantee is ProcessingGuarantee.EXACTLY_ONCE
    return exactly_once and str(app.conf.store).startswith("rocksdb")


def discard_unless_cleanly_stopped(app: faust.App) -> bool:
    """Drop the local tables unless the last run stopped cleanly; True when dropped."""
    if not keeps_local_state(app):
        return False
    tables = Path(app.conf.tabledir)
    marker = tables / CLEAN_STOP_MARKER
    if marker.exists():
        marker.unlink()  # this run must earn its own
        return False
    if not tables.exists() or not any(tables.iterdir()):
        return False
    log.warning(
        "the last run of %s did not stop cleanly: dropping its local tables in %s; "
        "they are restored from their changelogs",
        app.conf.id,
        tables,
    )
    shutil.rmtree(tables)
    return True


def mark_cleanly_stopped(app: faust.App) -> None:
    """Record that every transaction of this run ended and the stores were closed."""
    if keeps_local_state(app):
        tables = Path(app.conf.tabledir)
        tables.mkdir(parents=True, exist_ok=True)
        (tables / CLEAN_STOP_MARKER).touch()
