"""The browser client's credentials and defences, in Chromium against a real relay.

- A ``?token=`` link: the token is kept, cleared from the address bar, sent
  as ``Authorization: Bearer`` on every API request (the event stream too)
  and never in a URL.
- No token: the page asks for one, and a pasted link is enough.
- A viewer's link (made in the share dialog) opens the notebook read-only.
- The page's Content-Security-Policy allows no inline script, yet Pyodide
  starts; an HTML output's scripts still run, in a sandboxed frame that
  reaches neither the page, nor its storage, nor the network.

The relay runs with auth on and ``--kernels none``: outputs are pushed as a
kernel would push them (``push_html_output``), so nothing here waits for a
kernel. The first tests need no browser.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator

import pytest

from client import sse
from client.links import page_link, parse_credential, query, share_link
from client.sse import Message, Parser
from tests.chromium import browser_fixture  # noqa: F401 - the *_fixture names are fixtures
from tests.client_helpers import (
    SANDBOX_PROBE,
    SYNC_TIMEOUT_MS,
    ClientPage,
    _event,
    cell_ids,
    expect_probe_blocked,
    finished_run,
    new_notebook,
    push,
    push_html_output,
)
from tests.conftest import RelayProcess

# --- pure parts ------------------------------------------------------------------------


def test_sse_parser_handles_any_chunking() -> None:
    """Fields, multi-line data, comments (pings) and CRLF split anywhere give the same messages."""
    stream = (
        ": ping\r\n\r\nevent: events\r\nid: 7\r\ndata: [1,\r\ndata: 2]\r\n\r\n"
        "event: presence\ndata: {}\n\nretry: 500\n\ndata:no-space\r\r\n"
    )
    expected = [
        Message("events", "[1,\n2]", "7"),
        Message("presence", "{}", "7"),
        Message("message", "no-space", "7"),
    ]
    for size in (1, 2, 3, 7, len(stream)):
        parser = Parser()
        got = [
            m
            for start in range(0, len(stream), size)
            for m in parser.feed(stream[start : start + size])
        ]
        assert got == expected, size
        assert parser.retry_ms == 500


def test_sse_parser_reads_a_long_line_in_small_chunks_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A 4 MB data line (a big output's batch) in 1 kB chunks is split once, when it ends:
    re-splitting the whole line per chunk made the parsing quadratic (about 40 s here)."""
    scanned: list[int] = []
    line_ends = sse._LINE

    class CountingPattern:
        def split(self, text: str) -> list[str]:
            scanned.append(len(text))
            return line_ends.split(text)

    monkeypatch.setattr(sse, "_LINE", CountingPattern())
    line = "data: " + "x" * 4_000_000 + "\n\n"
    parser = Parser()
    got = [
        m for start in range(0, len(line), 1024) for m in parser.feed(line[start : start + 1024])
    ]
    assert [len(message.data) for message in got] == [4_000_000]
    assert sum(scanned) <= len(line) + 1024  # each character looked at about once


def test_links_round_trip() -> None:
    link = share_link("https://site.example/nb/", "Qm9v", "at1.a.b")
    assert link == "https://site.example/nb/?notebook=Qm9v&token=at1.a.b"
    assert parse_credential(f"  {link}\n") == ("at1.a.b", "Qm9v")
    assert parse_credential("at1.x.y") == ("at1.x.y", None)
    with_relay = share_link("http://h/", "n", "t", relay="http://r:1")
    assert parse_credential(with_relay) == ("t", "n")


@pytest.mark.parametrize(
    "value", ["plain", "a b&c=d?e#f/g", "http://127.0.0.1:8765/x?y=1", "é😀\u00a0~._-", "", "%41+"]
)
def test_link_queries_are_what_urlencode_makes(value: str) -> None:
    """``client.links.query`` stands in for ``urllib.parse.urlencode`` (slow to import in
    Pyodide)."""
    from urllib.parse import parse_qs, urlencode

    params = {"notebook": value, "relay": value[::-1], "token": "at1.x.y"}
    assert query(params) == urlencode(params)
    assert parse_qs(query(params), keep_blank_values=True) == {k: [v] for k, v in params.items()}


