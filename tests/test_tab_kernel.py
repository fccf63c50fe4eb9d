"""The tab kernel: cells run in the person's own tab (client/tab_kernel.py).

Real pages in Chromium, real Pyodide in the tab's sandboxed worker: the
static site from ``anode build-site`` with no relay, served by ``python -m
http.server``; and the relay-served page, where a tab runs offline and the
log decides when it syncs.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from anode.site import build
from kernel_headless.launch.spec import TAB_MANIFEST, tab_manifest
from tests.chromium import browser_fixture  # noqa: F401 - the *_fixture names are fixtures
from tests.client_helpers import (
    RUN_TIMEOUT_MS,
    SYNC_TIMEOUT_MS,
    TAB_START_MS,
    ClientPage,
    RequestLog,
    _event,
    cell_ids,
    new_notebook,
    push,
)
from tests.conftest import RelayProcess
from tests.kernels import (  # noqa: F401 - the *_fixture names are fixtures
    JUPYTER_CELLS,
    Notebook,
    check_jupyter_cells,
    notebooks_fixture,
    wheelhouse_fixture,
)
from tests.test_client_site import StaticServer, _free_port, _NoRelay

ROOT = Path(__file__).resolve().parent.parent

#: A cell that tries, from the tab kernel, what only the page may reach.
BREAK_IN = """
import js, json
tried = {}
def attempt(name, action):
    try:
        tried[name] = repr(action())[:80]
    except Exception as error:
        tried[name] = "blocked: " + type(error).__name__
