"""Health and metrics endpoints that every long-running process serves.

Each process (``cqrs worker``, ``cqrs saga``, ``cqrs sink run``, ``cqrs lag
serve``, ``cqrs registry``) serves plain HTTP on ``observability.host:port``:

- ``GET /metrics``: Prometheus text format (the default registry, see
  ``core.metrics``);
- ``GET /livez``: 200 while the main loop is responsive, i.e. it called
  ``Health.beat()`` within ``observability.liveness_timeout_s``, else 503;
- ``GET /readyz``: 200 once the process said ``set_ready(True)`` (partitions
  assigned and recovered, caught up enough) and is live, else 503 with a
  one-line reason.

The server runs in daemon threads of its own and never touches the process's
asyncio loop: a loop that is stuck stops beating, and ``/livez`` says so while
``/metrics`` keeps answering.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Self
from urllib.parse import urlsplit

from prometheus_client import REGISTRY, CollectorRegistry
from prometheus_client.exposition import choose_encoder

import core.metrics  # noqa: F401 - every process exposes the same metric families
from core.errors import ConfigurationError
from core.settings import Settings

log = logging.getLogger("cqrs.observability")

STARTING = "starting"
# What a worker (command processor or process manager) logs once its partitions are
# assigned and their state restored; launchers wait for it.
WORKER_READY = "worker ready"


@dataclass(frozen=True)
class Verdict:
    """The answer of one probe: whether it passes, and why not."""

    ok: bool
    reason: str = ""


class Health:
    """Liveness (a heartbeat) and readiness (a flag with a reason), safe across threads."""

    def __init__(
        self, liveness_timeout_s: float = 30.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._timeout = liveness_timeout_s
        self._clock = clock
        self._lock = threading.Lock()
        # Creation counts as the first beat: start-up gets one timeout of grace.
        self._last_beat = clock()
        self._ready = False
        self._reason = STARTING

    @classmethod
    def for_settings(cls, settings: Settings) -> Health:
        return cls(settings.observability.liveness_timeout_s)

    @property
    def liveness_timeout_s(self) -> float:
        return self._timeout

    def beat(self) -> None:
        """Call from the main loop, at least a few times per liveness timeout."""
        with self._lock:
            self._last_beat = self._clock()

    def set_ready(self, ready: bool, reason: str = "") -> None:
        """Whether the process can do its work now; ``reason`` says why not (one line)."""
        with self._lock:
            self._ready = ready
            self._reason = "" if ready else (" ".join(reason.split()) or "not ready")

    def liveness(self) -> Verdict:
        with self._lock:
            silent_for = self._clock() - self._last_beat
        if silent_for > self._timeout:
            return Verdict(
                False,
                f"main loop silent for {silent_for:.1f}s (liveness timeout {self._timeout:g}s)",
            )
        return Verdict(True)

    def readiness(self) -> Verdict:
        live = self.liveness()
        if not live.ok:
            return Verdict(False, f"not live: {live.reason}")
        with self._lock:
            return Verdict(self._ready, self._reason)


async def beat_forever(health: Health, interval_s: float | None = None) -> None:
    """Beat from an asyncio loop until cancelled; a blocked loop stops the beats."""
    interval = interval_s if interval_s is not None else beat_interval(health)
    while True:
        health.beat()
        await asyncio.sleep(interval)


def beat_interval(health: Health) -> float:
    """How often to beat: a few times per timeout, at least every second (beats are cheap)."""
    return min(1.0, health.liveness_timeout_s / 3)


class ObservabilityServer:
    """The running endpoints; ``close()`` stops them (also usable as a context manager)."""

    def __init__(self, server: ThreadingHTTPServer, thread: threading.Thread) -> None:
        self._server = server
        self._thread = thread

    @property
    def host(self) -> str:
        return str(self._server.server_address[0])

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        host = "127.0.0.1" if self.host in {"0.0.0.0", ""} else self.host
        return f"http://{host}:{self.port}"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


def start_observability_server(
    settings: Settings, health: Health, registry: CollectorRegistry = REGISTRY
) -> ObservabilityServer:
    """Serve /metrics, /livez and /readyz from daemon threads; returns at once."""
    config = settings.observability
    handler = _handler_class(health, registry)
    try:
        server = ThreadingHTTPServer((config.host, config.port), handler)
    except OSError as error:
        raise ConfigurationError(
            f"cannot serve metrics and health on {config.host}:{config.port}: {error.strerror}; "
            "free the port or choose another with CQRS_OBSERVABILITY__PORT (0 picks a free one)"
        ) from error
    server.daemon_threads = True
    thread = threading.Thread(
        target=server.serve_forever,
        kwargs={"poll_interval": 0.1},  # how quickly close() returns
        name="observability-http",
        daemon=True,
    )
    thread.start()
    handle = ObservabilityServer(server, thread)
    log.info("metrics and health endpoints on %s (/metrics, /livez, /readyz)", handle.url)
    return handle


def _handler_class(health: Health, registry: CollectorRegistry) -> type[BaseHTTPRequestHandler]:
    probes: dict[str, Callable[[], Verdict]] = {
        "/livez": health.liveness,
        "/readyz": health.readiness,
    }

    class Handler(BaseHTTPRequestHandler):
        server_version = "cqrs-observability"

        def do_GET(self) -> None:
            path = urlsplit(self.path).path
            if path == "/metrics":
                encoder, content_type = choose_encoder(self.headers.get("Accept", ""))
                self._reply(200, encoder(registry), content_type)
            elif path in probes:
                verdict = probes[path]()
                body = "ok\n" if verdict.ok else f"{verdict.reason}\n"
                self._reply(200 if verdict.ok else 503, body.encode(), "text/plain; charset=utf-8")
            else:
                self._reply(404, b"not found: try /metrics, /livez or /readyz\n", "text/plain")

        def _reply(self, status: int, body: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            # Probes arrive every few seconds; access lines only at debug level.
            log.debug("%s " + format, self.client_address[0], *args)

    return Handler
