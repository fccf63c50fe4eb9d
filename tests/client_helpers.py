"""Driving the browser client with Playwright, as a person would.

- ``ClientPage``: one tab on the client: open the home view or a notebook,
  type into a cell's CodeMirror editor, press keys, read sources, states
  and outputs. Every wait is on a condition (Playwright's ``expect``),
  never a fixed sleep.
- ``new_notebook()``: a notebook with one empty code cell, made over HTTP.
- ``RequestLog``: every URL a browser context asked for, to prove that
  nothing but the relay was contacted.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

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


def new_notebook(relay_url: str, title: str = "e2e", source: str = "") -> str:
    """Create a notebook with one code cell over the HTTP API; return its id."""
    response = httpx.post(f"{relay_url}/api/notebooks", json={"title": title}, timeout=30)
    assert response.status_code == 201, response.text
    notebook = response.json()["id"]
    cell = {
        "id": uuid.uuid4().hex,
        "name": "cellCreated",
        "v": 1,
        "args": {"cell_id": uuid.uuid4().hex, "cell_type": "code", "after": None, "source": source},
    }
    pushed = httpx.post(f"{relay_url}/api/notebooks/{notebook}/events", json={"events": [cell]}, timeout=30)
    assert pushed.status_code == 200, pushed.text
    return notebook


# The editor module is the page's own (one module instance per document), and it
# can find a cell's EditorView from its DOM.
_TEXT_OF = """async (index) => {
  const cell = document.querySelectorAll("section.cell")[index];
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

    def __init__(self, page: Page, relay_url: str) -> None:
        self.page = page
        self.relay_url = relay_url
        self.errors: list[str] = []
        page.on("pageerror", lambda error: self.errors.append(str(error)))

    @classmethod
    def open(cls, context: BrowserContext, relay_url: str, notebook: str | None = None) -> ClientPage:
        client = cls(context.new_page(), relay_url)
        client.goto(notebook)
        return client

    def goto(self, notebook: str | None = None) -> None:
        url = f"{self.relay_url}/" + (f"?notebook={notebook}" if notebook else "")
        self.page.goto(url)
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
        return self.page.locator("section.cell")

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
        """Wait until cell ``index``'s editor holds exactly ``text``."""
        try:
            self.page.wait_for_function(
                f"async ([index, text]) => ({_TEXT_OF})(index).then(t => t === text)",
                arg=[index, text],
                timeout=timeout,
            )
        except Exception as error:
            raise AssertionError(f"cell {index} holds {self.source(index)!r}, not {text!r}") from error

    def expect_status(self, index: int, status: str, timeout: float = RUN_TIMEOUT_MS) -> None:
        from playwright.sync_api import expect

        expect(self.cell(index)).to_have_attribute("data-status", status, timeout=timeout)

    def expect_online(self, online: bool, timeout: float = SYNC_TIMEOUT_MS) -> None:
        from playwright.sync_api import expect

        expect(self.page.locator(".sync-status")).to_have_attribute(
            "data-online", "true" if online else "false", timeout=timeout
        )
