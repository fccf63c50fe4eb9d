"""``.ipynb`` in the browser: "Import .ipynb" on the home view and "Download .ipynb" in a notebook.

Real Chromium on real pages: a file picked or dropped on the home view
becomes a notebook (on the relay, or with no relay in this browser only),
shows its imported outputs and markdown attachments as Jupyter did, marked
as not run here; the download, made from the page's own log, validates
against nbformat 4.5 and holds what was imported, offline too.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import nbformat
import pytest

from anode.site import build
from tests.chromium import browser_fixture  # noqa: F401 - the *_fixture names are fixtures
from tests.client_helpers import SYNC_TIMEOUT_MS, ClientPage, RequestLog
from tests.conftest import RelayProcess
from tests.test_client_site import _free_port, _NoRelay, static_server  # noqa: F401

pytestmark = pytest.mark.slow

FILES = Path(__file__).parent / "data" / "ipynb"
#: The home view's one-line messages (not the standing no-relay notice).
MESSAGE = ".home-page .message:not(.no-relay)"

#: Drops a file on the home view as a person dragging it from their desktop would.
_DROP = """([name, text]) => {
  const transfer = new DataTransfer();
  transfer.items.add(new File([text], name, {type: "application/x-ipynb+json"}));
  const page = document.querySelector(".home-page");
  page.dispatchEvent(new DragEvent("dragover", {dataTransfer: transfer, bubbles: true,
                                                cancelable: true}));
  page.dispatchEvent(new DragEvent("drop", {dataTransfer: transfer, bubbles: true,
                                            cancelable: true}));
}"""


def _download(tab: ClientPage, tmp_path: Path) -> dict:
    with tab.page.expect_download() as started:
        tab.page.click("header .download")
    download = started.value
    assert download.suggested_filename.endswith(".ipynb")
    path = tmp_path / download.suggested_filename
    download.save_as(path)
    document = json.loads(path.read_text(encoding="utf-8"))
    nbformat.validate(nbformat.from_dict(document))  # raises on any schema problem
    return document


def _import(tab: ClientPage, source: Path, url: str) -> Any:
    """Pick ``source`` with the home view's file input; the notebook it becomes, as
    nbformat reads the file."""
    tab.goto()
    tab.page.set_input_files(".import-file", str(source))
    tab.page.wait_for_url(re.compile(url), timeout=SYNC_TIMEOUT_MS)
    tab.wait_ready()
    return nbformat.read(source, as_version=4)


def _sources(document: dict) -> list[str]:
    return [
        "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
        for cell in nbformat.reads(json.dumps(document), as_version=4).cells
    ]


def test_import_and_download_through_the_relay(
    tmp_path: Path, relay_process: Callable[..., RelayProcess], browser
) -> None:
    from playwright.sync_api import expect

    relay = relay_process("--kernels", "none")
    context = browser.new_context(service_workers="block", accept_downloads=True)
    tab = ClientPage(context.new_page(), relay)
    original = _import(tab, FILES / "nbconvert-notebook2.ipynb", r"\?notebook=")
    expect(tab.cells).to_have_count(len(original.cells), timeout=SYNC_TIMEOUT_MS)
    expect(tab.page.locator("input.title")).to_have_value("NumPy and Matplotlib examples")
    # The PNG figures show at once, and the cells that hold them say they did not run here.
    expect(tab.page.locator(".outputs img[src^='data:image/png']").first).to_be_visible()
    imported = tab.page.locator("section.cell[data-status='imported']")
    expect(imported.first).to_be_visible()
    expect(imported.first.locator(".cell-status")).to_contain_text("not run here")
    expect(imported.first.locator(".prompt")).to_have_text(re.compile(r"\[\d+\]:"))

    downloaded = _download(tab, tmp_path)
    notebook = re.search(r"notebook=([\w-]+)", tab.page.url).group(1)
    exported = httpx.get(
        f"{relay.url}/api/notebooks/{notebook}/ipynb", headers=relay.headers, timeout=30
    ).json()
    assert downloaded == exported  # the page's mapping and the relay's are one
    assert _sources(downloaded) == [cell.source for cell in original.cells]

    # A markdown cell's attachment, from a file dropped on the home view.
    tab.goto()
    attachment = FILES / "nbconvert-attachment.ipynb"
    tab.page.evaluate(_DROP, [attachment.name, attachment.read_text(encoding="utf-8")])
    tab.page.wait_for_url(re.compile(rf"\?notebook=(?!{notebook})"), timeout=SYNC_TIMEOUT_MS)
    tab.wait_ready()
    image = tab.page.locator(".markdown-rendered img[src^='data:image/png']")
    expect(image.first).to_be_visible(timeout=SYNC_TIMEOUT_MS)
    assert (
        tab.page.evaluate("() => document.querySelector('.markdown-rendered img').naturalWidth") > 0
    )

    # A file that is no notebook: one clear line, no notebook made.
    before = httpx.get(f"{relay.url}/api/notebooks", headers=relay.headers).json()
    tab.goto()
    tab.page.evaluate(_DROP, ["broken.ipynb", '{"nbformat": 4, "cells": [{}]}'])
    expect(tab.page.locator(MESSAGE)).to_contain_text("Could not import")
    assert httpx.get(f"{relay.url}/api/notebooks", headers=relay.headers).json() == before
    assert tab.errors == []
    context.close()


def test_import_and_download_on_a_site_without_relay(
    tmp_path: Path,
    static_server,  # noqa: F811 - a fixture
    browser,
) -> None:
    """No relay: the file becomes a local notebook, and its download is made offline."""
    from playwright.sync_api import expect

    site = tmp_path / "site"
    build(site, None)
    server = static_server(site, _free_port())
    context = browser.new_context(service_workers="block", accept_downloads=True)
    outside = RequestLog(server.url).attach(context)
    tab = ClientPage(context.new_page(), _NoRelay(), site_url=server.url)
    original = _import(tab, FILES / "nbformat-test4.5.ipynb", r"\?notebook=local-")
    expect(tab.cells).to_have_count(len(original.cells), timeout=SYNC_TIMEOUT_MS)
    expect(tab.page.locator(".outputs img[src^='data:image/png']").first).to_be_visible()
    expect(tab.page.locator("section.cell[data-status='imported']").first).to_be_visible()
    expect(tab.page.locator("body")).to_have_attribute("data-saving", "0")
    tab.reload()  # kept in IndexedDB
    expect(tab.cells).to_have_count(len(original.cells), timeout=SYNC_TIMEOUT_MS)
    downloaded = _download(tab, tmp_path)
    assert _sources(downloaded) == [cell.source for cell in original.cells]
    assert [cell["id"] for cell in downloaded["cells"]] == [cell.id for cell in original.cells]

    # A v3 file needs nbformat's upgrade, which only a relay has: said plainly.
    tab.goto()
    old = FILES / "nbformat-test3.ipynb"
    tab.page.evaluate(_DROP, [old.name, old.read_text(encoding="utf-8")])
    expect(tab.page.locator(MESSAGE)).to_contain_text("nbformat 4")
    assert outside.outside == []
    assert tab.errors == []
    context.close()


def test_requirements_show_in_the_header_and_an_editor_removes_one(
    relay_process: Callable[..., RelayProcess], browser
) -> None:
    """An imported notebook brings its requirements; the page lists them; × takes one off."""
    from playwright.sync_api import expect

    relay = relay_process("--kernels", "none")
    document = nbformat.v4.new_notebook(
        cells=[nbformat.v4.new_code_cell("import humanize")],
        metadata={"anode": {"requirements": ["humanize==4.17.0", "six==1.17.0"]}},
    )
    created = httpx.post(
        f"{relay.url}/api/notebooks/import", json=document, headers=relay.headers, timeout=30
    ).json()
    context = browser.new_context(service_workers="block")
    tab = ClientPage(context.new_page(), relay)
    tab.goto(created["id"])
    tab.wait_ready()
    chips = tab.page.locator("header .requirements .requirement")
    expect(chips).to_have_text(["humanize==4.17.0×", "six==1.17.0×"])
    tab.page.click("header .remove-requirement[data-package='six']")
    expect(chips).to_have_text(["humanize==4.17.0×"])
    url = f"{relay.url}/api/notebooks/{created['id']}/ipynb"
    for _ in range(50):
        exported = httpx.get(url, headers=relay.headers, timeout=30).json()
        if exported["metadata"]["anode"]["requirements"] == ["humanize==4.17.0"]:
            break
        tab.page.wait_for_timeout(100)
    assert exported["metadata"]["anode"]["requirements"] == ["humanize==4.17.0"]
    assert tab.errors == []
    context.close()
