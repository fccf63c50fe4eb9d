"""The local log in IndexedDB: confirmed events, pending events, drafts, a snapshot.

A reload shows the notebook from here before the network answers, and
edits made offline wait here until the relay takes them.

Object stores (keys are arrays, values JSON strings):

| store       | key                 | value                                    |
| ----------- | ------------------- | ---------------------------------------- |
| `confirmed` | `[notebook, seq]`   | an event as the relay served it          |
| `pending`   | `[notebook, n]`     | an event as we push it, `n` = tab * 2**32 + made order |
| `drafts`    | `[notebook, cell, tab]` | a cell's buffered keystrokes (ot ops) |

Several tabs share these stores: each writes pending keys in its own range
and drafts under its own number (``client.model.TAB_SPAN``, ``client.tabs``),
so no tab overwrites another's records. Drafts keyed ``[notebook, cell]``
are from before tab numbers (tab 0).
| `snapshots` | `notebook`          | `NotebookState.dump()` of the confirmed log |

IndexedDB commits a transaction as soon as a task ends with no request
outstanding, and Pyodide resumes a coroutine in a later task. So no
coroutine awaits *inside* a transaction: every request of one is issued
synchronously, and only the transaction's end is awaited. A whole
``LocalChanges`` is one transaction, so confirmed events, the pending events
they confirm and the drafts rebased over them are stored together or not at all.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import js
from pyodide.ffi import JsProxy, create_proxy, to_js

from .model import LocalChanges, Saved, key_owner

DB_NAME = "anode"
DB_VERSION = 1
STORES = ("confirmed", "pending", "drafts", "snapshots")


class StoreError(Exception):
    """IndexedDB refused (quota, private mode, a blocked upgrade)."""


def _wait(target: JsProxy, ok: str = "success", fail: tuple[str, ...] = ("error",)) -> asyncio.Future:
    """A future that resolves when ``target`` (a request or a transaction) fires ``ok``."""
    future: asyncio.Future = asyncio.get_event_loop().create_future()
    proxies: list[JsProxy] = []

    def succeeded(_event: Any) -> None:
        if not future.done():
            future.set_result(getattr(target, "result", None) if ok == "success" else None)

    def failed(_event: Any) -> None:
        if not future.done():
            future.set_exception(StoreError(str(getattr(target, "error", None) or "aborted")))

    for name, handler in ((ok, succeeded), *((name, failed) for name in fail)):
        proxy = create_proxy(handler)
        proxies.append(proxy)
        target.addEventListener(name, proxy)

    def release(_future: asyncio.Future) -> None:
        for proxy in proxies:
            proxy.destroy()

    future.add_done_callback(release)
    return future


def _key(*parts: Any) -> JsProxy:
    return to_js(list(parts))


def _notebook_range(notebook: str, after: Any = None) -> JsProxy:
    """Every ``[notebook, …]`` key (arrays sort after numbers and strings)."""
    lower = _key(notebook) if after is None else _key(notebook, after)
    return js.IDBKeyRange.bound(lower, _key(notebook, to_js([])), after is not None, False)


class Store:
    """One open IndexedDB database."""

    def __init__(self, db: JsProxy) -> None:
        self._db = db

    @classmethod
    async def open(cls) -> Store:
        request = js.indexedDB.open(DB_NAME, DB_VERSION)

        def upgrade(_event: Any) -> None:
            db = request.result
            for name in STORES:
                if not db.objectStoreNames.contains(name):
                    db.createObjectStore(name)

        proxy = create_proxy(upgrade)
        request.addEventListener("upgradeneeded", proxy)
        try:
            db = await _wait(request, fail=("error", "blocked"))
        finally:
            proxy.destroy()
        return cls(db)

    async def load(self, notebook: str, tab: int = 0) -> Saved:
        """Everything stored for ``notebook`` (empty for one never opened here), as tab ``tab`` sees it."""
        tx = self._db.transaction(to_js(["snapshots"]), "readonly")
        snapshot_text = await _wait(tx.objectStore("snapshots").get(notebook))
        snapshot = json.loads(snapshot_text) if snapshot_text is not None else None
        after = snapshot["seq"] if snapshot else 0

        tx = self._db.transaction(to_js(["confirmed", "pending", "drafts"]), "readonly")
        confirmed = tx.objectStore("confirmed").getAll(_notebook_range(notebook, after))
        pending_keys = tx.objectStore("pending").getAllKeys(_notebook_range(notebook))
        pending = tx.objectStore("pending").getAll(_notebook_range(notebook))
        draft_keys = tx.objectStore("drafts").getAllKeys(_notebook_range(notebook))
        drafts = tx.objectStore("drafts").getAll(_notebook_range(notebook))
        await _wait(tx, ok="complete", fail=("error", "abort"))
        saved = Saved(
            snapshot=snapshot,
            confirmed=[json.loads(text) for text in confirmed.result.to_py()],
            pending=[
                (int(key[1]), json.loads(text))
                for key, text in zip(pending_keys.result.to_py(), pending.result.to_py())
            ],
        )
        for key, text in zip(draft_keys.result.to_py(), drafts.result.to_py()):
            owner = int(key[2]) if len(key) > 2 else 0
            if owner == tab:
                saved.drafts[str(key[1])] = json.loads(text)
            else:
                saved.other_drafts.append((owner, str(key[1]), json.loads(text)))
        if any(key_owner(key) != tab for key, _ in saved.pending):
            # Another tab's events may be in the log already (it died before it saw them
            # come back): the whole stored log's ids say which.
            tx = self._db.transaction(to_js(["confirmed"]), "readonly")
            every = tx.objectStore("confirmed").getAll(_notebook_range(notebook))
            await _wait(tx, ok="complete", fail=("error", "abort"))
            saved.confirmed_ids = {json.loads(text)["id"] for text in every.result.to_py()}
        return saved

    def commit(self, notebook: str, changes: LocalChanges, tab: int = 0) -> asyncio.Future:
        """Write ``changes`` in one transaction, issued now; await the result to know it is stored."""
        tx = self._db.transaction(to_js(list(STORES)), "readwrite")
        done = _wait(tx, ok="complete", fail=("error", "abort"))
        confirmed = tx.objectStore("confirmed")
        for event in changes.confirmed:
            confirmed.put(json.dumps(event), _key(notebook, event["seq"]))
        pending = tx.objectStore("pending")
        for key, event in changes.pending_put:
            pending.put(json.dumps(event), _key(notebook, key))
        for key in changes.pending_delete:
            pending.delete(_key(notebook, key))
        drafts = tx.objectStore("drafts")
        for owner, cell_id in changes.drafts_delete:
            drafts.delete(_key(notebook, cell_id, owner) if owner else _key(notebook, cell_id))
        for cell_id, ops in changes.drafts.items():
            if ops:
                drafts.put(json.dumps(ops), _key(notebook, cell_id, tab))
            else:
                drafts.delete(_key(notebook, cell_id, tab))
        if changes.snapshot is not None:
            tx.objectStore("snapshots").put(json.dumps(changes.snapshot), notebook)
        return done

    async def notebooks(self) -> list[str]:
        """Every notebook this browser holds something of (for the home view offline)."""
        tx = self._db.transaction(to_js(["snapshots", "confirmed", "pending"]), "readonly")
        snapshots = tx.objectStore("snapshots").getAllKeys()
        confirmed = tx.objectStore("confirmed").getAllKeys()
        pending = tx.objectStore("pending").getAllKeys()
        await _wait(tx, ok="complete", fail=("error", "abort"))
        found = dict.fromkeys(str(key) for key in snapshots.result.to_py())
        for request in (confirmed, pending):
            found.update(dict.fromkeys(str(key[0]) for key in request.result.to_py()))
        return list(found)
