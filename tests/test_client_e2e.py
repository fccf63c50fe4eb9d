"""The browser client end to end: Chromium, a real relay, real auto-started kernels.

The browser tests share one relay (``anode serve``, kernels auto-started)
and two browser contexts, "alice" and "bob" (two people: separate cookies,
storage and IndexedDB). Each test opens its own notebook and its own tabs.
Sharing the contexts keeps the suite fast: Chromium caches Pyodide's
compiled WebAssembly per context, so only the first tab of each pays for a
cold start.

The first tests need no browser: the page's PyScript config must list every
Python file it loads, and nothing the page loads may come from the internet.
"""

from __future__ import annotations

import json
import re
import time

import httpx
import pytest

from shared_schema.state import NotebookState
from tests.chromium import browser_fixture  # noqa: F401 - the *_fixture names are fixtures
from tests.client_helpers import (
    RUN_TIMEOUT_MS,
    SANDBOX_PROBE,
    SYNC_TIMEOUT_MS,
    ClientPage,
    RequestLog,
    _event,
    cell_ids,
    cell_source,
    expect_probe_blocked,
    new_notebook,
    push,
)
from tests.conftest import REPO_ROOT, RelayProcess, module_relay
from tests.kernels import wait_until

# --- the page's files ------------------------------------------------------------------


def test_pyscript_config_lists_every_python_file() -> None:
    """client/pyscript.json's ``anode_files`` names each module of shared_schema and client
    (main.py runs itself): client/js/interpreter.mjs writes those into Pyodide's FS, and
    client/js/snapshot.js imports them into a snapshot. PyScript's own ``files`` is not used:
    it would fetch them all a second time."""
    config = json.loads((REPO_ROOT / "client" / "pyscript.json").read_text())
    assert "files" not in config
    listed = sorted(config["anode_files"].values())
    expected = sorted(
        f"./{path.relative_to(REPO_ROOT).as_posix()}"
        for package in ("shared_schema", "client")
        for path in (REPO_ROOT / package).glob("*.py")
        if path.name != "main.py"
    )
    assert listed == expected, "update client/pyscript.json's anode_files to match the packages"
    for source, target in config["anode_files"].items():
        assert (REPO_ROOT / "client" / source).resolve() == (REPO_ROOT / target).resolve()
    # PyScript resolves `interpreter` against the page (index.html, the site's root),
    # the rest against the config.
    assert (REPO_ROOT / config["interpreter"]).is_file()
    assert sorted(config["js_modules"]["main"].values()) == ["editor", "markdown"]


def test_page_names_no_remote_url() -> None:
    """No CDN: the page, its config, its Python and the editor glue name no http(s) URL."""
    files = [REPO_ROOT / "index.html", *(REPO_ROOT / "client").rglob("*.*")]
    for path in files:
        if path.suffix in (".html", ".json", ".py", ".mjs", ".js", ".css"):
            assert not re.search(r"https?://", path.read_text()), f"{path} names a remote URL"


# --- in a browser ---------------------------------------------------------------------------


relay = module_relay("client-e2e")


@pytest.fixture(scope="module")
def requests_outside(relay: RelayProcess) -> RequestLog:
    return RequestLog(relay.url)


# Service workers blocked: Playwright's routing (the offline test) does not see
# requests a service worker answers. tests/test_client_site.py tests the worker.
@pytest.fixture(scope="module")
def alice(browser, requests_outside: RequestLog):
    context = browser.new_context(service_workers="block")
    requests_outside.attach(context)
    yield context
    context.close()


@pytest.fixture(scope="module")
def bob(browser, requests_outside: RequestLog):
    context = browser.new_context(service_workers="block")
    requests_outside.attach(context)
    yield context
    context.close()


