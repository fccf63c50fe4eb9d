"""Chromium for the browser tests: the system's, else Playwright's own download.

    from tests.chromium import sync_browser

    def test_page(relay_process) -> None:
        relay = relay_process()
        with sync_browser() as browser:
            page = browser.new_page()
            page.goto(relay.url)

A test module that shares one browser (or one context) across its tests imports
``browser_fixture`` (or ``context_fixture``): the ``browser`` (``context``) fixture.

The executable and flags are the ones the browser kernel launches with
(``kernel_headless.launch.browser.launch_options``): ``$ANODE_CHROMIUM``, else
``/usr/bin/chromium`` or a Chromium on PATH, else Playwright's download. When
there is no Chromium at all, or no Playwright, the test fails loudly and says
to run ``make setup``: a browser test is never silently skipped.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from kernel_headless.launch.browser import CHROMIUM_ARGS, chromium_executable, launch_options

if TYPE_CHECKING:
    from playwright.sync_api import Browser

__all__ = [
    "CHROMIUM_ARGS",
    "chromium_executable",
    "launch_options",
    "browser_fixture",
    "context_fixture",
    "require_chromium",
    "sync_browser",
]

_SETUP = "run `make setup` (it installs Chromium with apt-get, or Playwright's download)"


def _playwright_downloads() -> Path:
    if os.environ.get("PLAYWRIGHT_BROWSERS_PATH"):
        return Path(os.environ["PLAYWRIGHT_BROWSERS_PATH"])
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Caches" / "ms-playwright"
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "ms-playwright"


def require_chromium() -> None:
    """Fail the test (not skip it) when Playwright or every Chromium is missing."""
    try:
        import playwright  # noqa: F401
    except ImportError:
        pytest.fail(f"browser tests need the `playwright` package: {_SETUP}", pytrace=False)
    if chromium_executable() is None and not any(_playwright_downloads().glob("chromium*")):
        pytest.fail(f"browser tests need Chromium: {_SETUP}", pytrace=False)


@contextmanager
def sync_browser(**overrides: Any) -> Iterator[Browser]:
    """A launched headless Chromium (Playwright's sync API), closed afterwards."""
    require_chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(**{**launch_options(), **overrides})
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture(scope="module", name="browser")
def browser_fixture() -> Iterator[Browser]:
    """One Chromium for a test module (importing this name makes the ``browser`` fixture)."""
    with sync_browser() as browser:
        yield browser


@pytest.fixture(scope="module", name="context")
def context_fixture() -> Iterator[Any]:
    """One browser context for a test module (the ``context`` fixture), service workers
    blocked: Playwright's routing does not see requests a worker answers
    (tests/test_client_site.py tests the worker)."""
    with sync_browser() as browser:
        context = browser.new_context(service_workers="block")
        yield context
        context.close()
