"""How the page starts: a first start makes a Pyodide memory snapshot while the person pauses,
never while they type, and the next start restores it.

Real relay (``anode serve``, no kernels), real Chromium, real Cache Storage.
"""

from __future__ import annotations

import pytest

from tests.chromium import browser_fixture  # noqa: F401 - the *_fixture names are fixtures
from tests.client_helpers import ClientPage, new_notebook
from tests.conftest import module_relay

pytestmark = pytest.mark.slow

relay = module_relay("client-boot", "--kernels", "none")

#: Notes every value ``<body data-snapshot>`` takes (added before the page's own scripts).
_RECORD_SNAPSHOT_STATES = """
window.__snapshotStates = [];
new MutationObserver(() => window.__snapshotStates.push(document.body.dataset.snapshot)).observe(
  document, {subtree: true, attributes: true, attributeFilter: ["data-snapshot"]}
);
"""

#: The snapshot worker waits this long without input (client/interpreter.mjs ``PAUSE_MS``).
PAUSE_MS = 2000

#: A worker loads a whole Pyodide: slow on a loaded two-core machine.
SNAPSHOT_TIMEOUT_MS = 120_000


def _states(tab: ClientPage) -> list[str]:
    return tab.page.evaluate("window.__snapshotStates")


def test_the_snapshot_is_made_in_a_pause_and_restored_next_time(relay, browser) -> None:
    """Typing keeps the snapshot worker away (it would take a core); a key stops a running one;
    once made, the next tab starts from it, without JSPI (client/startup.js)."""
    from playwright.sync_api import expect

    context = browser.new_context(service_workers="block")
    context.add_init_script(_RECORD_SNAPSHOT_STATES)
    notebook = new_notebook(relay, "boot", source="x = 1")
    tab = ClientPage.open(context, relay, notebook)
    body = tab.page.locator("body")
    expect(body).to_have_attribute("data-snapshot", "waiting")  # a cold start: nothing cached yet

    # Typing for twice the pause: the worker never starts meanwhile.
    tab.editor(0).click()
    tab.page.keyboard.press("Control+End")
    for _ in range(10):
        tab.page.keyboard.type("a")
        tab.page.wait_for_timeout(PAUSE_MS // 5)
    assert _states(tab) == ["none", "waiting"]

    # Once it runs, a key stops it; it starts over at the next pause.
    tab.page.wait_for_function("document.body.dataset.snapshot === 'making'", polling="raf", timeout=30_000)
    tab.page.keyboard.type("b")
    expect(body).to_have_attribute("data-snapshot", "waiting")
    expect(body).to_have_attribute("data-snapshot", "ready", timeout=SNAPSHOT_TIMEOUT_MS)
    assert _states(tab) == ["none", "waiting", "making", "waiting", "making", "ready"]
    assert tab.page.evaluate("'Suspending' in WebAssembly") is False
    assert tab.errors == []

    second = ClientPage.open(context, relay, notebook)
    expect(second.page.locator("body")).to_have_attribute("data-snapshot", "used")
    second.expect_source(0, "x = 1" + "a" * 10 + "b")
    second.type(0, "c")
    tab.expect_source(0, "x = 1" + "a" * 10 + "bc")
    assert second.errors == []
    context.close()