@pytest.mark.slow
def test_create_type_run_from_home(
    relay: RelayProcess, alice, requests_outside: RequestLog
) -> None:
    """Home → new notebook → type print(1) → Shift+Enter → 1 appears, the next cell has focus."""
    from playwright.sync_api import expect

    tab = ClientPage.open(alice, relay)
    tab.page.fill(".new-title", "First steps")
    tab.page.click("button.create")
    tab.page.wait_for_url(re.compile(r"\?notebook="), timeout=SYNC_TIMEOUT_MS)
    tab.wait_ready()
    expect(tab.cells).to_have_count(1, timeout=SYNC_TIMEOUT_MS)
    expect(tab.page.locator("input.title")).to_have_value("First steps", timeout=SYNC_TIMEOUT_MS)
    tab.type(0, "print(1)")
    tab.page.keyboard.press("Shift+Enter")
    expect(tab.outputs(0).locator("pre.stream")).to_have_text("1", timeout=RUN_TIMEOUT_MS)
    tab.expect_status(0, "done")
    expect(tab.cell(0).locator(".prompt")).to_have_text("[1]:")
    expect(tab.cell(0).locator(".cell-status")).to_contain_text("kernel")
    # Shift+Enter on the last cell added one below and moved there, as in Jupyter.
    expect(tab.cells).to_have_count(2)
    expect(tab.cell(1).locator(".cm-editor")).to_have_class(re.compile("cm-focused"))
    expect(tab.page.locator(".kernel-status")).to_have_attribute("data-status", "idle")
    tab.expect_online(True)
    # The home view lists it; a notebook the relay does not have says so.
    tab.goto()
    expect(tab.page.locator(".notebooks li a", has_text="First steps")).to_be_visible()
    tab.goto("no-such-notebook")
    expect(tab.page.locator(".unknown-notebook")).to_contain_text("no notebook 'no-such-notebook'")
    assert requests_outside.outside == []
    assert tab.errors == []
    tab.page.close()


def _in_order(keys: str, text: str) -> bool:
    """``keys`` is a subsequence of ``text``."""
    remaining = iter(text)
    return all(char in remaining for char in keys)


@pytest.mark.slow
def test_two_people_see_each_other_live(relay: RelayProcess, alice, bob) -> None:
    """Source, state and output travel live; typing at once in one cell loses nothing."""
    from playwright.sync_api import expect

    notebook = new_notebook(relay, "together")
    a = ClientPage.open(alice, relay, notebook)
    b = ClientPage.open(bob, relay, notebook)
    a.type(0, "x = 6 * 7\nprint(x)")
    b.expect_source(0, "x = 6 * 7\nprint(x)")
    a.page.keyboard.press("Control+Enter")
    expect(b.outputs(0).locator("pre.stream")).to_have_text("42", timeout=RUN_TIMEOUT_MS)
    b.expect_status(0, "done")

    # Bob adds a cell below; Alice sees it appear and both type into it at once.
    b.cell(0).locator("button.add-below").click()
    expect(a.cells).to_have_count(2, timeout=SYNC_TIMEOUT_MS)
    a.editor(1).click()
    b.editor(1).click()
    a.page.keyboard.type("aaaa")
    b.page.keyboard.type("bbbb")
    a.page.keyboard.type("AA")
    b.page.keyboard.type("BB")
    for tab in (a, b):
        expect(tab.page.locator(".sync-status")).to_have_attribute(
            "data-unsynced", "0", timeout=SYNC_TIMEOUT_MS
        )
    a.expect_source(1, b.source(1))
    final = a.source(1)
    assert sorted(final) == sorted("aaaaAAbbbbBB"), final  # every key from both, nothing twice
    # Each person's keys keep their order (runs may interleave where both typed at one spot).
    assert _in_order("aaaaAA", final) and _in_order("bbbbBB", final), final

    # Presence: each sees the other in the header, on the cell, and as a caret in its editor.
    alice_name = a.page.evaluate("localStorage.getItem('anode-name')")
    assert alice_name.startswith("Guest ")
    expect(b.page.locator(".people .person")).to_have_count(1, timeout=SYNC_TIMEOUT_MS)
    expect(b.cell(1).locator(".person-tag")).to_have_text(alice_name, timeout=SYNC_TIMEOUT_MS)
    expect(b.cell(1).locator(".cm-remote-caret")).to_have_count(1, timeout=SYNC_TIMEOUT_MS)
    expect(a.cell(1).locator(".cm-remote-caret")).to_have_count(1, timeout=SYNC_TIMEOUT_MS)
    # Alice picks her name (kept in her browser for next time); Bob sees it at once.
    expect(a.page.locator(".my-name")).to_have_value(alice_name)
    a.page.fill(".my-name", "  Alice   Liddell ")
    a.page.press(".my-name", "Enter")
    expect(a.page.locator(".my-name")).to_have_value("Alice Liddell")
    assert a.page.evaluate("localStorage.getItem('anode-name')") == "Alice Liddell"
    expect(b.page.locator(".people .person")).to_have_attribute(
        "title", "Alice Liddell", timeout=SYNC_TIMEOUT_MS
    )
    expect(b.cell(1).locator(".person-tag")).to_have_text("Alice Liddell", timeout=SYNC_TIMEOUT_MS)
    a.goto()  # Alice leaves the notebook: Bob sees her go at once
    expect(b.page.locator(".people .person")).to_have_count(0, timeout=SYNC_TIMEOUT_MS)
    expect(b.cell(1).locator(".cm-remote-caret")).to_have_count(0)
    assert a.errors == [] and b.errors == []
    a.page.close()
    b.page.close()