def test_links_within_the_site_keep_a_relay_given_in_the_address() -> None:
    """A site opened with ``?relay=URL`` must not lose it on its own links (home, a notebook)."""
    assert page_link() == "?"
    assert page_link("nb-1") == "?notebook=nb-1"
    assert (
        page_link("nb-1", "http://127.0.0.1:8765")
        == "?notebook=nb-1&relay=http%3A%2F%2F127.0.0.1%3A8765"
    )
    assert page_link(None, "http://relay.example") == "?relay=http%3A%2F%2Frelay.example"


# --- in a browser ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def relay(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RelayProcess]:
    running = RelayProcess(
        tmp_path_factory.mktemp("client-security") / "data", ["--kernels", "none"]
    ).start()
    assert running.token, "the relay should run with auth on and print its admin token"
    yield running
    running.stop()


@pytest.fixture(scope="module")
def owner(browser):
    """One person's browser, shared by the tests (a warm Pyodide after the first)."""
    context = browser.new_context(service_workers="block")
    yield context
    context.close()


class Watch:
    """Every API request of a context, and every CSP complaint of its pages."""

    def __init__(self, context, relay: RelayProcess) -> None:
        self.api: list[tuple[str, str | None]] = []
        self.csp: list[str] = []
        self._relay = relay
        context.on("request", self._request)
        context.on("console", self._console)

    def _request(self, request) -> None:
        if "/api/" in request.url:
            self.api.append((request.url, request.headers.get("authorization")))

    def _console(self, message) -> None:
        if "Content Security Policy" in message.text:
            self.csp.append(message.text)


@pytest.mark.slow
def test_token_link_is_kept_cleared_and_sent_in_headers(relay: RelayProcess, owner) -> None:
    from playwright.sync_api import expect

    watch = Watch(owner, relay)
    notebook = new_notebook(relay, "tokens", source="x = 1")
    tab = ClientPage.open(owner, relay, notebook)
    tab.expect_online(True)  # the stream is open: it was sent the token too
    assert "token" not in tab.page.url and f"notebook={notebook}" in tab.page.url
    kept = tab.page.evaluate(f"localStorage.getItem('anode-tokens:{relay.url}')")
    assert relay.token in kept
    expect(tab.page.locator("body")).to_have_attribute(
        "data-role", "admin", timeout=SYNC_TIMEOUT_MS
    )
    # A reload needs no token in the address: it is kept.
    tab.page.goto(tab.url(notebook))
    tab.wait_ready()
    tab.expect_online(True)
    assert watch.api, "no API request seen"
    paths = {re.sub(r"\?.*", "", url.removeprefix(relay.url)) for url, _ in watch.api}
    assert f"/api/notebooks/{notebook}/stream" in paths and "/api/whoami" in paths
    for url, authorization in watch.api:
        assert authorization == f"Bearer {relay.token}", url
        assert relay.token not in url
    assert watch.csp == [] and tab.errors == []
    tab.page.close()


@pytest.mark.slow
def test_no_token_asks_for_one(relay: RelayProcess, browser) -> None:
    """Without a token the relay says 401 and the page asks; pasting the link is enough."""
    from playwright.sync_api import expect

    notebook = new_notebook(relay, "asked")
    context = browser.new_context(service_workers="block")
    tab = ClientPage(context.new_page(), relay)
    tab.page.goto(tab.url(notebook))
    tab.wait_ready()
    prompt = tab.page.locator("dialog.token-prompt")
    expect(prompt).to_be_visible(timeout=SYNC_TIMEOUT_MS)
    expect(prompt.locator(".token-reason")).to_contain_text("token")
    tab.page.fill(".token-input", f"{relay.url}/?notebook={notebook}&token={relay.token}")
    tab.page.click("button.token-submit")
    tab.wait_ready()
    tab.expect_online(True)
    expect(prompt).to_have_count(0)
    expect(tab.cells).to_have_count(1)
    context.close()


