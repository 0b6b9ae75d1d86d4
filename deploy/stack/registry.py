"""The project's embedded schema registry, as a process of the local stack."""

from __future__ import annotations

import sys

import httpx

from core.settings import Settings, host_and_port
from deploy.stack.kafka import kafka_services
from deploy.stack.processes import LaunchSpec
from deploy.stack.service import Port, Report, Service


class RegistryService(Service):
    name = "registry"
    description = "schema registry (embedded, Confluent API)"

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self.depends_on = tuple(node.name for node in kafka_services(settings))

    def address(self) -> str:
        return self.settings.registry.url

    def ports(self) -> list[Port]:
        host, port = host_and_port(self.address())
        return [Port(host, port, "CQRS_REGISTRY__URL")]

    def prepare(self, report: Report) -> None:
        (self.home / "logs").mkdir(parents=True, exist_ok=True)

    def launch_spec(self) -> LaunchSpec:
        return LaunchSpec(
            argv=[sys.executable, "-m", "cqrs", "registry"],
            cwd=self.home,
            # Leave the default metrics port (9400) to the worker a developer starts;
            # the registry's endpoints go on a free port, named in its log.
            env={"CQRS_OBSERVABILITY__PORT": "0"},
            log_path=self.log_path,
            stop_timeout_s=15.0,
        )

    def probe(self) -> bool:
        try:
            response = httpx.get(f"{self.address().rstrip('/')}/config", timeout=3.0)
            return response.status_code == 200 and "compatibilityLevel" in response.json()
        except (httpx.HTTPError, ValueError):
            return False