#: Notes every text the sync indicator shows, and every count it carries.
_RECORD_SYNC_STATUS = """() => {
  const status = document.querySelector(".sync-status");
  window.__syncTexts = [status.textContent];
  window.__syncCounts = [status.dataset.unsynced];
  new MutationObserver(() => {
    window.__syncTexts.push(status.textContent);
    window.__syncCounts.push(status.dataset.unsynced);
  }).observe(status, {attributes: true, childList: true, characterData: true, subtree: true});
}"""


@pytest.mark.slow
def test_the_sync_count_shows_only_when_events_wait(relay: RelayProcess, alice) -> None:
    """Keystrokes that go out at once never flash "1 to sync"; a push the relay is slow to
    answer shows the count after a second, and it goes once the push is answered."""
    notebook = new_notebook(relay, "indicator", source="")
    tab = ClientPage.open(alice, relay, notebook)
    tab.expect_online(True)
    tab.page.evaluate(_RECORD_SYNC_STATUS)
    tab.type(0, "quick = 1")
    tab.expect_source(0, "quick = 1")
    tab.page.wait_for_function(
        "() => document.querySelector('.sync-status').dataset.unsynced === '0'"
    )
    texts, counts = tab.page.evaluate("[window.__syncTexts, window.__syncCounts]")
    assert set(texts) == {"online"} and "1" in counts, (texts, counts)

    def slow_answer(route) -> None:
        if route.request.method == "POST":
            time.sleep(2.5)  # the relay is slow: the page waits on this push meanwhile
        route.continue_()

    events = re.compile(r"/api/notebooks/[^/]+/events$")
    tab.page.route(events, slow_answer)
    tab.type(0, "\nslow = 2")
    unsynced = "document.querySelector('.sync-status').dataset.unsynced"
    tab.page.wait_for_function(f"() => {unsynced} !== '0'")  # the keys are in; the push hangs 2.5 s
    tab.page.wait_for_function(f"() => {unsynced} === '0'", timeout=SYNC_TIMEOUT_MS)
    texts = tab.page.evaluate("window.__syncTexts")
    # 1 or 2: keys typed while the push hangs wait in the cell's buffer, which counts as one.
    assert any(re.fullmatch(r"online · [12] to sync", text) for text in texts), texts
    assert texts[-1] == "online", texts
    tab.page.unroute(events, slow_answer)
    assert cell_source(relay, notebook, 0) == "quick = 1\nslow = 2"
    assert tab.errors == []
    tab.page.close()


