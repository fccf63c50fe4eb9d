"""``anode build-site``: the client from a plain static server, a relay elsewhere, and offline.

The site is built into a temporary folder and served by ``python -m
http.server`` on loopback (a real static server, nothing of ours), on a
different port, so a different origin, from the relay, which lets it in
with ``--allow-origin``. In Chromium: create a notebook, run a cell; then
stop both servers and reload: the service worker gives back the page and
IndexedDB the notebook. Built without a relay, the site is a local notebook.
"""

from __future__ import annotations

import hashlib
import json
import re
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from anode.site import build
from tests.chromium import browser_fixture  # noqa: F401 - the *_fixture names are fixtures
from tests.client_helpers import (
    RUN_TIMEOUT_MS,
    SYNC_TIMEOUT_MS,
    TAB_START_MS,
    ClientPage,
    RequestLog,
)
from tests.conftest import RelayProcess
from tests.kernels import wheelhouse_fixture  # noqa: F401


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class StaticServer:
    """``python -m http.server`` serving ``folder`` on loopback."""

    def __init__(self, folder: Path, port: int) -> None:
        self.url = f"http://127.0.0.1:{port}"
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "http.server",
                str(port),
                "--bind",
                "127.0.0.1",
                "--directory",
                str(folder),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 20
        while True:
            try:
                if httpx.get(f"{self.url}/config.json", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError("the static server did not start")
            time.sleep(0.05)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)


@pytest.fixture
def static_server() -> Iterator[Callable[[Path, int], StaticServer]]:
    started: list[StaticServer] = []

    def start(folder: Path, port: int) -> StaticServer:
        started.append(StaticServer(folder, port))
        return started[-1]

    yield start
    for server in started:
        server.stop()


def test_build_site_writes_a_complete_site(tmp_path: Path) -> None:
    """Every file the page's config names is there, with config.json naming the relay."""
    out = tmp_path / "site"
    build(out, "https://relay.example")
    assert json.loads((out / "config.json").read_text()) == {"relay": "https://relay.example"}
    for name in ("index.html", "sw.js", "client/frame.html", "client/style.css",
                 "client/js/interpreter.mjs", "client/js/snapshot.js", "client/js/startup.js",
                 "vendor/pyscript/core.js", "vendor/pyodide/pyodide.mjs",
                 "vendor/pyodide/pyodide.asm.wasm", "vendor/pyodide/python_stdlib.zip",
                 "vendor/bundles/editor.js",
                 "vendor/bundles/markdown.js", "vendor/katex/katex.min.css",
                 "vendor/katex/fonts/KaTeX_Main-Regular.woff2"):  # fmt: skip
        assert (out / name).is_file(), name
    config = json.loads((out / "client" / "pyscript.json").read_text())
    for url in config["anode_files"]:
        assert (out / "client" / url).is_file(), url
    bundled = json.loads((out / "client" / "python.json").read_text())["files"]
    assert [file["target"] for file in bundled] == list(config["anode_files"].values())
    assert all(file["text"] == (out / file["target"]).read_text() for file in bundled)
    assert not list(out.rglob("*.map"))
    build(out, None)  # again, over the old one: allowed, and now without a relay
    assert json.loads((out / "config.json").read_text()) == {"relay": None}


def _build_site(*args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "anode", "build-site", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)


