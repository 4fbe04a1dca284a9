#!/usr/bin/env python
"""Screenshots of the dashboard's two main pages for docs/dashboard.md, taken from the same setup
as the browser tests (tests/web/browser.py): a real ``expert-jobs serve --example`` on SQLite in a
temporary directory, driven by headless Chromium.

    python scripts/dashboard_screenshots.py            # writes docs/images/dashboard-*.png

It runs the example job to its end, starts a second one and leaves it waiting for its answer, then
shoots the jobs list and the waiting job's page.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.web.browser import browser_or_skip_reason, example_server, launch, printed_key, sign_in  # noqa: E402

IMAGES = ROOT / "docs" / "images"


def main() -> int:
    """Take the screenshots; 1 when no browser can be had."""
    why = browser_or_skip_reason()
    if why is not None:
        print(f"no screenshots: {why}", file=sys.stderr)
        return 1
    from playwright.sync_api import sync_playwright

    IMAGES.mkdir(parents=True, exist_ok=True)
    with (
        tempfile.TemporaryDirectory() as scratch,
        example_server(Path(scratch), pace=0.2) as server,
        sync_playwright() as playwright,
    ):
        browser = launch(playwright)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900}, device_scale_factor=1)
            sign_in(page, server.url, printed_key(server))
            # One job run to its end...
            page.click("[data-testid=start]")
            page.locator("[data-testid=answer-input]").wait_for(timeout=30_000)
            page.fill("[data-testid=answer-input]", "yes")
            page.click("[data-testid=answer]")
            page.locator(".job[data-status=completed]").wait_for(timeout=30_000)
            # ...and one waiting for its answer: the page people act on.
            page.goto(server.url)
            page.click("summary:has-text('Start a job')")
            page.click("[data-testid=start]")
            page.locator("[data-testid=answer-input]").wait_for(timeout=30_000)
            job_url = page.url
            page.goto(server.url)
            page.locator("[data-testid=jobs-table] tbody tr").nth(1).wait_for()
            page.screenshot(path=str(IMAGES / "dashboard-jobs.png"), full_page=False)
            page.set_viewport_size({"width": 1280, "height": 1700})
            page.goto(job_url)
            page.locator("[data-testid=answer-input]").wait_for()
            page.screenshot(path=str(IMAGES / "dashboard-job.png"), full_page=False)
        finally:
            browser.close()
    for name in ("dashboard-jobs.png", "dashboard-job.png"):
        print(IMAGES / name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