def _cell_rev(relay: RelayProcess, notebook: str, cell_id: str) -> int:
    """The cell's revision at the relay (the internal form carries it)."""
    state = httpx.get(
        f"{relay.url}/api/notebooks/{notebook}/snapshot", params={"form": "internal"},
        headers=relay.headers, timeout=30,
    ).json()["state"]  # fmt: skip
    return NotebookState.load(state).cells[cell_id].rev


@pytest.mark.slow
def test_a_carriage_return_never_splits_the_editor_from_the_log(relay: RelayProcess, alice) -> None:
    """A source with ``\r\n`` and a lone ``\r`` (an API insert) shows, types and takes remote
    edits past them exactly as the log has it: one line ending, ``\n``, everywhere."""
    notebook = new_notebook(relay, "line endings", source="a = 1\r\nb = 2\rc = 3")
    tab = ClientPage.open(alice, relay, notebook)
    tab.expect_source(0, "a = 1\nb = 2\nc = 3")
    assert cell_source(relay, notebook, 0) == "a = 1\nb = 2\nc = 3"
    tab.type(0, "  # mine")
    tab.expect_source(0, "a = 1\nb = 2\nc = 3  # mine")
    wait_until(
        lambda: cell_source(relay, notebook, 0) == "a = 1\nb = 2\nc = 3  # mine", 10, "the log"
    )
    cell = cell_ids(relay, notebook)[0]
    rev = _cell_rev(relay, notebook, cell)
    remote = _event("cellSourceEdited", cell_id=cell, base_rev=rev, ops=[12, "d = 4\r\n", 13])
    push(relay, notebook, remote)  # past both line ends, with one of its own
    expected = "a = 1\nb = 2\nd = 4\nc = 3  # mine"
    tab.expect_source(0, expected)
    assert cell_source(relay, notebook, 0) == expected
    tab.type(0, "!")
    wait_until(lambda: cell_source(relay, notebook, 0) == expected + "!", 10, "the log")
    assert tab.errors == []


@pytest.mark.slow
def test_offline_edits_survive_reload_and_sync(relay: RelayProcess, alice, bob) -> None:
    """Edit and add a cell offline, reload with the relay unreachable, come back: it all lands."""
    from playwright.sync_api import expect

    notebook = new_notebook(relay, "offline", source="base = 1")
    watcher = ClientPage.open(alice, relay, notebook)
    tab = ClientPage.open(bob, relay, notebook)
    tab.expect_source(0, "base = 1")
    tab.expect_online(True)

    bob.set_offline(True)
    tab.expect_online(False)
    tab.type(0, "\nedited = 2")
    tab.cell(0).locator("button.add-below").click()
    expect(tab.cells).to_have_count(2)
    tab.type(1, "added = 3")
    expect(tab.page.locator(".sync-status")).not_to_have_attribute("data-unsynced", "0")
    expect(tab.page.locator(".sync-status")).to_have_text(
        re.compile(r"offline · \d+ to sync")
    )  # at once
    expect(tab.page.locator("body")).to_have_attribute("data-saving", "0")  # all in IndexedDB

    # Reload while the relay cannot be reached: the page's files come over the
    # network (the service worker is blocked here), the notebook from IndexedDB.
    def unreachable(route) -> None:
        route.abort("internetdisconnected")

    bob.route(re.compile(r"/api/"), unreachable)
    bob.set_offline(False)
    tab.reload()
    expect(tab.cells).to_have_count(2)
    tab.expect_source(0, "base = 1\nedited = 2")
    tab.expect_source(1, "added = 3")
    tab.expect_online(False)
    watcher.expect_source(0, "base = 1")
    expect(watcher.cells).to_have_count(1)

    bob.unroute(re.compile(r"/api/"), unreachable)
    tab.expect_online(True)
    expect(tab.page.locator(".sync-status")).to_have_attribute(
        "data-unsynced", "0", timeout=SYNC_TIMEOUT_MS
    )
    expect(watcher.cells).to_have_count(2, timeout=SYNC_TIMEOUT_MS)
    watcher.expect_source(0, "base = 1\nedited = 2")
    watcher.expect_source(1, "added = 3")
    assert tab.errors == [] and watcher.errors == []
    tab.page.close()
    watcher.page.close()


