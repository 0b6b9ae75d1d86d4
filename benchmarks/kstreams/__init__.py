"""The Kafka Streams peer of the write-side benchmark: built once, then run as a JVM.

The jars come from Maven Central through the local stack's resolver
(``deploy.stack.toolchain.resolve_jars``, cached in the stack's Maven repository);
``WriteSidePeer.java`` is compiled with the JDK's ``javac`` into ``build/`` beside it.
Both are redone only when the artifacts or the source change.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from core.settings import Settings
from deploy.stack.toolchain import find_jdk, resolve_jars

HERE = Path(__file__).parent
SOURCE = HERE / "WriteSidePeer.java"
BUILD = HERE / "build"
# kafka-streams as the broker (4.3.1), Avro's Java implementation, and a logger so that
# Kafka Streams' warnings and errors reach the peer's log.
ARTIFACTS = [
    "org.apache.kafka:kafka-streams:4.3.1",
    "org.apache.avro:avro:1.12.2",
    "org.slf4j:slf4j-api:2.0.17",
    "org.slf4j:slf4j-simple:2.0.17",
]


@dataclass(frozen=True)
class KafkaStreamsPeer:
    java: Path
    classpath: str

    def command(
        self,
        *,
        bootstrap: str,
        registry: str,
        prefix: str,
        app_id: str,
        state: Path,
        commit_ms: int,
    ) -> list[str]:
        return [
            str(self.java),
            "-Xmx1g",
            "-Dorg.slf4j.simpleLogger.defaultLogLevel=warn",
            "-cp",
            self.classpath,
            "WriteSidePeer",
            bootstrap,
            registry,
            prefix,
            app_id,
            str(state),
            str(commit_ms),
        ]


def build(settings: Settings) -> KafkaStreamsPeer:
    """The compiled peer: jars resolved and the source compiled unless already cached."""
    jdk = find_jdk(17, settings.stack.java_home, "the Kafka Streams benchmark peer")
    jars = resolve_jars("bench-kstreams", ARTIFACTS, BUILD / "lib", settings.stack.maven_repository)
    classpath_jars = ":".join(str(jar) for jar in sorted(jars.glob("*.jar")))
    classes = BUILD / "classes"
    marker = BUILD / ".compiled"
    wanted = hashlib.sha256(SOURCE.read_bytes() + classpath_jars.encode()).hexdigest()
    if not (marker.exists() and marker.read_text() == wanted):
        shutil.rmtree(classes, ignore_errors=True)
        classes.mkdir(parents=True)
        javac = jdk.home / "bin" / "javac"
        compiled = subprocess.run(
            [str(javac), "-d", str(classes), "-cp", classpath_jars, str(SOURCE)],
            capture_output=True,
            text=True,
            check=False,
        )
        if compiled.returncode != 0:
            raise RuntimeError(f"javac failed on {SOURCE}:\n{compiled.stderr[-3000:]}")
        marker.write_text(wanted)
    return KafkaStreamsPeer(jdk.java, f"{classes}:{classpath_jars}")