attempt("document", lambda: js.document.cookie)
attempt("parent", lambda: js.parent.document.body)
attempt("local_storage", lambda: js.localStorage.getItem("anode-tokens:"))
attempt("indexeddb", lambda: js.indexedDB.open("anode"))
attempt("caches", lambda: js.caches.keys())
attempt("origin", lambda: js.self.origin)
tried["site_page"] = (await js.fetch("/%2e%2e/vendor/%2e%2e/index.html")).status
tried["site_api"] = (await js.fetch("/api/notebooks")).status
tried["site_file"] = (await js.fetch("/kernel_headless/files.json")).status
# The worker's own messages to the page: a snapshot ask and a snapshot of 8 bytes.
js.eval(
    "self.__asked = 'no answer'; const fromPage = port.onmessage;"
    "port.onmessage = (e) => { if (e.data && e.data.id === 999999)"
    " self.__asked = e.data.status; else fromPage(e); };"
    "port.postMessage({type: 'snapshot_get', id: 999999, material: 'planted'});"
    "port.postMessage({type: 'snapshot_put', body: new ArrayBuffer(8)});"
)
import asyncio
await asyncio.sleep(1)
tried["snapshot_ask"] = str(js.self.__asked)
print(json.dumps(tried))
"""


def test_the_tab_manifest_and_the_frame_hash_are_current() -> None:
    """``kernel_headless/files.json`` lists the kernel's files, and index.html's policy lets
    in the frame script by its hash (either going stale would stop the tab kernel)."""
    assert json.loads(TAB_MANIFEST.read_text()) == tab_manifest(), (
        "run: python -m kernel_headless.launch.spec"
    )
    glue = (ROOT / "client" / "js" / "tab_frame.js").read_bytes()
    digest = base64.b64encode(hashlib.sha256(glue).digest()).decode()
    assert f"'sha256-{digest}'" in (ROOT / "index.html").read_text()


def _new_notebook(tab: ClientPage, title: str) -> None:
    from playwright.sync_api import expect

    tab.page.fill(".new-title", title)
    tab.page.click("button.create")
    tab.page.wait_for_url(re.compile(r"\?notebook="), timeout=SYNC_TIMEOUT_MS)
    tab.wait_ready()
    expect(tab.cells).to_have_count(1, timeout=SYNC_TIMEOUT_MS)


def _run(tab: ClientPage, index: int, source: str) -> None:
    tab.editor(index).click()
    tab.page.keyboard.press("Control+End")
    tab.page.keyboard.insert_text(source)  # as pasted: the editor adds no indentation
    tab.page.keyboard.press("Control+Enter")


#: ``%pip`` in the tab, from the site's wheelhouse (``anode build-site --wheels``).
PIP_CELL = """%pip install humanize
import humanize
print(humanize.intcomma(1234567))"""


@pytest.mark.slow
def test_a_static_site_runs_cells_in_the_tab(tmp_path: Path, browser, wheelhouse: Path) -> None:
    """No relay at all: the tab's own kernel runs the cells, nothing leaves the static server,
    a cell cannot reach the page's storage or DOM, ``%pip`` installs from the site's wheels,
    and a spinning cell is interrupted."""
    from playwright.sync_api import expect

    site = tmp_path / "site"
    build(site, None, wheels=wheelhouse)
    server = StaticServer(site, _free_port())
    context = browser.new_context(service_workers="block")
    outside = RequestLog(server.url).attach(context)
    tab = ClientPage(context.new_page(), _NoRelay(), site_url=server.url)
    tab.goto()
    _new_notebook(tab, "In this tab")
    _run(tab, 0, "print(6*7)")
    expect(tab.outputs(0).locator("pre.stream")).to_have_text("42", timeout=TAB_START_MS)
    tab.expect_status(0, "done")
    expect(tab.page.locator(".kernel-status")).to_contain_text("this tab")
    assert tab.page.locator("select.run-in").is_hidden()  # no relay: nowhere else to run

    tab.page.click(".cells > section.cell >> nth=0")
    tab.page.keyboard.press("Escape")
    tab.page.keyboard.press("b")
    expect(tab.cells).to_have_count(2)
    _run(tab, 1, BREAK_IN.strip())
    expect(tab.outputs(1).locator("pre.stream")).to_contain_text("origin", timeout=RUN_TIMEOUT_MS)
    tried = json.loads(tab.outputs(1).locator("pre.stream").inner_text())
    assert tried["origin"] == "'null'", tried
    for name in ("document", "parent", "local_storage", "indexeddb", "caches"):
        assert tried[name].startswith("blocked"), tried
    # Through the page, only the site's public static files: not its page, not an API.
    assert (tried["site_page"], tried["site_api"], tried["site_file"]) == (403, 403, 200), tried
    # The page answers snapshot asks only while the worker loads, and kept no 8-byte one.
    assert tried["snapshot_ask"] == "no answer", tried
    sizes = tab.page.evaluate("""async () => {
      const cache = await caches.open("anode-tab-snapshot");
      return Promise.all((await cache.keys()).map(async (key) =>
        (await (await cache.match(key)).arrayBuffer()).byteLength));
    }""")
    assert len(sizes) <= 1 and all(size > 1_000_000 for size in sizes), sizes

    tab.page.keyboard.press("Escape")
    tab.page.keyboard.press("b")
    expect(tab.cells).to_have_count(3)
    _run(tab, 2, PIP_CELL)
    expect(tab.outputs(2)).to_contain_text("1,234,567", timeout=RUN_TIMEOUT_MS)
    expect(tab.outputs(2)).to_contain_text("Successfully installed humanize")

    _interrupt_a_spinning_cell(tab, 1)
    assert outside.outside == []
    assert tab.errors == []
    context.close()
    server.stop()


def _interrupt_a_spinning_cell(tab: ClientPage, index: int) -> None:
    from playwright.sync_api import expect

    editor = tab.editor(index)
    editor.click()
    tab.page.keyboard.press("Control+a")
    tab.page.keyboard.type("while True: pass")
    tab.page.keyboard.press("Control+Enter")
    tab.expect_status(index, "running")
    tab.page.click("button.interrupt-all")
    tab.expect_status(index, "cancelled" if _isolated(tab) else "error", timeout=10_000)
    expect(tab.outputs(index)).to_contain_text(
        "KeyboardInterrupt" if _isolated(tab) else "KernelRestarted"
    )


def _isolated(tab: ClientPage) -> bool:
    return bool(tab.page.evaluate("crossOriginIsolated"))


@pytest.mark.slow
def test_offline_runs_sync_and_count_once(
    relay_process: Callable[..., RelayProcess], browser
) -> None:
    """Online with a relay and auto kernels, a person goes offline and runs two cells: the tab
    runs them, a reload keeps their outputs, and back online a colleague sees both; the log
    shows each ran once, in the tab's session. The colleague's tab never claims them."""
    from playwright.sync_api import expect

    relay = relay_process("--kernels", "auto")
    context = browser.new_context()  # the service worker keeps the site (and the kernel's files)
    tab = ClientPage.open(context, relay)
    _new_notebook(tab, "Offline runs")
    notebook = re.search(r"notebook=([\w-]+)", tab.page.url).group(1)
    tab.expect_online(True)
    expect(tab.page.locator("body")).to_have_attribute(
        "data-offline", "ready", timeout=RUN_TIMEOUT_MS
    )
    other = ClientPage.open(browser.new_context(service_workers="block"), relay, notebook)

    context.set_offline(True)
    tab.expect_online(False)
    _run(tab, 0, "print('ran offline')")
    expect(tab.outputs(0).locator("pre.stream")).to_have_text("ran offline", timeout=TAB_START_MS)
    tab.page.keyboard.press("Escape")
    tab.page.keyboard.press("b")
    expect(tab.cells).to_have_count(2)
    _run(tab, 1, "1/0")
    expect(tab.outputs(1)).to_contain_text("ZeroDivisionError", timeout=RUN_TIMEOUT_MS)
    expect(tab.page.locator("body")).to_have_attribute("data-saving", "0")
    tab.reload()
    expect(tab.outputs(0).locator("pre.stream")).to_have_text("ran offline")
    expect(tab.outputs(1)).to_contain_text("ZeroDivisionError")

    context.set_offline(False)
    tab.expect_online(True)
    expect(tab.page.locator(".sync-status")).to_have_attribute(
        "data-unsynced", "0", timeout=SYNC_TIMEOUT_MS
    )
    expect(other.outputs(0).locator("pre.stream")).to_have_text(
        "ran offline", timeout=SYNC_TIMEOUT_MS
    )
    expect(other.outputs(1)).to_contain_text("ZeroDivisionError", timeout=SYNC_TIMEOUT_MS)
    log = httpx.get(
        f"{relay.url}/api/notebooks/{notebook}/events?after=0&limit=1000",
        headers=relay.headers,
        timeout=30,
    ).json()["events"]
    tabs = {
        e["args"]["session_id"]
        for e in log
        if e["name"] == "kernelSessionStarted" and e["args"]["host"] == "tab"
    }
    claims = [e for e in log if e["name"] == "executionAssigned"]
    starts = [e for e in log if e["name"] == "executionStarted"]
    assert len(claims) == len(starts) == 2
    assert {claim["args"]["session_id"] for claim in claims} <= tabs
    assert len({claim["args"]["execution_id"] for claim in claims}) == 2
    server_kernels = [
        e for e in log if e["name"] == "kernelSessionStarted" and e["args"]["host"] != "tab"
    ]
    assert server_kernels == []  # the relay had nothing to run: no kernel was started
    assert tab.errors == [] and other.errors == []
    context.close()


def _log(relay: RelayProcess, notebook: str) -> list[dict]:
    return httpx.get(
        f"{relay.url}/api/notebooks/{notebook}/events?after=0&limit=1000",
        headers=relay.headers,
        timeout=30,
    ).json()["events"]


@pytest.mark.slow
def test_a_colleagues_tab_never_runs_my_cells(
    relay_process: Callable[..., RelayProcess], browser
) -> None:
    """Two people, one notebook, both running cells in their own tabs. A's run asked of a tab
    waits for A's tab: B's live tab kernel sees it and never claims it; A's tab, once open,
    runs it and B sees the output. On the relay-served page (cross-origin isolated), Interrupt
    stops a spinning cell in the tab with a SIGINT, and the same kernel runs on."""
    from playwright.sync_api import expect

    relay = relay_process("--kernels", "none")
    notebook = new_notebook(relay, "Two tabs", source="print('b ran this')")
    [cell] = cell_ids(relay, notebook)
    token = httpx.post(
        f"{relay.url}/api/notebooks/{notebook}/tokens",
        json={"role": "editor", "label": "B"},
        headers=relay.headers,
        timeout=30,
    ).json()["token"]
    b = ClientPage(browser.new_context().new_page(), relay)
    b.goto(notebook, token=token)
    b.page.select_option("select.run-in", "tab")
    b.editor(0).click()
    b.page.keyboard.press("Control+Enter")
    expect(b.outputs(0).locator("pre.stream")).to_have_text("b ran this", timeout=TAB_START_MS)

    # A asks for a run in A's own tab (over the API: A's tab is not open yet).
    run = _event("executionRequested", execution_id="x" + cell[:31], cell_id=cell,
                 source="print('a ran this')", runner="tab")  # fmt: skip
    push(relay, notebook, run)
    b.expect_status(0, "queued")  # B's page, and so B's tab kernel, has it
    b.page.wait_for_timeout(2_000)
    assert len([e for e in _log(relay, notebook) if e["name"] == "executionAssigned"]) == 1

    a = ClientPage.open(browser.new_context(), relay, notebook)  # A's page starts A's tab
    expect(a.outputs(0).locator("pre.stream")).to_have_text("a ran this", timeout=TAB_START_MS)
    expect(b.outputs(0).locator("pre.stream")).to_have_text("a ran this", timeout=SYNC_TIMEOUT_MS)
    log = _log(relay, notebook)
    sessions = {
        e["args"]["session_id"]: e["actor"] for e in log if e["name"] == "kernelSessionStarted"
    }
    b_claim, a_claim = [e for e in log if e["name"] == "executionAssigned"]
    assert a_claim["args"]["execution_id"] == run["args"]["execution_id"]
    assert sessions[a_claim["args"]["session_id"]] == a_claim["actor"] != b_claim["actor"]

    assert _isolated(b)
    _interrupt_a_spinning_cell(b, 0)
    b.editor(0).click()
    b.page.keyboard.press("Control+a")
    b.page.keyboard.insert_text("print('after')")
    b.page.keyboard.press("Control+Enter")
    expect(b.outputs(0).locator("pre.stream")).to_have_text("after", timeout=RUN_TIMEOUT_MS)
    assert a.errors == [] and b.errors == []


@pytest.mark.slow
def test_the_tab_kernel_does_what_the_server_kernels_do(
    relay_process: Callable[..., RelayProcess], notebooks, browser
) -> None:
    """The server kernels' Jupyter cells (results, ``;``, top-level await, display and its
    updates by id, clear_output, stderr, errors with the person's lines, input(), 100,000
    prints, the output cap), asked of this person's tab: its kernel runs them, as Jupyter
    would, and they reach the relay through the page."""
    relay = relay_process("--kernels", "none")
    notebook: Notebook = notebooks(relay.url, relay.token)
    tab = ClientPage.open(browser.new_context(), relay, notebook.id)
    sources = list(JUPYTER_CELLS.values())
    ids = dict(zip(JUPYTER_CELLS, notebook.run_many(sources, runner="tab"), strict=True))
    notebook.wait_done(*ids.values(), timeout=180)
    check_jupyter_cells(notebook, ids)
    log = _log(relay, notebook.id)
    hosts = [e["args"]["host"] for e in log if e["name"] == "kernelSessionStarted"]
    assert hosts == ["tab"]
    assert tab.errors == []