@pytest.mark.slow
def test_html_output_runs_sandboxed(relay: RelayProcess, alice) -> None:
    """An output's script runs, but reaches neither the page, its storage, its cookies nor the
    network.

    The probe is ``tests/test_client_security.py``'s, here made by a real kernel
    through ``IPython.display.HTML``; it even knows the page's token."""

    probe = SANDBOX_PROBE.replace("RELAY", relay.url).replace("TOKEN", relay.token or "")
    source = f"from IPython.display import HTML\nHTML({probe!r})"
    notebook = new_notebook(relay, "sandbox", source=source)
    tab = ClientPage.open(alice, relay, notebook)
    tab.page.evaluate(
        "localStorage.setItem('anode-secret', 'token'); document.cookie = 'anode=secret'"
    )
    tab.editor(0).click()
    tab.page.keyboard.press("Control+Enter")
    expect_probe_blocked(tab, RUN_TIMEOUT_MS)
    assert tab.errors == []
    tab.page.close()


@pytest.mark.slow
def test_jupyter_keys(relay: RelayProcess, alice) -> None:
    """Esc, B, A, M, Y, DD, Up/Down between cells and Alt+Enter do what Jupyter users expect."""
    from playwright.sync_api import expect

    notebook = new_notebook(relay, "keys", source="first")
    tab = ClientPage.open(alice, relay, notebook)
    keys = tab.page.keyboard
    tab.editor(0).click()
    keys.press("Escape")  # command mode, cell 0 selected
    expect(tab.cell(0)).to_have_class(re.compile(r"\bselected\b"))
    keys.press("b")  # a cell below, in edit mode
    expect(tab.cells).to_have_count(2)
    keys.type("second")
    tab.expect_source(1, "second")
    keys.press("Escape")
    keys.press("a")  # a cell above the selected one
    expect(tab.cells).to_have_count(3)
    markdown = "# Middle\n<img src=x onerror=window.pwned++>"
    keys.type(markdown)
    tab.expect_source(1, markdown)
    keys.press("Escape")
    keys.press("m")
    expect(tab.cell(1)).to_have_attribute("data-cell-type", "markdown")
    keys.press("Shift+Enter")  # "runs" the markdown: rendered, sanitized; the next cell is edited
    rendered = tab.cell(1).locator(".markdown-rendered")
    expect(rendered.locator("h1")).to_have_text("Middle")
    expect(rendered.locator("img")).not_to_have_attribute("onerror", re.compile(".*"))
    expect(tab.cell(1).locator(".editor")).to_be_hidden()
    expect(tab.cell(2).locator(".cm-editor")).to_have_class(re.compile("cm-focused"))
    keys.press("Escape")
    keys.press("ArrowUp")
    keys.press("Enter")  # edit mode shows the source again
    expect(tab.cell(1).locator(".cm-editor")).to_have_class(re.compile("cm-focused"))
    expect(rendered).to_be_hidden()
    keys.press("Escape")
    keys.press("y")
    expect(tab.cell(1)).to_have_attribute("data-cell-type", "code")
    expect(tab.cell(1).locator(".editor")).to_be_visible()
    assert tab.page.evaluate("window.pwned") is None
    keys.press("d")
    keys.press("d")
    expect(tab.cells).to_have_count(2)
    tab.expect_source(0, "first")
    tab.expect_source(1, "second")
    # Up on the first line moves to the cell above, Down on the last to the one below.
    tab.editor(1).click()
    keys.press("ArrowUp")
    expect(tab.cell(0).locator(".cm-editor")).to_have_class(re.compile("cm-focused"))
    keys.press("ArrowDown")
    expect(tab.cell(1).locator(".cm-editor")).to_have_class(re.compile("cm-focused"))
    # Alt+Enter runs and inserts a cell right below, with the cursor in it.
    keys.press("Control+End")
    keys.type(" = 2")
    keys.press("Alt+Enter")
    expect(tab.cells).to_have_count(3)
    expect(tab.cell(2).locator(".cm-editor")).to_have_class(re.compile("cm-focused"))
    tab.expect_status(1, "done")
    assert tab.errors == []
    tab.page.close()