@pytest.mark.slow
def test_viewer_link_is_read_only(relay: RelayProcess, owner, browser) -> None:
    """The owner makes a viewer link in the share dialog; its holder sees, live, and cannot
    change."""
    from playwright.sync_api import expect

    notebook = new_notebook(relay, "shared", source="shared = 1")
    tab = ClientPage.open(owner, relay, notebook)
    tab.page.click("button.share")
    dialog = tab.page.locator("dialog.share-dialog")
    expect(dialog).to_be_visible()
    dialog.locator("select.share-role").select_option("viewer")
    dialog.locator("button.share-create").click()
    link_box = dialog.locator("input.share-link")
    expect(link_box).to_have_value(re.compile(r"token=at1\."), timeout=SYNC_TIMEOUT_MS)
    link = link_box.input_value()
    assert link.startswith(f"{relay.url}/?notebook={notebook}&token=")
    expect(dialog.locator(".share-token[data-role=viewer]")).to_have_count(
        1, timeout=SYNC_TIMEOUT_MS
    )
    dialog.locator("button.share-close").click()

    context = browser.new_context(service_workers="block")
    viewer = ClientPage(context.new_page(), relay)
    viewer.page.goto(link)
    viewer.wait_ready()
    viewer.expect_source(0, "shared = 1")
    expect(viewer.page.locator("body")).to_have_attribute(
        "data-role", "viewer", timeout=SYNC_TIMEOUT_MS
    )
    expect(viewer.page.locator("body")).to_have_class(re.compile(r"\bread-only\b"))
    expect(viewer.page.locator(".notice")).to_contain_text("read")
    expect(viewer.cell(0).locator(".cell-tools")).to_be_hidden()
    expect(viewer.page.locator("button.share")).to_be_hidden()
    expect(viewer.editor(0)).to_have_attribute("contenteditable", "false")
    viewer.editor(0).click()
    viewer.page.keyboard.type("nope")
    viewer.page.keyboard.press("Escape")
    viewer.page.keyboard.press("b")  # command mode's "add below": not for a viewer
    tab.type(0, "\nmore = 2")  # the owner's edit reaches the viewer live
    viewer.expect_source(0, "shared = 1\nmore = 2")
    expect(viewer.cells).to_have_count(1)
    expect(viewer.page.locator(".sync-status")).to_have_attribute("data-unsynced", "0")
    assert viewer.errors == [] and tab.errors == []
    context.close()
    tab.page.close()


@pytest.mark.slow
def test_output_scripts_run_sandboxed_under_the_csp(relay: RelayProcess, owner) -> None:
    """The page allows no inline script; an output's script runs, in a frame that can reach
    nothing."""

    watch = Watch(owner, relay)
    notebook = new_notebook(relay, "sandbox")
    tab = ClientPage.open(owner, relay, notebook)
    tab.page.evaluate(
        "localStorage.setItem('anode-secret', 'token'); document.cookie = 'anode=secret'"
    )
    # The page's own policy: an injected inline script does not run.
    tab.page.evaluate(
        "() => { const s = document.createElement('script'); s.textContent = 'window.injected = 1';"
        " document.body.append(s); }"
    )
    assert tab.page.evaluate("window.injected") is None
    probe = SANDBOX_PROBE.replace("RELAY", relay.url).replace("TOKEN", relay.token or "")
    push_html_output(relay, notebook, cell_ids(relay, notebook)[0], probe)
    expect_probe_blocked(tab, SYNC_TIMEOUT_MS)
    assert any("inline script" in text for text in watch.csp), (
        watch.csp
    )  # the injected one, refused
    assert tab.errors == []
    tab.page.close()


@pytest.mark.slow
def test_markdown_cannot_pose_as_a_cells_own_parts(relay: RelayProcess, owner) -> None:
    """Markdown may carry our class names and ``data-action``s (DOMPurify keeps them): a
    collaborator's ``<button data-action="delete">`` or ``<div class="outputs">`` must neither
    act on the cell nor catch its outputs once the cell becomes code and runs."""
    from playwright.sync_api import expect

    forged = (
        '<section class="cell" data-cell-id="{victim}"><button '
        'data-action="delete">delete</button></section>'
        '<div class="outputs"></div><span class="cell-status"></span><button '
        'data-action="clear-cell">x</button>'
    )
    notebook = new_notebook(relay, "forged parts", source="1")
    victim = cell_ids(relay, notebook)[0]
    cell = uuid.uuid4().hex
    push(relay, notebook, _event("cellCreated", cell_id=cell, cell_type="markdown", after=victim,
                                 source=forged.format(victim=victim)))  # fmt: skip
    tab = ClientPage.open(owner, relay, notebook)
    expect(tab.cell(1).locator(".markdown-rendered button")).to_have_count(2)
    tab.cell(1).locator(".markdown-rendered button", has_text="delete").click()
    tab.cell(1).locator(".markdown-rendered button", has_text="x").click()
    tab.page.wait_for_timeout(300)
    expect(tab.cells).to_have_count(2)
    assert cell_ids(relay, notebook) == [victim, cell]

    printed = {"output_type": "stream", "name": "stdout", "text": "real\n"}
    push(relay, notebook, _event("cellTypeChanged", cell_id=cell, cell_type="code"),
         *finished_run(cell, "print('real')", printed))  # fmt: skip
    own_outputs = tab.cell(1).locator(":scope > .cell-body > .outputs")
    expect(own_outputs).to_contain_text("real", timeout=SYNC_TIMEOUT_MS)
    expect(tab.cell(1).locator(":scope > .cell-body > .cell-status")).to_contain_text("done")
    assert tab.cell(1).locator(".markdown-rendered .outputs").inner_text() == ""
    assert tab.errors == []
    tab.page.close()


