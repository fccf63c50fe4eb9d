"""The local log in a real browser: a first visit opens from the relay's state, IndexedDB keeps
the log a batch per record, and a log an older version of the page wrote still opens.

Real relay (``anode serve``, no kernels), real Chromium, real IndexedDB.
"""

from __future__ import annotations

import json
import re
import uuid

import httpx
import pytest

from tests.chromium import browser_fixture  # noqa: F401 - the *_fixture names are fixtures
from tests.client_helpers import (
    SYNC_TIMEOUT_MS,
    ClientPage,
    _event,
    cell_ids,
    cell_source,
    finished_run,
    new_notebook,
    push,
)
from tests.conftest import RelayProcess, module_relay

pytestmark = pytest.mark.slow

#: Reads every record of one object store of the page's IndexedDB: [[key, value], ...].
_RECORDS = """async (store) => {
  const db = await new Promise((ok, fail) => {
    const request = indexedDB.open("anode");
    request.onsuccess = () => ok(request.result);
    request.onerror = () => fail(request.error);
  });
  const tx = db.transaction([store], "readonly");
  const keys = tx.objectStore(store).getAllKeys();
  const values = tx.objectStore(store).getAll();
  await new Promise((ok) => { tx.oncomplete = ok; });
  const version = db.version;
  db.close();
  return {version, records: keys.result.map((key, i) => [key, values.result[i]])};
}"""

#: Writes a database as version 1 of the page did: one record per confirmed event.
_WRITE_VERSION_1 = """async ([notebook, confirmed, pending]) => {
  const db = await new Promise((ok, fail) => {
    const request = indexedDB.open("anode", 1);
    request.onupgradeneeded = () => {
      for (const name of ["confirmed", "pending", "drafts", "snapshots"]) {
        request.result.createObjectStore(name);
      }
    };
    request.onsuccess = () => ok(request.result);
    request.onerror = () => fail(request.error);
  });
  const tx = db.transaction(["confirmed", "pending"], "readwrite");
  for (const event of confirmed) {
    tx.objectStore("confirmed").put(JSON.stringify(event), [notebook, event.seq]);
  }
  for (const [key, event] of pending) {
    tx.objectStore("pending").put(JSON.stringify(event), [notebook, key]);
  }
  await new Promise((ok, fail) => { tx.oncomplete = ok; tx.onerror = () => fail(tx.error); });
  db.close();
}"""


relay = module_relay("client-storage", "--kernels", "none")


def _unreachable(route) -> None:
    route.abort("internetdisconnected")


def _events(relay: RelayProcess, notebook: str) -> list[dict]:
    response = httpx.get(f"{relay.url}/api/notebooks/{notebook}/events", params={"limit": 10_000},
                         headers=relay.headers, timeout=30)  # fmt: skip
    assert response.status_code == 200, response.text
    return response.json()["events"]


def _edited_notebook(relay: RelayProcess) -> tuple[str, str]:
    """Two cells; the first edited twice (an edit history) and run, with an output."""
    notebook = new_notebook(relay, "storage", source="a = 1")
    first = cell_ids(relay, notebook)[0]
    printed = {"output_type": "stream", "name": "stdout", "text": "ten\n"}
    push(
        relay,
        notebook,
        _event("cellSourceEdited", cell_id=first, base_rev=0, ops=[5, "0"]),
        _event("cellSourceEdited", cell_id=first, base_rev=1, ops=["# one\n", 6]),
        _event(
            "cellCreated",
            cell_id=uuid.uuid4().hex,
            cell_type="markdown",
            after=first,
            source="## notes",
        ),
        *finished_run(first, "# one\na = 10", printed),
    )
    return notebook, first


def test_a_first_visit_opens_from_the_relays_state_and_stores_it(
    relay: RelayProcess, browser
) -> None:
    from playwright.sync_api import expect

    notebook, first = _edited_notebook(relay)
    head = _events(relay, notebook)[-1]["seq"]
    context = browser.new_context(service_workers="block")
    asked: list[str] = []
    context.on(
        "request",
        lambda request: asked.append(request.url) if "/api/notebooks/" in request.url else None,
    )
    tab = ClientPage.open(context, relay, notebook)
    tab.expect_source(0, "# one\na = 10")
    expect(tab.outputs(0)).to_contain_text("ten")
    expect(tab.cells).to_have_count(2)
    # One request for the state, then the stream from its seq: the log itself is never read.
    assert [url for url in asked if "/snapshot" in url] == [
        f"{relay.url}/api/notebooks/{notebook}/snapshot?form=internal"
    ]
    assert any(f"/stream?after={head}" in url for url in asked), asked
    assert not any(re.search(r"/events\?", url) for url in asked), asked

    # The stream goes on from there: a colleague's edit arrives and is kept.
    push(relay, notebook, _event("cellSourceEdited", cell_id=first, base_rev=2, ops=[12, "0"]))
    tab.expect_source(0, "# one\na = 100")
    tab.page.wait_for_function("() => document.body.dataset.saving === '0'")
    snapshots = tab.page.evaluate(_RECORDS, "snapshots")
    assert snapshots["version"] == 2
    assert [key for key, _ in snapshots["records"]] == [notebook]
    assert json.loads(snapshots["records"][0][1])["seq"] == head
    log = [(key, json.loads(value)) for key, value in tab.page.evaluate(_RECORDS, "log")["records"]]
    assert [(key, [event["seq"] for event in events]) for key, events in log] == [
        ([notebook, head + 1], [head + 1])
    ]

    # A reload with the relay out of reach shows all of it from IndexedDB.
    context.route(re.compile(r"/api/"), _unreachable)
    tab.reload()
    tab.expect_online(False)
    tab.expect_source(0, "# one\na = 100")
    expect(tab.outputs(0)).to_contain_text("ten")
    assert tab.errors == []
    context.close()