def test_build_site_copies_a_wheelhouse(tmp_path: Path, wheelhouse: Path) -> None:
    """``--wheels DIR``: DIR's wheels as a static package index, the relay's layout, each
    link with its file's sha256; a folder with no wheel is refused and nothing is written."""
    out = tmp_path / "site"
    done = _build_site(str(out), "--wheels", str(wheelhouse), "--no-snapshot")
    assert done.returncode == 0, done.stderr
    [wheel] = wheelhouse.glob("*.whl")
    assert '<a href="humanize/">' in (out / "wheels/simple/index.html").read_text()
    page = (out / "wheels/simple/humanize/index.html").read_text()
    digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
    assert f'href="../../files/{wheel.name}#sha256={digest}"' in page
    assert (out / "wheels/files" / wheel.name).read_bytes() == wheel.read_bytes()

    empty = tmp_path / "empty"
    empty.mkdir()
    refused = _build_site(str(tmp_path / "other"), "--wheels", str(empty), "--no-snapshot")
    assert refused.returncode == 2
    assert f"--wheels {empty} holds no *.whl file" in refused.stderr
    assert not (tmp_path / "other").exists()


@pytest.mark.slow
def test_a_built_site_ships_the_snapshot_a_first_visit_starts_from(
    tmp_path: Path, static_server, browser
) -> None:
    """``anode build-site`` makes the page's Pyodide snapshot in headless Chromium and ships
    it: a browser new to the site starts Python from it, keeps it, and the page works as
    ever. Built with ``--no-snapshot``, the site ships none and says so in its index."""
    from playwright.sync_api import expect

    site = tmp_path / "site"
    done = _build_site(str(site))
    assert done.returncode == 0, done.stderr
    [shipped] = (site / "snapshot").glob("*.gz")
    assert json.loads((site / "snapshot/index.json").read_text()) == {"snapshots": [shipped.name]}
    assert f"snapshot/{shipped.name}" in done.stdout
    server = static_server(site, _free_port())
    context = browser.new_context(service_workers="block")
    tab = ClientPage(context.new_page(), _NoRelay(), site_url=server.url)
    tab.goto()
    body = tab.page.locator("body")
    expect(body).to_have_attribute("data-snapshot", "shipped")
    tab.page.fill(".new-title", "From the snapshot")
    tab.page.click("button.create")
    tab.page.wait_for_url(re.compile(r"\?notebook=local-"), timeout=SYNC_TIMEOUT_MS)
    tab.wait_ready()
    tab.type(0, "started = 'warm'")
    tab.expect_source(0, "started = 'warm'")
    expect(body).to_have_attribute("data-saving", "0")
    tab.reload()
    expect(body).to_have_attribute("data-snapshot", "used")  # kept in Cache Storage
    tab.expect_source(0, "started = 'warm'")
    assert tab.errors == []
    context.close()

    again = _build_site(str(site), "--no-snapshot")
    assert again.returncode == 0, again.stderr
    assert not list((site / "snapshot").glob("*.gz"))
    assert json.loads((site / "snapshot/index.json").read_text()) == {"snapshots": []}


@pytest.mark.slow
def test_static_site_runs_code_then_opens_offline(
    tmp_path: Path, relay_process: Callable[..., RelayProcess], static_server, browser
) -> None:
    from playwright.sync_api import expect

    port = _free_port()
    relay = relay_process("--allow-origin", f"http://127.0.0.1:{port}")
    site = tmp_path / "site"
    build(site, relay.url)
    server = static_server(site, port)
    context = browser.new_context()  # service workers allowed: this test is about them
    outside = RequestLog(server.url).attach(context)
    tab = ClientPage(context.new_page(), relay, site_url=server.url)
    tab.goto()
    tab.page.fill(".new-title", "From a static site")
    tab.page.click("button.create")
    tab.page.wait_for_url(re.compile(r"\?notebook="), timeout=SYNC_TIMEOUT_MS)
    tab.wait_ready()
    expect(tab.cells).to_have_count(1, timeout=SYNC_TIMEOUT_MS)
    tab.type(0, "print(6 * 7)")
    tab.page.keyboard.press("Control+Enter")
    expect(tab.outputs(0).locator("pre.stream")).to_have_text("42", timeout=RUN_TIMEOUT_MS)
    tab.expect_online(True)
    # Only the static site and the relay were asked for anything.
    assert [url for url in outside.outside if not url.startswith(relay.url)] == []

    # The service worker has kept the site; now both servers go away.
    expect(tab.page.locator("body")).to_have_attribute(
        "data-offline", "ready", timeout=RUN_TIMEOUT_MS
    )
    server.stop()
    relay.stop()
    tab.reload()
    expect(tab.cells).to_have_count(1)
    tab.expect_source(0, "print(6 * 7)")
    expect(tab.outputs(0).locator("pre.stream")).to_have_text("42")
    tab.expect_online(False)
    # With the network gone, a run goes to this tab's kernel, whose files the service
    # worker kept too.
    tab.editor(0).click()
    tab.page.keyboard.press("Control+a")
    tab.page.keyboard.insert_text("print(6 * 7 + 1)")
    tab.page.keyboard.press("Control+Enter")
    expect(tab.outputs(0).locator("pre.stream")).to_have_text("43", timeout=TAB_START_MS)
    expect(tab.page.locator(".kernel-status")).to_contain_text("this tab")
    assert tab.errors == []
    context.close()