@pytest.mark.slow
def test_run_all_interrupt_restart_clear(relay: RelayProcess, bob) -> None:
    """The header's controls: run all, interrupt, restart the kernel, clear outputs."""
    from playwright.sync_api import expect

    notebook = new_notebook(relay, "controls", source="a = 20")
    tab = ClientPage.open(bob, relay, notebook)
    tab.cell(0).locator("button.add-below").click()
    tab.type(1, "print(a + 22)")
    tab.page.click("button.run-all")
    expect(tab.outputs(1).locator("pre.stream")).to_have_text("42", timeout=RUN_TIMEOUT_MS)
    expect(tab.cell(0).locator(".prompt")).to_have_text("[1]:")
    expect(tab.cell(1).locator(".prompt")).to_have_text("[2]:")

    tab.page.click("button.clear-all")
    expect(tab.outputs(1).locator(".output")).to_have_count(0, timeout=SYNC_TIMEOUT_MS)

    tab.cell(1).locator("button.add-below").click()
    tab.type(2, "print('spinning')\nwhile True: pass")
    tab.page.keyboard.press("Control+Enter")
    # Interrupt once the loop really runs (its print is out): an interrupt that lands
    # within ~0.1 s of the kernel's executionStarted can be missed (a kernel race, reported).
    expect(tab.outputs(2).locator("pre.stream")).to_have_text("spinning", timeout=RUN_TIMEOUT_MS)
    tab.expect_status(2, "running")
    tab.page.click("button.interrupt-all")
    tab.expect_status(2, "cancelled")

    kernel = tab.page.locator(".kernel-status")
    expect(kernel).to_have_attribute("data-restarts", "0")
    tab.page.click("button.restart")
    expect(kernel).to_have_attribute("data-restarts", "1", timeout=RUN_TIMEOUT_MS)
    tab.cell(0).locator("button.run").click()
    tab.expect_status(0, "done")
    expect(tab.cell(0).locator(".prompt")).to_have_text("[1]:")  # a fresh interpreter counts from 1
    assert tab.errors == []
    tab.page.close()


#: Notes every value ``<body data-snapshot>`` takes (added before the page's own scripts).
_RECORD_SNAPSHOT_STATES = """
window.__snapshotStates = [];
new MutationObserver(() => window.__snapshotStates.push(document.body.dataset.snapshot)).observe(
  document, {subtree: true, attributes: true, attributeFilter: ["data-snapshot"]}
);
"""

#: The snapshot worker waits this long without input (client/js/interpreter.mjs ``PAUSE_MS``).
SNAPSHOT_PAUSE_MS = 2000


