"""The operator console (``/console``) in a real headless browser (Debian's Chromium).

The real worker dead-letters a command that cannot be decoded; the console,
opened with the admin key, shows every projection's lag and freshness, lists
the dead letter, opens it and replays it; the replayed record arrives on the
commands topic marked with where it came from. A screenshot of the console is
kept under ``test-artifacts/`` (``CQRS_TEST_ARTIFACTS`` moves it).
"""

from __future__ import annotations

import os
import re
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from confluent_kafka import Producer

from tests.integration.pipeline import Pipeline, wait_until
from tests.integration.query_support import ADMIN_KEY, api, pipeline, sinks

__all__ = ["api", "pipeline", "sinks"]  # module fixtures, one set per test module

ARTIFACTS = Path(
    os.environ.get("CQRS_TEST_ARTIFACTS", Path(__file__).parents[2] / "test-artifacts")
)
BROWSERS = ("chromium", "chromium-browser", "google-chrome")


def browser_path() -> str | None:
    return next((found for name in BROWSERS if (found := shutil.which(name))), None)


@pytest.fixture(scope="module")
def page(api: httpx.Client) -> Iterator[object]:
    executable = browser_path()
    if executable is None:
        pytest.skip("no Chromium on this machine: apt-get install chromium (CI installs it)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=executable, args=["--no-sandbox"])
        context = browser.new_context(viewport={"width": 1366, "height": 900})
        opened = context.new_page()
        yield opened
        context.close()
        browser.close()


def dead_letter_a_command(pipeline: Pipeline) -> str:
    """A command the worker cannot decode (no Confluent framing): it is dead-lettered."""
    key = f"broken-{uuid.uuid4().hex[:6]}"
    producer = Producer(pipeline.settings.kafka.confluent_config())
    producer.produce(pipeline.settings.kafka.topic_prefix + "commands", key=key, value=b"not avro")
    assert producer.flush(30) == 0
    return key


def test_the_console_shows_lag_and_replays_a_dead_letter(
    api: httpx.Client, pipeline: Pipeline, page: object
) -> None:
    from playwright.sync_api import Page, expect

    assert isinstance(page, Page)
    key = dead_letter_a_command(pipeline)
    admin = {"X-API-Key": ADMIN_KEY}
    wait_until(
        lambda: any(d["key"] == key for d in api.get("/dlq", headers=admin).json()["dead_letters"]),
        60,
        "the dead letter",
    )
    page.goto(f"{api.base_url}/console#key={ADMIN_KEY}")

    rows = page.locator("#projections tbody tr")
    expect(rows).to_have_count(4, timeout=20_000)  # the shop's four projections
    for name in ("order-summary", "inventory-levels", "search-orders"):  # the sinks running
        row = page.locator(f'#projections tr[data-projection="{name}"]')
        expect(row.locator("td.lag")).to_have_text(re.compile(r"^\d+$"), timeout=20_000)
        expect(row.locator("td.freshness")).to_have_text(re.compile(r"^\d+(\.\d+)? (s|min)$"))
    idle = page.locator('#projections tr[data-projection="sales-analytics"] td.lag')
    expect(idle).to_have_text("no sink running")
    expect(page.locator("#groups tbody tr").first).to_be_visible()

    letter = page.locator("#dead-letters tbody tr", has_text="commands-dlq").last
    expect(letter).to_be_visible(timeout=20_000)
    letter.click()
    detail = page.locator("[data-testid=dead-letter-detail]")
    expect(detail).to_contain_text(key)
    expect(detail).to_contain_text("NOT_CONFLUENT_FRAMED")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "operator-console.png"), full_page=True)

    page.locator("#replay").click()
    expect(page.locator("#replay-outcome")).to_have_text("replayed 1, skipped 0, failed 0")
    replayed = [
        headers
        for record_key, _, headers in pipeline.read("commands")
        if record_key == key.encode()
        and any(name == "dead_letter.replayed_from" for name, _ in headers)
    ]
    assert len(replayed) == 1
    # Replayed once: a second replay of the same dead letter is skipped.
    page.locator("#replay").click()
    expect(page.locator("#replay-outcome")).to_have_text("replayed 0, skipped 1, failed 0")
