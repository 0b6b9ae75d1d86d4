"""Bring the local stack up, report on it, take it down.

``up`` is idempotent: a service that already runs is only probed. Services start
in parallel (each after the ones it depends on) and each is waited for until a
real round trip through it succeeds. ``down`` stops every service gracefully and
then makes sure no process started from the stack home remains.

Kafka is one service per node (``kafka``, or ``kafka-1`` to ``kafka-3``); the
nodes start together (a node of three is ready only once a quorum runs) and
stop together, last.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import psutil

from core.errors import StackError
from core.settings import Settings
from deploy.stack.kafka import KafkaService, kafka_node_homes, kafka_services
from deploy.stack.opensearch import OpenSearchService
from deploy.stack.postgres import PostgresService
from deploy.stack.processes import ensure_port_free, launch, running_process, stop, tail
from deploy.stack.registry import RegistryService
from deploy.stack.service import Report, Service

Progress = Callable[[str], None]


@dataclass(frozen=True)
class ServiceState:
    name: str
    description: str
    pid: int | None
    ready: bool
    address: str
    log: Path


def services(settings: Settings) -> list[Service]:
    """Every service of the local stack, in start order."""
    return [
        *kafka_services(settings),
        RegistryService(settings),
        PostgresService(settings),
        OpenSearchService(settings),
    ]


def up(settings: Settings, progress: Progress) -> list[ServiceState]:
    """Start whatever is not running and wait until every service is ready."""
    started = time.monotonic()
    stack = services(settings)
    _refuse_other_kafka_layout(settings, stack)
    done = {service.name: threading.Event() for service in stack}
    failures: dict[str, str] = {}

    def bring_up(service: Service) -> None:
        def report(message: str) -> None:
            progress(f"[{time.monotonic() - started:5.1f}s] {service.name:<10} {message}")

        try:
            for dependency in service.depends_on:
                done[dependency].wait()
                if dependency in failures:
                    raise StackError(f"not started because {dependency} failed")
            start_service(service, settings.stack.ready_timeout_s, report)
        except StackError as error:
            failures[service.name] = str(error)
            report(f"FAILED: {error}")
        finally:
            done[service.name].set()

    with ThreadPoolExecutor(max_workers=len(stack)) as pool:
        list(pool.map(bring_up, stack))
    if failures:
        summary = "; ".join(f"{name}: {reason}" for name, reason in failures.items())
        raise StackError(f"the local stack is not ready ({summary})")
    return status(settings)


def _refuse_other_kafka_layout(settings: Settings, stack: list[Service]) -> None:
    """Kafka nodes of the other layout (one node or three) would hold the ports."""
    configured = {service.home for service in stack}
    for home in kafka_node_homes(settings.stack.home.resolve()):
        process = running_process(home / "server.pid")
        if home not in configured and process is not None:
            raise StackError(
                f"Kafka node {home.name} (pid {process.pid}) of another layout runs in this "
                f"stack home, not the {settings.stack.kafka_brokers}-node Kafka "
                "CQRS_STACK__KAFKA_BROKERS asks for; run `cqrs stack down` first or change "
                "the setting back"
            )


def start_service(service: Service, timeout_s: float, report: Report) -> None:
    """Start one service unless it runs, and wait until it is ready."""
    process = running_process(service.pid_path)
    if process is not None:
        wait_ready(service, timeout_s, report)
        report(f"already running (pid {process.pid}) at {service.address()}")
        return
    for port in service.ports():
        ensure_port_free(port.host, port.port, service.description, port.setting)
    service.prepare(report)
    clock = time.monotonic()
    pid = launch(service.launch_spec(), service.pid_path)
    report(f"started (pid {pid}); waiting until a round trip succeeds")
    wait_ready(service, timeout_s, report)
    service.initialize()
    report(f"ready in {time.monotonic() - clock:.1f}s at {service.address()}")


def wait_ready(service: Service, timeout_s: float, report: Report) -> None:
    """Probe until the service answers; fail when it exits or the timeout passes."""
    deadline = time.monotonic() + timeout_s
    next_notice = time.monotonic() + 10
    while not service.probe():
        if running_process(service.pid_path) is None:
            raise StackError(
                f"{service.description} exited during start-up; last lines of "
                f"{service.log_path}:\n{tail(service.log_path)}"
            )
        if time.monotonic() > deadline:
            raise StackError(
                f"{service.description} was not ready after {timeout_s:.0f}s; "
                f"see {service.log_path}, or raise CQRS_STACK__READY_TIMEOUT_S"
            )
        if time.monotonic() > next_notice:
            report("still starting…")
            next_notice += 10
        time.sleep(0.5)


def down(settings: Settings, progress: Progress) -> None:
    """Stop every service, newest first, and any stray process from the stack home.

    The Kafka nodes stop last and together, those of either layout: a node left
    alone by its peers cannot shut down in order, as it finds no controller quorum.
    """
    stack = services(settings)
    for service in reversed(stack):
        if not isinstance(service, KafkaService):
            _stop_service(service.name, service.pid_path, progress)
    configured = {service.home for service in stack}
    kafka_homes = [
        home
        for home in kafka_node_homes(settings.stack.home.resolve())
        if home in configured or running_process(home / "server.pid") is not None
    ]
    with ThreadPoolExecutor(max_workers=len(kafka_homes)) as pool:
        list(
            pool.map(
                lambda home: _stop_service(home.name, home / "server.pid", progress), kafka_homes
            )
        )
    for stray in _strays(settings.stack.home.resolve()):
        progress(f"stopping stray process {stray.pid} ({stray.name()})")
        _terminate(stray)


def _stop_service(name: str, pid_path: Path, progress: Progress) -> None:
    stopped = stop(pid_path)
    progress(f"{name:<10} {'stopped' if stopped else 'was not running'}")


def status(settings: Settings) -> list[ServiceState]:
    """What runs, and whether it answers."""
    states = []
    for service in services(settings):
        process = running_process(service.pid_path)
        states.append(
            ServiceState(
                name=service.name,
                description=service.description,
                pid=process.pid if process else None,
                ready=process is not None and service.probe(),
                address=service.address(),
                log=service.log_path,
            )
        )
    return states


def _strays(home: Path) -> list[psutil.Process]:
    """Processes whose working directory is inside the stack home (not this one)."""
    found = []
    for process in psutil.process_iter():
        try:
            cwd = Path(process.cwd())
        except (psutil.Error, OSError):
            continue
        if process.pid != os.getpid() and (cwd == home or home in cwd.parents):
            found.append(process)
    return found


def _terminate(process: psutil.Process) -> None:
    try:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=20)
    except psutil.TimeoutExpired:
        process.kill()
    except psutil.NoSuchProcess:
        pass