@pytest.mark.slow
def test_site_without_relay_is_a_local_notebook(
    tmp_path: Path, relay_process: Callable[..., RelayProcess], static_server, browser
) -> None:
    """A local notebook lives in the browser; opened later with a relay, it can be put there."""
    from playwright.sync_api import expect

    site = tmp_path / "site"
    build(site, None)
    port = _free_port()
    server = static_server(site, port)
    context = browser.new_context(service_workers="block")
    outside = RequestLog(server.url).attach(context)
    tab = ClientPage(context.new_page(), _NoRelay(), site_url=server.url)
    tab.goto()
    expect(tab.page.locator(".no-relay")).to_contain_text("runs in this")
    tab.page.fill(".new-title", "Kept here")
    tab.page.click("button.create")
    tab.page.wait_for_url(re.compile(r"\?notebook=local-"), timeout=SYNC_TIMEOUT_MS)
    tab.wait_ready()
    expect(tab.page.locator(".notice")).to_contain_text("its code runs in this tab")
    expect(tab.page.locator("input.title")).to_have_value("Kept here")
    tab.type(0, "kept = True")
    tab.expect_source(0, "kept = True")  # in the model, so its write is counted in data-saving
    expect(tab.page.locator("body")).to_have_attribute("data-saving", "0")
    tab.reload()
    tab.expect_source(0, "kept = True")
    tab.goto()
    expect(tab.page.locator(".local-notebooks li a", has_text="Kept here")).to_be_visible()
    expect(tab.page.locator(".local-notebooks button.publish")).to_have_count(
        0
    )  # no relay to put it on
    assert outside.outside == []
    local_id = re.search(
        r"local-\w+", tab.page.locator(".local-notebooks li a").get_attribute("href")
    ).group(0)

    # The same site, now given a relay: the notebook goes there, with all it holds.
    relay = relay_process("--allow-origin", server.url, "--kernels", "none")
    tab.page.goto(f"{server.url}/?relay={relay.url}&token={relay.token}")
    tab.wait_ready()
    tab.page.locator(".local-notebooks li", has_text="Kept here").locator("button.publish").click()
    tab.page.wait_for_url(re.compile(rf"\?notebook={local_id}"), timeout=SYNC_TIMEOUT_MS)
    tab.wait_ready()
    tab.expect_online(True)
    expect(tab.page.locator(".sync-status")).to_have_attribute(
        "data-unsynced", "0", timeout=SYNC_TIMEOUT_MS
    )
    state = httpx.get(
        f"{relay.url}/api/notebooks/{local_id}/snapshot", headers=relay.headers, timeout=30
    ).json()
    assert state["state"]["title"] == "Kept here"
    assert [cell["source"] for cell in state["state"]["cells"]] == ["kept = True"]
    assert tab.errors == []
    context.close()


class _NoRelay:
    url = ""
    token = None
    headers: dict[str, str] = {}
