"""The health and metrics endpoints, over real HTTP on an ephemeral port."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator

import httpx
import pytest
from prometheus_client import CollectorRegistry, Counter

from core import metrics
from core.errors import ConfigurationError
from core.observability import (
    Health,
    ObservabilityServer,
    beat_forever,
    start_observability_server,
)
from core.settings import ObservabilitySettings, Settings


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def settings_on(port: int = 0, liveness_timeout_s: float = 30.0) -> Settings:
    return Settings(
        observability=ObservabilitySettings(
            host="127.0.0.1", port=port, liveness_timeout_s=liveness_timeout_s
        )
    )


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def health(clock: FakeClock) -> Health:
    return Health(liveness_timeout_s=30.0, clock=clock)


@pytest.fixture
def server(health: Health) -> Iterator[ObservabilityServer]:
    with start_observability_server(settings_on(), health) as handle:
        yield handle


def get(server: ObservabilityServer, path: str) -> httpx.Response:
    return httpx.get(server.url + path, timeout=5.0)


def test_a_fresh_process_is_live_but_not_ready(server: ObservabilityServer) -> None:
    live, ready = get(server, "/livez"), get(server, "/readyz")
    assert (live.status_code, live.text) == (200, "ok\n")
    assert (ready.status_code, ready.text) == (503, "starting\n")


def test_readiness_follows_set_ready_with_a_one_line_reason(
    server: ObservabilityServer, health: Health
) -> None:
    health.set_ready(True)
    assert get(server, "/readyz").status_code == 200
    health.set_ready(False, "recovering table aggregates:\n3 partitions left")
    response = get(server, "/readyz")
    assert response.status_code == 503
    assert response.text == "recovering table aggregates: 3 partitions left\n"


def test_liveness_fails_when_the_heartbeat_is_older_than_the_timeout(
    server: ObservabilityServer, health: Health, clock: FakeClock
) -> None:
    health.set_ready(True)
    clock.now += 29.0
    assert get(server, "/livez").status_code == 200
    clock.now += 2.0
    live = get(server, "/livez")
    assert live.status_code == 503
    assert "silent for 31.0s" in live.text
    ready = get(server, "/readyz")
    assert ready.status_code == 503
    assert ready.text.startswith("not live:")
    health.beat()
    assert get(server, "/livez").status_code == 200
    assert get(server, "/readyz").status_code == 200


def test_metrics_serves_the_pipeline_metric_names(server: ObservabilityServer) -> None:
    metrics.count_command("accepted")
    metrics.EVENTS_APPLIED.labels(projection="search-orders").inc(3)
    metrics.CONSUMER_LAG_RECORDS.labels(group="g", topic="events", partition="0").set(7)
    response = get(server, "/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    body = response.text
    assert 'cqrs_commands_total{outcome="accepted"}' in body
    assert 'cqrs_events_applied_total{projection="search-orders"}' in body
    assert 'cqrs_consumer_lag_records{group="g",partition="0",topic="events"} 7.0' in body
    assert "# TYPE cqrs_transaction_commit_seconds histogram" in body
    assert "# TYPE cqrs_sink_batch_seconds histogram" in body
    assert "_created" not in body


def test_metrics_can_come_from_a_given_registry(health: Health) -> None:
    registry = CollectorRegistry()
    Counter("only_here_total", "A metric of this registry only.", registry=registry).inc()
    with start_observability_server(settings_on(), health, registry) as server:
        body = get(server, "/metrics").text
    assert "only_here_total 1.0" in body
    assert "cqrs_commands_total" not in body


def test_unknown_paths_are_404(server: ObservabilityServer) -> None:
    response = get(server, "/health")
    assert response.status_code == 404
    assert "/readyz" in response.text


def test_a_taken_port_is_a_clear_configuration_error(health: Health) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(ConfigurationError, match="CQRS_OBSERVABILITY__PORT"):
            start_observability_server(settings_on(port), health)


def test_close_frees_the_port(health: Health) -> None:
    server = start_observability_server(settings_on(), health)
    port = server.port
    server.close()
    with socket.socket() as again:
        again.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        again.bind(("127.0.0.1", port))


def test_a_blocked_event_loop_turns_livez_red_while_metrics_still_answer() -> None:
    health = Health(liveness_timeout_s=1.0)
    loop = asyncio.new_event_loop()
    release = threading.Event()

    async def main() -> None:
        beating = asyncio.ensure_future(beat_forever(health, interval_s=0.05))
        await asyncio.sleep(0.2)
        release.wait(timeout=30)  # blocks the loop, as a stuck handler would
        beating.cancel()

    runner = threading.Thread(target=loop.run_until_complete, args=(main(),))
    with start_observability_server(settings_on(liveness_timeout_s=1.0), health) as server:
        runner.start()
        try:
            assert get(server, "/livez").status_code == 200
            deadline = time.monotonic() + 10
            while get(server, "/livez").status_code == 200:
                assert time.monotonic() < deadline, "livez never noticed the blocked loop"
                time.sleep(0.05)
            assert get(server, "/metrics").status_code == 200
        finally:
            release.set()
            runner.join(timeout=10)
            loop.close()


def test_heartbeats_and_readiness_from_many_threads_stay_consistent(health: Health) -> None:
    torn: list[tuple[bool, str]] = []

    def churn(number: int) -> None:
        for round_ in range(500):
            health.beat()
            health.set_ready(round_ % 2 == 0, f"thread {number} round {round_}")
            verdict = health.readiness()
            if verdict.ok != (verdict.reason == ""):
                torn.append((verdict.ok, verdict.reason))

    threads = [threading.Thread(target=churn, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert torn == []
    health.set_ready(True)
    assert health.readiness().ok


def test_settings_default_to_the_process_contract(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CQRS_OBSERVABILITY__PORT", raising=False)
    defaults = Settings().observability
    assert (defaults.host, defaults.port, defaults.liveness_timeout_s) == ("0.0.0.0", 9400, 30.0)
    monkeypatch.setenv("CQRS_OBSERVABILITY__PORT", "9555")
    assert Settings().observability.port == 9555
