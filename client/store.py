"""The local log in IndexedDB: confirmed events, pending events, drafts, a snapshot.

A reload shows the notebook from here before the network answers, and
edits made offline wait here until the relay takes them.

Object stores (keys are arrays, values JSON strings):

| store       | key                    | value                                          |
| ----------- | ---------------------- | ---------------------------------------------- |
| `log`       | `[notebook, last seq]` | events as the relay served them (a JSON array) |
| `confirmed` | `[notebook, seq]`      | one event (version 1 wrote these; still read)  |
| `pending`   | `[notebook, n]`     | an event as we push it, `n` = tab * 2**32 + made order |
| `drafts`    | `[notebook, cell, tab]` | a cell's buffered keystrokes (ot ops) |
| `snapshots` | `notebook`          | `NotebookState.dump()` of the confirmed log |

The log is written a batch per record, as the stream delivers it: taking in a
page of 1,000 events is one ``put``, not a thousand. The key is a record's
*last* seq, so the records that hold anything after a snapshot at seq S are
exactly those keyed above ``[notebook, S]``.

Several tabs share these stores: each writes pending keys in its own range
and drafts under its own number (``client.model.TAB_SPAN``, ``client.tabs``),
so no tab overwrites another's records. Drafts keyed ``[notebook, cell]``
are from before tab numbers (tab 0).

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
import logging
from typing import Any

import js
from pyodide.ffi import JsProxy, create_once_callable, create_proxy, to_js

from .model import LocalChanges, Saved, key_owner

log = logging.getLogger("anode.client.store")

DB_NAME = "anode"
#: 2 added the ``log`` store (batched records).
DB_VERSION = 2
STORES = ("log", "confirmed", "pending", "drafts", "snapshots")


class StoreError(Exception):
    """IndexedDB refused (quota, private mode, a blocked upgrade)."""


def _wait(
    target: JsProxy, ok: str = "success", fail: tuple[str, ...] = ("error",)
) -> asyncio.Future:
    """A future that resolves when ``target`` (a request or a transaction) fires ``ok``."""
    future: asyncio.Future = asyncio.get_event_loop().create_future()
    proxies: list[JsProxy] = []

    def succeeded(_event: Any) -> None:
        if not future.done():
            future.set_result(getattr(target, "result", None) if ok == "success" else None)

    def failed(event: Any) -> None:
        if future.done():
            return
        if str(event.type) == "blocked":  # a tab of an older page keeps the old version open
            future.set_exception(
                StoreError("a tab with an older version of Anode is open: close it and reload")
            )
        else:
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
        #: Given up to a newer page's upgrade: nothing more can be read or written.
        self.closed = False
        self._versionchange = create_proxy(self._close_for_upgrade)
        db.addEventListener("versionchange", self._versionchange)

    def _close_for_upgrade(self, _event: Any) -> None:
        """A newer page wants to upgrade the database: let it (this tab then keeps nothing more)."""
        log.warning(
            "a newer Anode upgraded this browser's storage; reload this tab to keep using it"
        )
        self.closed = True
        self._db.close()

    @classmethod
    async def open(cls) -> Store:
        request = js.indexedDB.open(DB_NAME, DB_VERSION)

        def upgrade(_event: Any) -> None:
            db = request.result
            for name in STORES:
                if not db.objectStoreNames.contains(name):
                    db.createObjectStore(name)

        # Called at most once, and perhaps after we stopped waiting: a blocked open goes on
        # and completes once the older tab lets go; this tab, working without it, then closes it.
        request.addEventListener("upgradeneeded", create_once_callable(upgrade))
        try:
            db = await _wait(request, fail=("error", "blocked"))
        except StoreError:
            request.addEventListener(
                "success", create_once_callable(lambda _event: request.result.close())
            )
            raise
        return cls(db)

    async def load(self, notebook: str, tab: int = 0) -> Saved:
        """Everything stored for ``notebook`` (empty for one never opened here), as tab ``tab`` sees
        it."""
        tx = self._db.transaction(to_js(["snapshots"]), "readonly")
        snapshot_text = await _wait(tx.objectStore("snapshots").get(notebook))
        snapshot = json.loads(snapshot_text) if snapshot_text is not None else None
        after = snapshot["seq"] if snapshot else 0

        tx = self._db.transaction(to_js(["log", "confirmed", "pending", "drafts"]), "readonly")
        batches = tx.objectStore("log").getAll(_notebook_range(notebook, after))
        singles = tx.objectStore("confirmed").getAll(_notebook_range(notebook, after))
        pending_keys = tx.objectStore("pending").getAllKeys(_notebook_range(notebook))
        pending = tx.objectStore("pending").getAll(_notebook_range(notebook))
        draft_keys = tx.objectStore("drafts").getAllKeys(_notebook_range(notebook))
        drafts = tx.objectStore("drafts").getAll(_notebook_range(notebook))
        await _wait(tx, ok="complete", fail=("error", "abort"))
        saved = Saved(
            snapshot=snapshot,
            confirmed=_events_after(after, batches.result.to_py(), singles.result.to_py()),
            pending=[
                (int(key[1]), json.loads(text))
                for key, text in zip(
                    pending_keys.result.to_py(), pending.result.to_py(), strict=False
                )
            ],
        )
        for key, text in zip(draft_keys.result.to_py(), drafts.result.to_py(), strict=False):
            owner = int(key[2]) if len(key) > 2 else 0
            if owner == tab:
                saved.drafts[str(key[1])] = json.loads(text)
            else:
                saved.other_drafts.append((owner, str(key[1]), json.loads(text)))
        if any(key_owner(key) != tab for key, _ in saved.pending):
            # Another tab's events may be in the log already (it died before it saw them
            # come back): the whole stored log's ids say which.
            tx = self._db.transaction(to_js(["log", "confirmed"]), "readonly")
            batches = tx.objectStore("log").getAll(_notebook_range(notebook))
            singles = tx.objectStore("confirmed").getAll(_notebook_range(notebook))
            await _wait(tx, ok="complete", fail=("error", "abort"))
            every = _events_after(0, batches.result.to_py(), singles.result.to_py())
            saved.confirmed_ids = {event["id"] for event in every}
        return saved

    def commit(self, notebook: str, changes: LocalChanges, tab: int = 0) -> asyncio.Future:
        """Write ``changes`` in one transaction, issued now; await the result to know it is stored.

        The transaction spans only the stores ``changes`` touch: a keystroke's
        draft is a few calls into IndexedDB, not a transaction over all five.
        Raises ``StoreError`` once the database was given up (``closed``).
        """
        if self.closed:
            raise StoreError(
                "a newer version of Anode upgraded this browser's storage: reload this tab"
            )
        names = [
            name for name, touched in (
                ("log", changes.confirmed),
                ("pending", changes.pending_put or changes.pending_delete),
                ("drafts", changes.drafts or changes.drafts_delete),
                ("snapshots", changes.snapshot is not None),
            ) if touched
        ]  # fmt: skip
        tx = self._db.transaction(to_js(names), "readwrite")
        done = _wait(tx, ok="complete", fail=("error", "abort"))
        if changes.confirmed:
            last = changes.confirmed[-1]["seq"]
            tx.objectStore("log").put(json.dumps(changes.confirmed), _key(notebook, last))
        if "pending" in names:
            pending = tx.objectStore("pending")
            for key, event in changes.pending_put:
                pending.put(json.dumps(event), _key(notebook, key))
            for key in changes.pending_delete:
                pending.delete(_key(notebook, key))
        if "drafts" in names:
            drafts = tx.objectStore("drafts")
            for owner, cell_id in changes.drafts_delete:
                drafts.delete(_key(notebook, cell_id, owner) if owner else _key(notebook, cell_id))
            for cell_id, ops in changes.drafts.items():
                if ops:
                    drafts.put(json.dumps(ops), _key(notebook, cell_id, tab))
                else:
                    drafts.delete(_key(notebook, cell_id, tab))
        if changes.snapshot is not None:
            snapshot = changes.snapshot
            tx.objectStore("snapshots").put(
                snapshot if isinstance(snapshot, str) else json.dumps(snapshot), notebook
            )
        return done

    async def notebooks(self) -> list[str]:
        """Every notebook this browser holds something of (for the home view offline)."""
        tx = self._db.transaction(to_js(["snapshots", "log", "confirmed", "pending"]), "readonly")
        snapshots = tx.objectStore("snapshots").getAllKeys()
        batches = tx.objectStore("log").getAllKeys()
        confirmed = tx.objectStore("confirmed").getAllKeys()
        pending = tx.objectStore("pending").getAllKeys()
        await _wait(tx, ok="complete", fail=("error", "abort"))
        found = dict.fromkeys(str(key) for key in snapshots.result.to_py())
        for request in (batches, confirmed, pending):
            found.update(dict.fromkeys(str(key[0]) for key in request.result.to_py()))
        return list(found)


def _events_after(after: int, batches: list[str], singles: list[str]) -> list[dict[str, Any]]:
    """The stored events past seq ``after``, once each, in seq order (batched records may
    overlap)."""
    events: dict[int, dict[str, Any]] = {}
    for text in singles:
        event = json.loads(text)
        events[event["seq"]] = event
    for text in batches:
        for event in json.loads(text):
            if event["seq"] > after:
                events[event["seq"]] = event
    return [events[seq] for seq in sorted(events)]
