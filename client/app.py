"""Which page to show, and the notebook page that ties model, store, sync and view.

``?notebook=ID`` opens a notebook (a URL to share); anything else is the
home view. The relay is the page's own origin, or the one ``?relay=URL`` or
the site's ``config.json`` names (``client.relay``; the relay must allow
this page's origin: ``anode serve --allow-origin``). With no relay at all
the page keeps notebooks in IndexedDB only. ``?token=`` is taken and
cleared from the address bar at once (``client.auth``).

The notebook page opens from IndexedDB first and renders at once, then
follows the relay; every change, local or from the log, goes through the
same steps: model → IndexedDB (one transaction) → push → render.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import js
from pyodide.ffi import create_once_callable, create_proxy

from shared_schema import ot
from shared_schema.ipynb import filename, write_notebook

from .auth import UNKNOWN, Credentials, Identity, TokenPrompt
from .browser import is_online, js_object, local_get, local_set, query_param, save_file, site_link
from .dom import h
from .home import HomeView
from .model import LOCAL_ACTOR, NotebookModel, Saved, key_owner
from .offline import keep_for_offline
from .presence import Presence
from .relay import NetworkError, Relay, find_relay
from .share import ShareDialog
from .status import SyncStatus
from .store import Store, StoreError
from .sync import Sync
from .tab_kernel import TabKernel
from .tabs import claim_tab
from .view import NotebookView

log = logging.getLogger("anode.client")

#: Seconds events wait, with no push answered meanwhile, before the header says
#: "N to sync" (offline it says so at once).
SYNC_NOTICE_DELAY = 1.0

#: localStorage key (+ notebook id) of where this person's runs go: "tab" or "server".
RUN_IN_KEY = "anode-run-in:"
#: When a run of this tab's kernel did not count (another kernel's claim landed first).
LOST_RUN = (
    "A cell this tab ran (offline, or in another tab too) was run by another kernel first: "
    "that run is the one that counts, and this tab's outputs of it are gone."
)


def _editing(action: Callable[..., Any]) -> Callable[..., Any]:
    """An action that changes the notebook: nothing happens for a viewer."""

    @functools.wraps(action)
    def guarded(self: NotebookPage, *args: Any, **kwargs: Any) -> Any:
        if not self.view.editable:
            return None
        return action(self, *args, **kwargs)

    return guarded


@dataclass
class Opened:
    """What a notebook page starts from: its model, restored, and where it keeps it."""

    model: NotebookModel
    #: None when IndexedDB is not available to this tab; ``storage_problem`` says why.
    store: Store | None
    storage_problem: str = ""


async def open_notebook(notebook_id: str, relay: Relay | None) -> Opened | None:
    """The notebook from IndexedDB, or from the relay's state when this browser holds
    nothing of it; None when the relay says there is no such notebook."""
    saved = Saved()
    store: Store | None = None
    problem = ""
    tab = await claim_tab()
    try:
        store = await Store.open()
        saved = await store.load(notebook_id, tab.number)
    except StoreError as error:  # private mode, quota, a blocked upgrade: the network only
        store, problem = None, _storage_problem(str(error))
    relay_state: dict[str, Any] | None = None
    if not (saved.snapshot or saved.confirmed or saved.pending):
        found, relay_state = await _relay_state(relay, notebook_id)
        if not found:
            return None
    live = tab.others
    if live is None:  # no Web Locks: adopt nothing another numbered tab wrote
        live = frozenset(key_owner(key) for key, _ in saved.pending) | {
            t for t, _, _ in saved.other_drafts
        }
        live -= {0}
    model = NotebookModel.restore(notebook_id, saved, tab=tab.number, live_tabs=live)
    if relay_state is not None:  # asked for only when nothing, pending included, is stored
        try:
            model.start_from(relay_state)
        except ValueError as error:  # another materializer's format: fold the log instead
            log.info("the relay's state is not one this page loads (%s); reading its log", error)
    js.document.body.dataset.tab = str(tab.number)
    return Opened(model, store, problem)


async def _relay_state(relay: Relay | None, notebook_id: str) -> tuple[bool, dict[str, Any] | None]:
    """For a notebook this browser holds nothing of: ``(known, the relay's state dump)``.

    One request instead of the whole log (``?form=internal``, docs/protocol.md).
    Unknown only when the relay says 404; offline, or with no relay, we
    cannot tell, and the stream (if any) brings the log later.
    """
    if relay is None:
        return True, None
    path = f"/api/notebooks/{js.encodeURIComponent(notebook_id)}/snapshot?form=internal"
    try:
        status, body = await relay.request("GET", path)
    except NetworkError:
        return True, None
    if status == 404:
        return False, None
    state = body.get("state") if status == 200 and isinstance(body, dict) else None
    return True, state if isinstance(state, dict) else None


def _storage_problem(why: str) -> str:
    log.warning("IndexedDB unavailable (%s): this tab keeps nothing across reloads", why)
    return (
        f"This tab cannot keep the notebook in the browser ({why}): your edits reach "
        "the relay while online, but are not kept across a reload."
    )


class NotebookPage:
    """One open notebook: the ``Actions`` the view calls, and the sync callbacks.

    Made whole from an ``Opened`` notebook: the view exists from the start;
    the sync loop and presence exist when there is a relay.
    """

    def __init__(
        self,
        root: Any,
        relay: Relay | None,
        credentials: Credentials | None,
        opened: Opened,
        cm: Any,
        md: Any,
    ) -> None:
        self.model = opened.model
        self.notebook_id = self.model.notebook_id
        self.store = opened.store
        #: Why IndexedDB is not available to this tab (shown under the header), if it is not.
        self._storage_problem = opened.storage_problem
        self._relay = relay
        self._credentials = credentials
        self.identity: Identity = UNKNOWN
        self._share: ShareDialog | None = None
        self._render_scheduled = False
        #: A flush is queued as a microtask (see ``_flush_soon``).
        self._flush_queued = False
        self._flush_proxy = create_proxy(self._flush)
        #: Since when (the event loop's clock) events have waited, and the render that
        #: will say so if they still wait then.
        self._unsynced_since: float | None = None
        self._sync_notice: asyncio.TimerHandle | None = None
        self._saving = 0
        self.view = NotebookView(root, cm, md, self)
        self.tab_kernel = TabKernel(self.model, self._commit, self._schedule_render, relay)
        #: Where this person's runs go while online ("tab" or "server"), kept per notebook.
        self.run_in = local_get(RUN_IN_KEY + self.notebook_id) or ("server" if relay else "tab")
        self.view.header.run_in.value = self.run_in
        self.view.header.run_in.hidden = relay is None
        self.sync: Sync | None = None
        self.presence: Presence | None = None
        if relay is not None:
            self.presence = Presence(relay, self.notebook_id, self._schedule_render)
            self.sync = Sync(
                relay,
                self.notebook_id,
                pending=self.model.pending_events,
                head=lambda: self.model.confirmed.seq,
                on_events=self._on_events,
                on_rejected=self._on_rejected,
                on_pushed=self._on_pushed,
                on_presence=self._on_presence,
                on_status=self._on_sync_status,
            )
            self.view.header.start_command = _kernel_command(relay, self.notebook_id)

    async def start(self) -> None:
        """Show the notebook at once, then follow the relay (when there is one)."""
        self._save()  # records adopted from a tab that is gone are ours now
        js.document.body.dataset.saving = "0"
        self.view.show_notice(self._storage_problem)
        if self._credentials is not None:
            self._set_identity(self._credentials.lookup(self.notebook_id)[1] or UNKNOWN)
        self._render()
        self._pagehide = create_proxy(lambda _event: self._leave())
        js.window.addEventListener("pagehide", self._pagehide)
        self._resume_tab_work()
        if self.sync is None or self.presence is None:
            self.view.show_notice(
                self._storage_problem
                or "A local notebook: it lives in this browser only, and its code runs in this "
                "tab. To share it, open it with a relay (anode serve; ?relay=URL)."
            )
            js.document.body.dataset.anode = "ready"
            self._preload_when_idle()
            return
        self.sync.start()
        asyncio.ensure_future(self._read_kernel_mode(self._relay))
        self.presence.start()
        self.view.header.show_my_name(self.presence.name)
        js.document.body.dataset.anode = "ready"
        self._preload_when_idle()
        if self._credentials is not None:
            identity = await self._credentials.who_am_i()
            if identity is not None:
                self._set_identity(identity)

    def _set_identity(self, identity: Identity) -> None:
        self.identity = identity
        self.model.set_actor(identity.actor)
        self.view.set_access(
            identity.can_edit(self.notebook_id), identity.can_share(self.notebook_id)
        )
        js.document.body.dataset.role = identity.role
        if self._storage_problem:  # the graver notice wins over "read-only"
            self.view.show_notice(self._storage_problem)
        self._resume_tab_work()  # now that the page knows whose requests are its person's

    async def _read_kernel_mode(self, relay: Relay) -> None:
        """Whether the relay starts kernels itself (``/api/health``'s ``kernels``, when it says)."""
        try:
            status, data = await relay.request("GET", "/api/health")
        except NetworkError:
            return
        mode = data.get("kernels") if status == 200 and isinstance(data, dict) else None
        if mode in ("auto", "none"):
            self.view.header.kernels_mode = mode
            self._schedule_render()

    def _leave(self) -> None:
        """The page is going away: keep what was typed, tell the others."""
        self.model.take_edits()
        self._save()
        if self.presence is not None:
            self.presence.leave()

    # --- the log comes in ---------------------------------------------------------

    def _on_events(self, events: list[dict[str, Any]]) -> None:
        received = self.model.receive(events)  # may raise Gap: sync reconnects
        self.tab_kernel.feed(events)
        self._resume_tab_work()
        for cell_id, ops_list in received.remote_edits.items():
            cell = self.view.cells.get(cell_id)
            if cell is not None:
                for ops in ops_list:
                    cell.apply_remote(ops)
        self._show_log_text(received.reset)
        self.model.take_edits()  # a confirmed edit of ours frees its cell's buffer to go
        self._commit()

    def _on_rejected(self, event_id: str, error: dict[str, Any]) -> None:
        lost = None
        if error.get("error") == "not_your_session":
            lost = self.model.drop_lost_run(event_id)
        self._show_log_text(self.model.reject(event_id))
        if lost is not None:
            self.view.show_notice(LOST_RUN)
        self._commit()

    def _on_pushed(self, seqs: dict[str, int]) -> None:
        reset = self.model.pushed(seqs)
        if reset is not None:
            self._show_log_text(reset)
            self._commit()

    def _show_log_text(self, cell_ids: set[str]) -> None:
        """These cells' edits were dropped: their editors show the model's text again."""
        for cell_id in cell_ids:
            cell = self.view.cells.get(cell_id)
            if cell is not None:
                cell.set_text(self.model.text(cell_id))

    def _on_presence(self, signal: dict[str, Any]) -> None:
        if self.presence is not None:
            self.presence.receive(signal)

    # --- writing --------------------------------------------------------------------

    def _commit(self) -> None:
        """Hand this tab's kernel what is new, store what changed (one transaction), push it,
        and redraw (the kernel first: it works in its own thread meanwhile)."""
        self.tab_kernel.feed()
        self._save()
        if self.sync is not None and self.model.pending:
            self.sync.kick()
        self._schedule_render()

    def _save(self) -> None:
        """Write what changed to IndexedDB now (the transaction is issued before this returns).

        ``<body data-saving>`` counts transactions not yet committed: "0" means
        everything on screen would survive a reload.
        """
        changes = self.model.take_changes()
        if not changes or self.store is None:
            return
        try:
            done = self.store.commit(self.notebook_id, changes, self.model.tab)
        except StoreError as error:  # given up to a newer tab's upgrade: go on without it
            self._lose_store(str(error))
            return
        self._saving += 1
        js.document.body.dataset.saving = str(self._saving)
        done.add_done_callback(self._saved)

    def _lose_store(self, why: str) -> None:
        self.store = None
        self._storage_problem = _storage_problem(why)
        self.view.show_notice(self._storage_problem)

    def _saved(self, future: asyncio.Future) -> None:
        self._saving -= 1
        js.document.body.dataset.saving = str(self._saving)
        _log_failure(future)

    def _flush_soon(self) -> None:
        """Send the buffered keystrokes in a microtask: the keys of one JavaScript task (a
        paste) go together, and before the browser's next frame (the loop's next turn can
        wait for it)."""
        if not self._flush_queued:
            self._flush_queued = True
            js.queueMicrotask(self._flush_proxy)

    def _flush(self) -> None:
        self._flush_queued = False
        self.model.take_edits()
        self._commit()

    def _schedule_render(self) -> None:
        self.view.header.tab_kernel = (self.tab_kernel.status, self.tab_kernel.detail)
        if not self._render_scheduled:
            self._render_scheduled = True
            asyncio.get_event_loop().call_soon(self._render)

    def _render(self) -> None:
        self._render_scheduled = False
        self.view.render(self.model.state(), self._sync_status())
        self.view.show_people(
            list(self.presence.others.values()) if self.presence is not None else []
        )
        self.view.list.dataset.seq = str(self.model.confirmed.seq)

    def _sync_status(self) -> SyncStatus:
        """Online or not, and how many events wait; a render is due when the wait becomes late."""
        sync = self.sync
        online = sync.online if sync is not None else False
        status = SyncStatus(
            online, self.model.unsynced(), sync.last_error if sync is not None else ""
        )
        if not status.unsynced:
            self._unsynced_since = None
            return status
        loop = asyncio.get_event_loop()
        if self._unsynced_since is None:
            self._unsynced_since = loop.time()
        quiet_since = max(self._unsynced_since, sync.last_push if sync is not None else 0.0)
        status.late = not online or loop.time() - quiet_since >= SYNC_NOTICE_DELAY
        if not status.late and self._sync_notice is None:
            self._sync_notice = loop.call_at(quiet_since + SYNC_NOTICE_DELAY, self._sync_notice_due)
        return status

    def _sync_notice_due(self) -> None:
        self._sync_notice = None
        self._schedule_render()

    # --- Actions (called by the view) ---------------------------------------------

    def text(self, cell_id: str) -> str:
        return self.model.text(cell_id)

    @_editing
    def edit(self, cell_id: str, ops: ot.TextOps) -> None:
        unsynced = self.model.unsynced()
        self.model.edit(cell_id, ops)
        # ot.js's three states: with no edit of this cell in flight the keystroke goes at
        # once; else it waits in the cell's buffer (kept at once) and goes, composed with
        # whatever follows, when the edit in flight is confirmed (``_on_events``).
        if self.model.has_edit_in_flight(cell_id):
            self._save()
        else:
            self._flush_soon()
        if self.model.unsynced() != unsynced:  # else the editor already shows all that changed
            self._schedule_render()

    def _runner(self) -> str | None:
        """Where a run asked now goes: this tab's kernel with no relay, offline, or when
        the person chose it; else (``None``) the relay's kernels."""
        sync = self.sync
        offline = sync is None or not is_online() or (not sync.online and bool(sync.last_error))
        return "tab" if offline or self.run_in == "tab" else None

    def _ask_run(self, cell_id: str) -> str | None:
        runner = self._runner()
        execution_id = self.model.run(cell_id, runner)
        if execution_id is not None and runner == "tab":
            self.tab_kernel.start()
        return execution_id

    def _resume_tab_work(self) -> None:
        """Runs this person asked of a tab that no tab ran yet (the page was closed, or they
        were asked from elsewhere): this tab's kernel takes them."""
        if self.tab_kernel.status != "off":
            return  # on already, or failed (a start would fail again; Run tries anew)
        state = self.model.state()
        mine = (self.model.actor, LOCAL_ACTOR)
        if any(run.runner == "tab" and run.requested_by in mine for run in state.pending()):
            self.tab_kernel.start()

    def set_run_in(self, where: str) -> None:
        if where in ("tab", "server"):
            self.run_in = where
            local_set(RUN_IN_KEY + self.notebook_id, where)
            self._preload_when_idle()

    def _on_sync_status(self) -> None:
        if not is_online():  # the browser is offline: runs go to this tab from now on
            self._preload_when_idle()
        self._schedule_render()

    def _preload_when_idle(self) -> None:
        """Where runs go to this tab, load its Python once the page is idle, so that the
        first Run finds it loaded (no kernel until then: nothing goes in the log)."""
        if self._runner() != "tab" or self.tab_kernel.status != "off":
            return
        preload = create_once_callable(lambda *_: self.tab_kernel.preload())
        if hasattr(js.window, "requestIdleCallback"):
            js.window.requestIdleCallback(preload, js_object({"timeout": 3000}))
        else:  # Safari
            js.window.setTimeout(preload, 1000)

    @_editing
    def run(self, cell_id: str, then: str) -> None:
        if self._ask_run(cell_id) is None:
            self.view.stop_editing(cell_id)  # "running" a markdown cell shows it rendered
        if then == "insert":
            self.add_cell(cell_id, "code", focus=True)
        elif then == "advance":
            following = self.view.neighbour(cell_id, 1)
            if following is None:
                self.add_cell(cell_id, "code", focus=True)
            else:
                self.view.focus_cell(following, "start")
        self._commit()

    @_editing
    def add_cell(self, after: str | None, cell_type: str, *, focus: bool = False) -> str:
        cell_id = self.model.create_cell(after, cell_type)
        self._commit()
        self._render()  # the view must hold the cell before anyone focuses it
        if focus:
            self.view.focus_cell(cell_id)
        return cell_id

    @_editing
    def delete_cell(self, cell_id: str) -> None:
        self.model.delete_cell(cell_id)
        self._commit()

    @_editing
    def move_cell(self, cell_id: str, offset: int) -> None:
        order = self.view.order
        index = order.index(cell_id)
        target = index + offset
        if target == index or not 0 <= target < len(order):
            return
        rest = order[:index] + order[index + 1 :]
        self.model.move_cell(cell_id, rest[target - 1] if target > 0 else None)
        self._commit()

    @_editing
    def change_type(self, cell_id: str, cell_type: str) -> None:
        cell = self.model.state().cells.get(cell_id)
        if cell is not None and cell.cell_type != cell_type:
            self.model.change_type(cell_id, cell_type)
            self._commit()

    @_editing
    def interrupt(self, cell_id: str) -> None:
        cell = self.model.state().cells.get(cell_id)
        if cell is not None and cell.execution_id:
            self.model.interrupt(cell.execution_id)
            self._commit()

    def moved(self, cell_id: str | None, cursor: tuple[int, int] | None) -> None:
        if self.presence is not None:
            self.presence.move(cell_id, cursor)

    def rename(self, name: str) -> None:
        if self.presence is not None:
            self.view.header.show_my_name(self.presence.rename(name), committed=True)

    def download(self) -> None:
        """The notebook as ``.ipynb``, from the local log: works offline too."""
        state = self.model.state()
        document = write_notebook(state)
        text = json.dumps(document, ensure_ascii=False, indent=1, sort_keys=True) + "\n"
        save_file(filename(state.title or self.notebook_id), text, "application/x-ipynb+json")

    def share(self) -> None:
        if self._relay is None:
            return
        if self._share is None:
            self._share = ShareDialog(self._relay, self.notebook_id)
        self._share.open()

    @_editing
    def run_all(self) -> None:
        self._run_many(self.model.state().visible_cells())

    @_editing
    def run_above(self, cell_id: str) -> None:
        """Every code cell above this one, in order (Jupyter's "Run All Above")."""
        cells = self.model.state().visible_cells()
        index = next((i for i, cell in enumerate(cells) if cell.id == cell_id), 0)
        self._run_many(cells[:index])

    @_editing
    def run_below(self, cell_id: str) -> None:
        """This cell and every code cell below it (Jupyter's "Run All Below")."""
        cells = self.model.state().visible_cells()
        index = next((i for i, cell in enumerate(cells) if cell.id == cell_id), len(cells))
        self._run_many(cells[index:])

    def _run_many(self, cells: list[Any]) -> None:
        for cell in cells:
            self._ask_run(cell.id)  # markdown and raw cells are skipped
        self._commit()

    @_editing
    def cancel(self, cell_id: str) -> None:
        """Take a queued run of this cell off the queue (a running one is interrupted instead)."""
        cell = self.model.state().cells.get(cell_id)
        run = (
            self.model.state().executions.get(cell.execution_id)
            if cell and cell.execution_id
            else None
        )
        if run is not None and run.status in ("pending", "assigned"):
            self.model.cancel(run.id)
            self._commit()

    @_editing
    def clear_cell(self, cell_id: str) -> None:
        self.model.clear_outputs(cell_id)
        self._commit()

    @_editing
    def interrupt_all(self) -> None:
        state = self.model.state()
        for execution_id in state.queue:
            if state.executions[execution_id].status == "executing":
                self.model.interrupt(execution_id)
        self._commit()

    @_editing
    def restart_kernel(self) -> None:
        self.model.restart_kernels()
        self._commit()

    @_editing
    def clear_outputs(self) -> None:
        self.model.clear_outputs(None)
        self._commit()

    @_editing
    def remove_requirement(self, package: str) -> None:
        self.model.remove_requirement(package)
        self._commit()

    @_editing
    def set_title(self, title: str) -> None:
        if title != self.model.state().title:
            self.model.set_title(title[:256])
            self._commit()


def _kernel_command(relay: Relay, notebook_id: str) -> str:
    """The shell command that serves this notebook with a kernel (its token is made with
    ``anode token create --notebook ID --role kernel`` and given as ANODE_TOKEN)."""
    return f"anode kernel --relay {relay.origin} --notebook {notebook_id}"


def _unknown_notebook(notebook_id: str) -> Any:
    message = h(
        "p", {"class": "message unknown-notebook"}, f"This relay has no notebook {notebook_id!r}. "
    )
    message.append(h("a", {"href": site_link()}, "See the notebooks it has."))
    return h("main", {"class": "home-page"}, message)


def _log_failure(future: asyncio.Future) -> None:
    if not future.cancelled() and future.exception() is not None:
        log.error("could not write to IndexedDB: %s", future.exception())


async def main(root: Any, cm: Any, md: Any) -> None:
    """Show the page the URL asks for."""
    notebook_id = query_param("notebook")
    base_url = await find_relay()
    relay = Relay(base_url) if base_url is not None else None
    credentials = None
    if relay is not None:
        credentials = Credentials(relay)
        credentials.take_token_from_url(notebook_id)
        relay.token = credentials.lookup(notebook_id)[0]
        prompt: list[TokenPrompt] = []

        def ask_for_token(reason: str) -> None:
            if not prompt:
                prompt.append(TokenPrompt(credentials, notebook_id))
            prompt[0].show(reason)

        relay.on_unauthorized = ask_for_token
    if notebook_id:
        opened = await open_notebook(notebook_id, relay)
        if opened is None:
            root.replaceChildren(_unknown_notebook(notebook_id))
            js.document.body.dataset.anode = "ready"
        else:
            page = NotebookPage(root, relay, credentials, opened, cm, md)
            _PAGES.append(page)  # keep it alive: its proxies call back into it
            await page.start()
    else:
        home = HomeView(root, relay)
        js.document.body.dataset.anode = "ready"
        _PAGES.append(home)
        await home.load()
    await keep_for_offline()


_PAGES: list[Any] = []
