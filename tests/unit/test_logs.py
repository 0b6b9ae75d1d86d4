"""Log lines for people or for collectors, chosen by CQRS_OBSERVABILITY__LOG_FORMAT."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

SCRIPT = """
import logging
from core.logs import configure_logging
configure_logging("INFO", "{fmt}")
logging.getLogger("cqrs.loop").info("assigned %s", "commands[0]")
try:
    raise ValueError("boom")
except ValueError:
    logging.getLogger("cqrs.loop").exception("failed")
logging.getLogger("httpx").info("GET /subjects")
"""


def lines(fmt: str) -> list[str]:
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT.format(fmt=fmt)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return done.stderr.strip().splitlines()


def test_json_is_one_object_per_record_with_the_traceback_inside() -> None:
    records = [json.loads(line) for line in lines("json")]
    assert [r["message"] for r in records] == ["assigned commands[0]", "failed"]
    assert records[0]["level"] == "INFO" and records[0]["logger"] == "cqrs.loop"
    assert records[0]["time"].endswith("+00:00")
    assert "ValueError: boom" in records[1]["exception"]


def test_text_names_the_logger_and_keeps_noisy_ones_quiet() -> None:
    found = lines("text")
    assert "INFO cqrs.loop: assigned commands[0]" in found[0]
    assert not any("GET /subjects" in line for line in found)


def test_an_unknown_format_is_refused_by_the_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    from core.errors import ConfigurationError
    from core.settings import load_settings

    monkeypatch.setenv("CQRS_OBSERVABILITY__LOG_FORMAT", "xml")
    with pytest.raises(ConfigurationError, match="LOG_FORMAT"):
        load_settings()
