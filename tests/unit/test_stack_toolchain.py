from __future__ import annotations

import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from core.errors import PrerequisiteError
from deploy.stack import toolchain
from deploy.stack.toolchain import _pom, find_jdk, resolve_jars


def _fake_jdk(root: Path, name: str, version: str) -> Path:
    home = root / name
    (home / "bin").mkdir(parents=True)
    (home / "bin" / "java").write_text("#!/bin/sh\n")
    (home / "release").write_text(f'JAVA_VERSION="{version}"\nOTHER="x"\n')
    return home


def test_the_newest_sufficient_jdk_is_chosen(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _fake_jdk(tmp_path, "jdk-17", "17.0.15")
    _fake_jdk(tmp_path, "jdk-21", "21.0.2")
    _fake_jdk(tmp_path, "jdk-11", "11.0.1")
    monkeypatch.setattr(toolchain, "_JDK_ROOTS", (tmp_path,))
    monkeypatch.delenv("JAVA_HOME", raising=False)
    monkeypatch.setenv("PATH", "/nonexistent")
    assert find_jdk(17, None, "Kafka").major == 21
    with pytest.raises(PrerequisiteError, match="needs Java 25\\+ and none was found"):
        find_jdk(25, None, "Something")


def test_a_configured_jdk_that_is_too_old_is_refused(tmp_path: Path) -> None:
    home = _fake_jdk(tmp_path, "jdk-17", "17.0.15")
    assert find_jdk(17, home, "Kafka").home == home.resolve()
    with pytest.raises(PrerequisiteError, match="CQRS_STACK__JAVA_HOME"):
        find_jdk(21, home, "OpenSearch")


def test_missing_maven_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(PrerequisiteError, match=r"Maven .* is not on PATH"):
        resolve_jars("x", ["g:a:1"], tmp_path / "lib", tmp_path / "repo")


def test_resolved_jars_are_not_resolved_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "lib" / "kafka"
    target.mkdir(parents=True)
    (target / ".resolved").write_text("org.apache.kafka:kafka_2.13:4.3.1")
    monkeypatch.setenv("PATH", "/nonexistent")  # Maven would be needed to resolve anything
    jars = resolve_jars(
        "kafka", ["org.apache.kafka:kafka_2.13:4.3.1"], tmp_path / "lib", tmp_path / "repo"
    )
    assert jars == target / "jars"


def test_pom_lists_every_artifact_escaped() -> None:
    pom = _pom("demo", ["org.a:b:1.0", "org.c:d&e:2"])
    assert "<groupId>org.a</groupId><artifactId>b</artifactId><version>1.0</version>" in pom
    assert "<artifactId>d&amp;e</artifactId>" in pom


def test_parallel_resolutions_of_one_directory_run_maven_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    calls = tmp_path / "calls"
    fake_mvn = bin_dir / "mvn"
    fake_mvn.write_text(f"#!/bin/sh\necho run >> {calls}\n{shutil.which('sleep')} 0.3\n")
    fake_mvn.chmod(0o755)
    monkeypatch.setenv("PATH", str(bin_dir))
    artifacts = ["org.apache.kafka:kafka_2.13:4.3.1"]

    with ThreadPoolExecutor(max_workers=3) as pool:
        results = list(
            pool.map(
                lambda _: resolve_jars("kafka", artifacts, tmp_path / "lib", tmp_path / "repo"),
                range(3),
            )
        )

    assert results == [tmp_path / "lib" / "kafka" / "jars"] * 3
    assert calls.read_text().splitlines() == ["run"]