@pytest.mark.slow
def test_a_snapshot_is_made_in_a_pause_and_restored_by_the_next_start(
    relay: RelayProcess, browser
) -> None:
    """A first start with no snapshot shipped makes a Pyodide memory snapshot
    (client/js/snapshot.js) when input pauses: typing keeps the worker away (it takes a core
    for seconds) and a key stops a running one. The next start, still through PyScript,
    restores it, without JSPI, and edits and syncs."""
    from playwright.sync_api import expect

    notebook = new_notebook(relay, "snapshot", source="x = 1")
    context = browser.new_context(service_workers="block")
    # As a relay that ships none (before `make setup` made one):
    context.route("**/snapshot/index.json", lambda route: route.fulfill(json={"snapshots": []}))
    context.add_init_script(_RECORD_SNAPSHOT_STATES)
    console: list[str] = []
    context.on(
        "console",
        lambda m: console.append(m.text) if m.type == "error" or "anode:" in m.text else None,
    )
    first = ClientPage.open(context, relay, notebook)
    body = first.page.locator("body")
    expect(body).to_have_attribute("data-snapshot", "waiting")  # a cold start: nothing cached yet

    def states() -> list[str]:
        return first.page.evaluate("window.__snapshotStates")

    first.type(0, "a")
    for _ in range(9):  # typing for twice the pause: the worker never starts meanwhile
        first.page.wait_for_timeout(SNAPSHOT_PAUSE_MS // 5)
        first.page.keyboard.type("a")
    assert states() == ["none", "waiting"]
    first.page.wait_for_function(
        "document.body.dataset.snapshot === 'making'", polling="raf", timeout=30_000
    )
    first.page.keyboard.type("b")  # stops it; it starts over at the next pause
    expect(body).to_have_attribute("data-snapshot", "waiting")
    expect(body).to_have_attribute("data-snapshot", "ready", timeout=RUN_TIMEOUT_MS)
    assert states() == ["none", "waiting", "making", "waiting", "making", "ready"]

    second = ClientPage.open(context, relay, notebook)
    expect(second.page.locator("body")).to_have_attribute("data-snapshot", "used")
    assert second.page.locator("script-py").count() == 1  # PyScript ran client/main.py
    assert second.page.evaluate("'Suspending' in WebAssembly") is False  # client/js/startup.js
    second.expect_source(0, "x = 1" + "a" * 10 + "b")
    second.type(0, "\ny = 2")
    first.expect_source(0, "x = 1" + "a" * 10 + "b\ny = 2")
    assert first.errors == [] and second.errors == [] and console == []
    context.close()


@pytest.mark.slow
def test_a_first_visit_starts_from_the_snapshot_the_relay_ships(
    relay: RelayProcess, browser
) -> None:
    """``make setup`` makes the page's snapshot (anode/page_snapshot.py) and the relay serves
    it: a browser that has never seen the page starts Python from it, keeps it, and the next
    tab starts from its own copy. No snapshot worker runs, and the page works as ever."""
    from playwright.sync_api import expect

    shipped = sorted((REPO_ROOT / "vendor" / "snapshot").glob("*.gz"))
    assert shipped, "no page snapshot in vendor/snapshot: run `make setup`"
    notebook = new_notebook(relay, "shipped", source="x = 1")
    context = browser.new_context(service_workers="block")
    context.add_init_script(_RECORD_SNAPSHOT_STATES)
    asked: list[str] = []
    context.on("request", lambda request: asked.append(request.url))
    first = ClientPage.open(context, relay, notebook)
    expect(first.page.locator("body")).to_have_attribute("data-snapshot", "shipped")
    assert [url for url in asked if "/snapshot/" in url] == [
        f"{relay.url}/snapshot/index.json",
        f"{relay.url}/snapshot/{shipped[-1].name}",
    ]
    first.type(0, "\ny = 2")
    first.page.wait_for_timeout(SNAPSHOT_PAUSE_MS + 500)  # time enough for a worker to start
    assert first.page.evaluate("window.__snapshotStates") == ["shipped"]

    asked.clear()
    second = ClientPage.open(context, relay, notebook)
    expect(second.page.locator("body")).to_have_attribute("data-snapshot", "used")
    assert [url for url in asked if "/snapshot/" in url] == []  # from Cache Storage
    second.expect_source(0, "x = 1\ny = 2")
    second.type(0, "\nz = 3")
    first.expect_source(0, "x = 1\ny = 2\nz = 3")
    assert first.errors == [] and second.errors == []
    context.close()
