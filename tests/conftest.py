"""Shared fixtures: settings, the local stack, and per-test isolation.

Integration tests use a running local stack when there is one, and otherwise
bring one up once for the whole test session (and take it down afterwards).
Every test gets unique topic, index and schema names, so tests run in any order
and side by side with data left by earlier runs.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from core import tracing
from core.settings import Settings, load_settings

INTEGRATION_DIR = Path(__file__).parent / "integration"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if INTEGRATION_DIR in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def settings() -> Settings:
    return load_settings()


@pytest.fixture(scope="session")
def local_stack(settings: Settings) -> Iterator[Settings]:
    """The settings of a ready local stack; started here if nothing was running."""
    from deploy.stack import stack

    before = stack.status(settings)
    if all(state.ready for state in before):
        yield settings
        return
    nothing_was_running = all(state.pid is None for state in before)
    stack.up(settings, print)
    yield settings
    if nothing_was_running:
        stack.down(settings, print)


@pytest.fixture
def unique_name(request: pytest.FixtureRequest) -> Callable[[str], str]:
    """Names that no other test (or earlier run) uses: ``<prefix>-<test>-<random>``."""
    test = "".join(ch if ch.isalnum() else "-" for ch in request.node.name.lower())[:40]

    def make(prefix: str) -> str:
        return f"{prefix}-{test.strip('-')}-{uuid.uuid4().hex[:8]}"

    return make


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    """The spans this process finishes while the test runs (an in-memory SDK provider)."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing.install(provider)
    try:
        yield exporter
    finally:
        tracing.install(None)
