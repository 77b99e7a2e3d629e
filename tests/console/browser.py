"""Playwright helpers for the console's browser tests."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from omnicx.demo import DEFAULT_PASSWORD
from tests.console.conftest import CHROMIUM, SCREENSHOTS, Demo

needs_chromium = pytest.mark.skipif(
    not CHROMIUM.exists(),
    reason=f"{CHROMIUM} is missing: `make test` installs Debian's chromium (apt-get)",
)


@contextmanager
def browser_pages(count: int) -> Iterator[list[Any]]:
    """``count`` pages, each in its own browser context (its own cookies: its own login)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM))
        try:
            pages = [
                browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
                for _ in range(count)
            ]
            for page in pages:
                page.set_default_timeout(15_000)
            yield pages
        finally:
            browser.close()


@contextmanager
def browser_page() -> Iterator[Any]:
    with browser_pages(1) as pages:
        yield pages[0]


def log_in(page: Any, demo: Demo, email: str) -> None:
    page.goto(f"{demo.url}/console/login")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(DEFAULT_PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_load_state()


def shot(page: Any, demo: Demo, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{demo.backend}-{name}.png"), full_page=True)
