"""The dashboard in a real browser: headless Chromium (Playwright) against real ``expert-jobs
serve`` processes on SQLite. Skipped, saying why, where no browser can be had."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.web.browser import (
    browser_or_skip_reason,
    example_server,
    launch,
    printed_key,
    sign_in,
    tenants_server,
)

_why = browser_or_skip_reason()
pytestmark = pytest.mark.skipif(_why is not None, reason=_why or "")


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = launch(playwright)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(15_000)
    errors: list[str] = []
    tab = context.new_page()
    tab.on("pageerror", lambda error: errors.append(str(error)))
    try:
        yield tab
    finally:
        context.close()
    assert errors == [], f"the page raised: {errors}"


def test_serve_example_watch_the_job_run_pause_be_answered_and_complete(tmp_path: Path, page: Any) -> None:
    with example_server(tmp_path) as server:
        # What a new user does: open the printed URL, sign in with the printed key.
        assert f"Dashboard:  {server.url}" in server.output
        sign_in(page, server.url, printed_key(server))
        assert page.locator("[data-testid=no-jobs]").is_visible()
        # The start form suggests the example's expert and query: one click starts the job.
        page.click("[data-testid=start]")
        job = page.locator(".job")
        job.wait_for()
        assert re.search(r"/ui/jobs/[a-z0-9]{24}$", page.url)
        # The page follows the job live: steps appear, the model's text streams, then it pauses.
        page.locator(".step").first.wait_for()
        page.locator("[data-testid=question]").wait_for()
        assert page.inner_text("[data-testid=question]").startswith('Publish the headline "2024 sales up')
        assert job.get_attribute("data-status") == "requestInteractiveToolResult"
        assert (
            page.locator(".lc-node.lc-current").get_attribute("data-status") == "requestInteractiveToolResult"
        )
        # the delegate's run is nested under the call that started it
        nested = page.locator(".call.kind-delegate .run.child")
        assert "headline-writer@1.0.0" in nested.inner_text()
        # Answer; the page follows the job again to its end.
        page.fill("[data-testid=answer-input]", "yes")
        page.click("[data-testid=answer]")
        page.locator(".job[data-status=completed]").wait_for()
        answer = page.inner_text("[data-testid=final-answer]")
        assert "2024 sales: 620 units, up 14.8%" in answer
        timeline = page.inner_text("[data-testid=timeline]")
        assert "Step 7" in timeline and "ask_user" in timeline and "percent_change" in timeline
        assert page.locator(".lc-node.lc-current").get_attribute("data-status") == "completed"
        # and the list shows it completed, without a reload having been needed to get there
        page.click("text=Jobs")
        row = page.locator("[data-testid=jobs-table] tbody tr").first
        assert "completed" in row.inner_text() and "sales-analyst@1.0.0" in row.inner_text()


def test_cancel_a_running_job_and_a_second_application_sees_none_of_the_firsts_jobs(
    tmp_path: Path, browser: Any, page: Any
) -> None:
    server, keys = tenants_server(tmp_path)
    with server:
        sign_in(page, server.url, keys["a"])
        page.fill("#query", "Take a minute")
        page.click("[data-testid=start]")
        page.locator(".job[data-status=processing]").wait_for()
        job_url = page.url
        # the list page, open in a second tab, sees the status change live
        other = page.context.new_page()
        other.goto(server.url)
        row = other.locator("[data-testid=jobs-table] tbody tr").first
        assert "processing" in row.inner_text()
        page.click("[data-testid=cancel]")
        page.locator(".job[data-status=canceled]").wait_for()
        assert page.locator("[data-testid=cancel]").count() == 0
        other.locator("[data-testid=jobs-table] tbody tr .badge[data-status=canceled]").wait_for()

        # Another application's key, in another browser context (its own cookies).
        context = browser.new_context()
        try:
            stranger = context.new_page()
            sign_in(stranger, server.url, keys["b"])
            assert stranger.locator("[data-testid=no-jobs]").is_visible()
            assert stranger.locator("[data-testid=jobs-table]").get_attribute("data-total") == "0"
            stranger.goto(job_url)
            assert "404 Not Found" in stranger.inner_text("[data-testid=error]")
            assert "Take a minute" not in stranger.content()
        finally:
            context.close()