@pytest.mark.slow
def test_a_token_address_is_never_cached_nor_sent_on(relay: RelayProcess, browser) -> None:
    """Opened from ``?token=``: no request carries the token in its ``Referer``, and the
    service worker keeps nothing under an address with the token in it."""
    from playwright.sync_api import expect

    notebook = new_notebook(relay, "no token in caches", source="y = 2")
    context = browser.new_context()  # service workers allowed: they are under test
    referers: list[str] = []
    context.on("request", lambda request: referers.append(request.headers.get("referer") or ""))
    tab = ClientPage(context.new_page(), relay)
    tab.page.goto(tab.url(notebook, relay.token))
    tab.wait_ready()
    tab.expect_online(True)
    expect(tab.page.locator("body")).to_have_attribute("data-offline", "ready", timeout=120_000)
    tab.page.goto(tab.url(notebook, relay.token))  # a link opened again, now through the worker
    tab.wait_ready()
    tab.expect_online(True)
    kept = tab.page.evaluate(
        """async () => {
            const urls = [];
            for (const name of await caches.keys()) {
                const cache = await caches.open(name);
                for (const request of await cache.keys()) urls.push(request.url);
            }
            return urls;
        }"""
    )
    assert kept and any(url.endswith("/index.html") or url == f"{relay.url}/" for url in kept), kept
    assert not [url for url in kept if "token" in url], kept
    assert referers and not [referer for referer in referers if "token" in referer]
    context.close()


def test_every_response_carries_the_security_headers(relay: RelayProcess) -> None:
    """A CSP header on every response (the page's and the output frame's from their meta tags,
    none at all for the API), no ``Referer`` ever, and no file the client does not load."""
    import httpx

    from relay.headers import API_POLICY

    with httpx.Client(base_url=relay.url, headers=relay.headers, timeout=10) as http:
        page = http.get("/")
        meta = re.search(
            r'http-equiv="Content-Security-Policy" content="([^"]+)"', page.text
        ).group(1)
        assert page.headers["content-security-policy"] == f"{meta}; frame-ancestors 'none'"
        assert page.headers["cache-control"] == "no-store"
        frame = http.get("/client/frame.html")
        frame_meta = re.search(
            r'http-equiv="Content-Security-Policy" content="([^"]+)"', frame.text
        ).group(1)
        assert frame.headers["content-security-policy"] == f"{frame_meta}; frame-ancestors 'self'"
        for path in (
            "/",
            "/api/health",
            "/api/notebooks",
            "/client/main.py",
            "/vendor/pyodide/pyodide.mjs",
            "/nowhere",
        ):
            response = http.get(path)
            assert response.headers["referrer-policy"] == "no-referrer", path
            assert response.headers["x-content-type-options"] == "nosniff", path
            assert "content-security-policy" in response.headers, path
            if path.startswith("/api/"):
                assert response.headers["content-security-policy"] == API_POLICY
        for path in (
            "/vendor/pyodide/console.html",
            "/vendor/pyodide/console-v2.html",
            "/vendor/pyodide/pyodide.mjs.map",
            "/vendor/pyodide/README.md",
        ):
            assert http.get(path).status_code == 404, path
        for path in (
            "/vendor/pyodide/pyodide.mjs",
            "/vendor/pyodide/pyodide.asm.wasm",
            "/vendor/pyodide/python_stdlib.zip",
        ):
            assert http.get(path).status_code == 200, path
