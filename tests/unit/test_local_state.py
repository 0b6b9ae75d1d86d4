"""The local RocksDB tables survive a clean stop only (exactly-once)."""

from __future__ import annotations

import shutil
from pathlib import Path

import faust

from cqrs.settings import ProcessorSettings, Settings
from processors.app import create_app
from processors.local_state import (
    CLEAN_STOP_MARKER,
    discard_unless_cleanly_stopped,
    mark_cleanly_stopped,
)


def _app(datadir: Path, store: str = "rocksdb://", guarantee: str = "exactly_once") -> faust.App:
    settings = Settings(
        processor=ProcessorSettings(
            store=store, datadir=datadir, processing_guarantee=guarantee, app_id="local-state"
        )
    )
    return create_app(settings)


def _write_table_file(app: faust.App) -> Path:
    table = Path(app.conf.tabledir) / "aggregates-0.db"
    table.mkdir(parents=True)
    (table / "000001.sst").write_bytes(b"uncommitted")
    return table


def test_tables_left_by_an_unclean_stop_are_dropped(tmp_path: Path) -> None:
    app = _app(tmp_path)
    table = _write_table_file(app)

    assert discard_unless_cleanly_stopped(app) is True
    assert not table.exists()


def test_tables_after_a_clean_stop_are_kept_and_the_marker_is_consumed(tmp_path: Path) -> None:
    app = _app(tmp_path)
    table = _write_table_file(app)
    mark_cleanly_stopped(app)

    assert discard_unless_cleanly_stopped(app) is False
    assert table.exists()
    assert not (Path(app.conf.tabledir) / CLEAN_STOP_MARKER).exists()
    # The next start without a new clean stop drops them.
    assert discard_unless_cleanly_stopped(app) is True


def test_memory_tables_and_at_least_once_leave_the_directory_alone(tmp_path: Path) -> None:
    for app in (_app(tmp_path, store="memory://"), _app(tmp_path, guarantee="at_least_once")):
        table = _write_table_file(app)
        assert discard_unless_cleanly_stopped(app) is False
        assert table.exists()
        mark_cleanly_stopped(app)
        assert not (Path(app.conf.tabledir) / CLEAN_STOP_MARKER).exists()
        shutil.rmtree(table)