def test_a_local_log_written_by_version_1_still_opens_and_syncs(
    relay: RelayProcess, browser
) -> None:
    """Version 1 stored one record per event and knew no ``log`` store: its records are read
    as they are, an offline edit it left pending is pushed, and nothing is stored twice."""
    notebook, first = _edited_notebook(relay)
    confirmed = _events(relay, notebook)
    offline_edit = {"id": uuid.uuid4().hex, "name": "cellSourceEdited", "v": 1,
                    "args": {"cell_id": first, "base_rev": 2, "ops": ["#!\n", 12]}}  # fmt: skip
    context = browser.new_context(service_workers="block")
    page = context.new_page()
    # The relay's origin, before the client ever ran there (not an API answer: those are sandboxed).
    page.goto(f"{relay.url}/config.json")
    page.evaluate(_WRITE_VERSION_1, [notebook, confirmed, [[1, offline_edit]]])
    page.close()

    context.route(re.compile(r"/api/"), _unreachable)
    tab = ClientPage.open(context, relay, notebook)
    tab.expect_online(False)
    tab.expect_source(0, "#!\n# one\na = 10")  # the stored log, and the edit waiting on it
    assert cell_source(relay, notebook, 0) == "# one\na = 10"
    context.unroute(re.compile(r"/api/"), _unreachable)
    tab.expect_online(True)
    tab.page.wait_for_function(
        "() => document.querySelector('.sync-status').dataset.unsynced === '0'"
    )
    assert cell_source(relay, notebook, 0) == "#!\n# one\na = 10"
    assert len(_events(relay, notebook)) == len(confirmed) + 1
    stores = tab.page.evaluate(_RECORDS, "log")
    assert stores["version"] == 2
    assert [event["id"] for _, value in stores["records"] for event in json.loads(value)] == [
        offline_edit["id"]
    ]
    assert tab.errors == []
    context.close()


def test_an_older_tab_holding_the_store_open_is_named_and_the_notebook_still_syncs(
    relay: RelayProcess, browser
) -> None:
    """A tab of the previous version keeps IndexedDB open at version 1 and never lets go (it
    had no ``versionchange`` handler): the upgrade is blocked. The new page says why it keeps
    nothing, and still opens the notebook from the relay and sends edits."""
    from playwright.sync_api import expect

    notebook = new_notebook(relay, "blocked upgrade", source="a")
    context = browser.new_context(service_workers="block")
    old_tab = context.new_page()
    old_tab.goto(f"{relay.url}/config.json")
    old_tab.evaluate("""() => new Promise((ok, fail) => {
      const request = indexedDB.open("anode", 1);
      request.onupgradeneeded = () => request.result.createObjectStore("confirmed");
      request.onsuccess = () => { window.held = request.result; ok(); };  // kept open
      request.onerror = () => fail(request.error);
    })""")
    tab = ClientPage.open(context, relay, notebook)
    expect(tab.page.locator(".notice")).to_contain_text("older version of Anode is open")
    tab.expect_source(0, "a")
    tab.type(0, "b")
    tab.expect_source(0, "ab")  # the edit is in the model: "0 to sync" from now on means it is sent
    tab.page.wait_for_function(
        "() => document.querySelector('.sync-status').dataset.unsynced === '0'"
    )
    assert cell_source(relay, notebook, 0) == "ab"
    assert tab.errors == []
    context.close()


def test_a_tab_that_gives_the_store_up_to_a_newer_version_keeps_syncing(
    relay: RelayProcess, browser
) -> None:
    """Another tab opens the database at a newer version: this tab lets go (``versionchange``),
    says so, and goes on editing and syncing without IndexedDB."""
    from playwright.sync_api import expect

    notebook = new_notebook(relay, "upgraded elsewhere", source="a")
    context = browser.new_context(service_workers="block")
    tab = ClientPage.open(context, relay, notebook)
    tab.type(0, "b")
    tab.expect_source(0, "ab")  # the edit is in the model, so its write is counted in data-saving
    tab.page.wait_for_function("() => document.body.dataset.saving === '0'")
    newer = context.new_page()
    newer.goto(f"{relay.url}/config.json")
    newer.evaluate("""() => new Promise((ok, fail) => {
      const request = indexedDB.open("anode", 3);
      request.onupgradeneeded = () => request.result.createObjectStore("v3");
      request.onsuccess = () => { request.result.close(); ok(); };
      request.onerror = () => fail(request.error);
      request.onblocked = () => fail(new Error("blocked: the older tab did not let go"));
    })""")
    tab.type(0, "c")
    tab.expect_source(0, "abc")
    expect(tab.page.locator(".notice")).to_contain_text(
        "newer version of Anode", timeout=SYNC_TIMEOUT_MS
    )
    tab.page.wait_for_function(
        "() => document.querySelector('.sync-status').dataset.unsynced === '0'"
    )
    assert cell_source(relay, notebook, 0) == "abc"
    assert tab.errors == []
    context.close()
