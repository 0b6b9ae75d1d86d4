"""`cqrs new`: the package it writes is valid and passes its own tests, whatever the names."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from core.domain import load_domain
from core.errors import ConfigurationError
from cqrs.scaffold import check_names, write


@pytest.mark.parametrize(("package", "aggregate"), [("helpdesk", "Ticket"), ("fleet", "Van2")])
def test_the_package_loads_as_a_domain_and_passes_its_tests(
    tmp_path: Path, package: str, aggregate: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(check_names(package, aggregate), tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    domain = load_domain(f"{package}.domain:domain")
    assert [a.name for a in domain.aggregates] == [aggregate]
    assert [p.name for p in domain.projections] == [f"{aggregate.lower()}s"]
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"{package}/tests"],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    # The end-to-end test runs when the local stack is up and is skipped otherwise.
    passed = "4 passed" in run.stdout or "3 passed, 1 skipped" in run.stdout
    assert run.returncode == 0 and passed, run.stdout + run.stderr


@pytest.mark.parametrize(
    ("package", "aggregate", "says"),
    [
        ("Helpdesk", "Ticket", "cannot be a package name"),
        ("class", "Ticket", "cannot be a package name"),
        ("helpdesk", "ticket", "cannot be an aggregate name"),
        ("helpdesk", "Open-Ticket", "cannot be an aggregate name"),
    ],
)
def test_names_that_cannot_work_are_refused(package: str, aggregate: str, says: str) -> None:
    with pytest.raises(ConfigurationError, match=says):
        check_names(package, aggregate)


def test_nothing_is_overwritten(tmp_path: Path) -> None:
    (tmp_path / "helpdesk").mkdir()
    with pytest.raises(ConfigurationError, match="exists already"):
        write(check_names("helpdesk", "Ticket"), tmp_path)
