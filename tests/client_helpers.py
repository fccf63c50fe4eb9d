"""Driving the browser client with Playwright, as a person would.

- ``ClientPage``: one tab on the client: open the home view or a notebook,
  type into a cell's CodeMirror editor, press keys, read sources, states
  and outputs. Every wait is on a condition (Playwright's ``expect``),
  never a fixed sleep.
- ``new_notebook()``: a notebook with one empty code cell, made over HTTP
  (with the relay's admin token when it has one).
- ``finished_run()``: the events of a run that ended with an output, as a
  kernel pushes them; ``push_html_output()`` pushes one with an HTML output
  (no kernel needed: for tests of how outputs render).
- ``RequestLog``: every URL a browser context asked for, to prove that
  nothing but the relay was contacted.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol
from urllib.parse import urlencode

import httpx

if TYPE_CHECKING:
    from playwright.sync_api import BrowserContext, Locator, Page

#: A cold Pyodide start in Chromium takes 4-12 s on a busy 2-core machine; a
#: warm one (same context: compiled wasm cached) about 4 s.
BOOT_TIMEOUT_MS = 90_000
#: Sync and kernel round trips: milliseconds normally, seconds on a busy machine;
#: the first run of a notebook also starts its kernel.
SYNC_TIMEOUT_MS = 30_000
RUN_TIMEOUT_MS = 90_000
#: How long a tab kernel may take to come up cold (Pyodide with no snapshot, two cores).
TAB_START_MS = 60_000


class Relay(Protocol):
    """What the helpers need of a running relay (``tests.conftest.RelayProcess``)."""

    url: str
    token: str | None

    @property
    def headers(self) -> dict[str, str]: ...


def _event(name: str, **args: object) -> dict:
    return {"id": uuid.uuid4().hex, "name": name, "v": 1, "args": args}


def push(relay: Relay, notebook: str, *events: dict) -> None:
    pushed = httpx.post(
        f"{relay.url}/api/notebooks/{notebook}/events", json={"events": list(events)},
        headers=relay.headers, timeout=30,
    )  # fmt: skip
    assert pushed.status_code == 200, pushed.text


def new_notebook(relay: Relay, title: str = "e2e", source: str = "") -> str:
    """Create a notebook with one code cell over the HTTP API; return its id."""
    response = httpx.post(
        f"{relay.url}/api/notebooks", json={"title": title}, headers=relay.headers, timeout=30
    )
    assert response.status_code == 201, response.text
    notebook = response.json()["id"]
    push(
        relay,
        notebook,
        _event(
            "cellCreated", cell_id=uuid.uuid4().hex, cell_type="code", after=None, source=source
        ),
    )
    return notebook


def cell_ids(relay: Relay, notebook: str) -> list[str]:
    """The notebook's cells, in order."""
    response = httpx.get(
        f"{relay.url}/api/notebooks/{notebook}/snapshot", headers=relay.headers, timeout=30
    )
    assert response.status_code == 200, response.text
    return [cell["id"] for cell in response.json()["state"]["cells"]]


def cell_source(relay: Relay, notebook: str, index: int) -> str:
    """What the relay holds as cell ``index``'s source."""
    response = httpx.get(
        f"{relay.url}/api/notebooks/{notebook}/snapshot", headers=relay.headers, timeout=30
    )
    assert response.status_code == 200, response.text
    return response.json()["state"]["cells"][index]["source"]


def finished_run(cell_id: str, source: str, output: dict) -> list[dict]:
    """The events of one run of ``cell_id`` that ended with ``output``, as a kernel (and the
    person who asked) push them: no kernel needed to test how a run shows."""
    session, execution = uuid.uuid4().hex, uuid.uuid4().hex
    return [
        _event(
            "kernelSessionStarted", session_id=session, host="node", lease_seconds=300, label="fake"
        ),
        _event("executionRequested", execution_id=execution, cell_id=cell_id, source=source),
        _event("executionAssigned", execution_id=execution, session_id=session),
        _event("executionStarted", execution_id=execution, session_id=session, execution_count=1),
        _event("outputAdded", execution_id=execution, output=output),
        _event(
            "executionCompleted",
            execution_id=execution,
            session_id=session,
            status="ok",
            execution_count=1,
        ),
    ]


def push_html_output(relay: Relay, notebook: str, cell_id: str, html: str) -> None:
    """A run of ``cell_id`` that ended with ``html`` as its output, as a kernel would push it."""
    output = {"output_type": "display_data", "data": {"text/html": html}, "metadata": {}}
    push(relay, notebook, *finished_run(cell_id, "HTML(...)", output))


#: An HTML output whose script tries to reach the page, its storage and the relay
#: (put the relay's URL for RELAY and a token for TOKEN); it writes what happened
#: as JSON into #result: every attempt should say "blocked:…".
SANDBOX_PROBE = """<p id="result">running</p><script>
(async () => {
  const tried = {};
  async function attempt(name, fn) {
    try {
      tried[name] = "read:" + String(await fn());
    } catch (e) {
      tried[name] = "blocked:" + e.name;
    }
  }
  await attempt("parent_document", () => parent.document.body.innerHTML.length);
  await attempt("parent_storage", () => parent.localStorage.getItem("anode-secret"));
  await attempt("local_storage", () => localStorage.getItem("anode-secret"));
  await attempt("cookie", () => document.cookie);
  await attempt("indexeddb", () => indexedDB.open("anode"));
  await attempt("fetch_relay", () => fetch("RELAY/api/notebooks",
    {credentials: "include"}).then(r => r.status));
  await attempt("fetch_with_token", () => fetch("RELAY/api/notebooks",
    {headers: {authorization: "Bearer TOKEN"}}).then(r => r.status));
  document.getElementById("result").textContent = JSON.stringify(tried);
})();
</script>"""


