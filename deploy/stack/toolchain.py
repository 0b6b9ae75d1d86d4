"""Find the JDK and Maven the local stack runs on, and fetch jars with Maven.

Jars are resolved by Maven from Maven Central into a local repository (a cache
outside the work tree), then copied into the stack's home once per version, so a
warm start runs no Maven at all.
"""

from __future__ import annotations

import fcntl
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from xml.sax.saxutils import escape

from core.errors import PrerequisiteError, StackError

_JDK_ROOTS = (Path("/usr/lib/jvm"), Path("/usr/local/lib/jvm"), Path("/opt/java"))
_VERSION_LINE = re.compile(r'^JAVA_VERSION="(\d+)', re.MULTILINE)


@dataclass(frozen=True)
class Jdk:
    home: Path
    major: int

    @property
    def java(self) -> Path:
        return self.home / "bin" / "java"


def find_jdk(minimum_major: int, preferred_home: Path | None, purpose: str) -> Jdk:
    """The newest JDK of at least ``minimum_major``; the configured one must qualify."""
    if preferred_home is not None:
        jdk = _read_jdk(preferred_home)
        if jdk is None or jdk.major < minimum_major:
            raise PrerequisiteError(
                f"{purpose} needs Java {minimum_major}+, but CQRS_STACK__JAVA_HOME="
                f"{preferred_home} is not such a JDK; point it at one"
            )
        return jdk
    candidates = [jdk for jdk in _installed_jdks() if jdk.major >= minimum_major]
    if not candidates:
        raise PrerequisiteError(
            f"{purpose} needs Java {minimum_major}+ and none was found (looked at JAVA_HOME, "
            f"`java` on PATH and {', '.join(map(str, _JDK_ROOTS))}); install a JDK "
            f"{minimum_major}+ or set CQRS_STACK__JAVA_HOME"
        )
    return max(candidates, key=lambda jdk: jdk.major)


def _installed_jdks() -> list[Jdk]:
    homes: list[Path] = []
    if java_home := os.environ.get("JAVA_HOME"):
        homes.append(Path(java_home))
    if java := shutil.which("java"):
        homes.append(Path(java).resolve().parent.parent)
    for root in _JDK_ROOTS:
        if root.is_dir():
            homes.extend(sorted(root.iterdir()))
    found = (_read_jdk(home) for home in homes)
    return [jdk for jdk in found if jdk is not None]


def _read_jdk(home: Path) -> Jdk | None:
    try:
        release = (home / "release").read_text()
    except OSError:
        return None
    match = _VERSION_LINE.search(release)
    if match is None or not (home / "bin" / "java").exists():
        return None
    return Jdk(home=home.resolve(), major=int(match.group(1)))


def resolve_jars(name: str, artifacts: list[str], lib_root: Path, repository: Path) -> Path:
    """Directory holding ``artifacts`` (``group:artifact:version``) and their runtime deps.

    One resolution at a time per directory: three Kafka nodes prepare in parallel,
    and private test clusters share the stack's ``lib``.
    """
    lib_root.mkdir(parents=True, exist_ok=True)
    with (lib_root / f".{name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        return _resolve_jars(name, artifacts, lib_root, repository)


def _resolve_jars(name: str, artifacts: list[str], lib_root: Path, repository: Path) -> Path:
    target = lib_root / name
    marker = target / ".resolved"
    wanted = "\n".join(artifacts)
    if marker.exists() and marker.read_text() == wanted:
        return target / "jars"
    mvn = shutil.which("mvn")
    if mvn is None:
        raise PrerequisiteError(
            "Maven (`mvn`) is not on PATH; install Maven 3.6+ (e.g. apt-get install maven)"
        )
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True)
    (target / "pom.xml").write_text(_pom(name, artifacts))
    command = [
        mvn,
        "-B",
        "-q",
        f"-Dmaven.repo.local={repository}",
        "dependency:copy-dependencies",
        "-DincludeScope=runtime",
        f"-DoutputDirectory={target / 'jars'}",
    ]
    result = subprocess.run(command, cwd=target, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        errors = [line for line in result.stdout.splitlines() if "[ERROR]" in line][:3]
        raise StackError(
            f"Maven could not resolve {', '.join(artifacts)} from Maven Central: "
            + (" ".join(errors) or result.stderr.strip()[-400:])
            + "; check network access to Maven Central and the versions in CQRS_STACK__*"
        )
    marker.write_text(wanted)
    return target / "jars"


def _pom(name: str, artifacts: list[str]) -> str:
    dependencies = []
    for coordinate in artifacts:
        group, artifact, version = coordinate.split(":")
        dependencies.append(
            f"<dependency><groupId>{escape(group)}</groupId>"
            f"<artifactId>{escape(artifact)}</artifactId>"
            f"<version>{escape(version)}</version></dependency>"
        )
    return (
        '<project xmlns="http://maven.apache.org/POM/4.0.0">'
        "<modelVersion>4.0.0</modelVersion><groupId>cqrs.stack</groupId>"
        f"<artifactId>{escape(name)}</artifactId><version>1</version>"
        f"<dependencies>{''.join(dependencies)}</dependencies></project>\n"
    )