# The editor module is the page's own (one module instance per document), and it
# can find a cell's EditorView from its DOM.
_TEXT_OF = """async (index) => {
  const cell = document.querySelectorAll(".cells > section.cell")[index];
  const content = cell && cell.querySelector(".cm-content");
  if (!content) return null;
  const editor = await import("/vendor/bundles/editor.js");
  return editor.textOf(content);
}"""


@dataclass
class RequestLog:
    """URLs a context requested that are not on ``allowed_prefix`` (data: and blob: aside)."""

    allowed_prefix: str
    outside: list[str] = field(default_factory=list)

    def attach(self, context: BrowserContext) -> RequestLog:
        def seen(request) -> None:
            url = request.url
            if not url.startswith((self.allowed_prefix, "data:", "blob:", "about:")):
                self.outside.append(url)

        context.on("request", seen)
        return self


class ClientPage:
    """One tab of the client."""

    def __init__(self, page: Page, relay: Relay, site_url: str | None = None) -> None:
        self.page = page
        self.relay = relay
        #: Where the page comes from: the relay itself, or a static site (``anode build-site``).
        self.site_url = site_url or relay.url
        self.errors: list[str] = []
        page.on("pageerror", lambda error: self.errors.append(str(error)))

    @classmethod
    def open(
        cls,
        context: BrowserContext,
        relay: Relay,
        notebook: str | None = None,
        site_url: str | None = None,
    ) -> ClientPage:
        client = cls(context.new_page(), relay, site_url)
        client.goto(notebook)
        return client

    def url(self, notebook: str | None = None, token: str | None = None) -> str:
        params = {"notebook": notebook} if notebook else {}
        if token:
            params["token"] = token
        return f"{self.site_url}/" + (f"?{urlencode(params)}" if params else "")

    def goto(self, notebook: str | None = None, token: str | None = None) -> None:
        """Open the home view or a notebook, handing over ``token`` (default: the relay's admin
        token)."""
        self.page.goto(self.url(notebook, token or self.relay.token))
        self.wait_ready()

    def reload(self) -> None:
        self.page.reload()
        self.wait_ready()

    def wait_ready(self) -> None:
        from playwright.sync_api import expect

        expect(self.page.locator("body")).to_have_attribute(
            "data-anode", "ready", timeout=BOOT_TIMEOUT_MS
        )

    # --- cells ----------------------------------------------------------------------

    @property
    def cells(self) -> Locator:
        return self.page.locator(".cells > section.cell")  # not one written in a markdown cell

    def cell(self, index: int) -> Locator:
        return self.cells.nth(index)

    def editor(self, index: int) -> Locator:
        return self.cell(index).locator(".cm-content")

    def type(self, index: int, text: str) -> None:
        """Click at the end of cell ``index``'s text and type (newlines as Enter)."""
        editor = self.editor(index)
        editor.click()
        self.page.keyboard.press("Control+End")
        self.page.keyboard.type(text)

    def source(self, index: int) -> str:
        """What cell ``index``'s editor holds: CodeMirror's own document, not the DOM's
        text (which also holds other people's carets)."""
        return self.page.evaluate(_TEXT_OF, index)

    def outputs(self, index: int) -> Locator:
        return self.cell(index).locator(".outputs")

    def expect_source(self, index: int, text: str, timeout: float = SYNC_TIMEOUT_MS) -> None:
        """Wait until cell ``index``'s editor holds exactly ``text``.

        Polled from here: ``wait_for_function`` takes an async predicate's
        promise itself for a truthy answer, so it would never wait.
        """
        deadline = time.monotonic() + timeout / 1000
        while (held := self.source(index)) != text:
            if time.monotonic() > deadline:
                raise AssertionError(f"cell {index} holds {held!r}, not {text!r}")
            time.sleep(0.05)

    def expect_status(self, index: int, status: str, timeout: float = RUN_TIMEOUT_MS) -> None:
        from playwright.sync_api import expect

        expect(self.cell(index)).to_have_attribute("data-status", status, timeout=timeout)

    def expect_online(self, online: bool, timeout: float = SYNC_TIMEOUT_MS) -> None:
        from playwright.sync_api import expect

        expect(self.page.locator(".sync-status")).to_have_attribute(
            "data-online", "true" if online else "false", timeout=timeout
        )


def expect_probe_blocked(tab: ClientPage, timeout: float) -> None:
    """Cell 0's output is ``SANDBOX_PROBE``: it ran in a sandboxed frame, sized to its
    content, and every one of its attempts to reach out was blocked."""
    from playwright.sync_api import expect

    frame = tab.outputs(0).locator("iframe.output-frame")
    expect(frame).to_have_count(1, timeout=timeout)
    assert frame.get_attribute("sandbox") == "allow-scripts"
    result = tab.outputs(0).frame_locator("iframe.output-frame").locator("#result")
    expect(result).not_to_have_text("running", timeout=SYNC_TIMEOUT_MS)
    tried = json.loads(result.inner_text())
    assert set(tried) == {
        "parent_document", "parent_storage", "local_storage", "cookie", "indexeddb",
        "fetch_relay", "fetch_with_token",
    }  # fmt: skip
    for name, outcome in tried.items():
        assert outcome.startswith("blocked:"), f"{name}: {outcome}"
    # The frame was sized to its content through postMessage.
    expect(frame).to_have_attribute("style", re.compile(r"height: \d+px"), timeout=SYNC_TIMEOUT_MS)
