"""This tab's kernel: the same ``kernel_headless`` Python, run in the person's own tab.

The third host beside Node and the headless browser (docs/kernels.md, "The
tab host"). Where the others' host talks to a relay, this one is the page:

* **Where it runs.** A Web Worker inside an ``<iframe sandbox="allow-scripts">``
  (``client/js/tab_frame.js``, given as ``srcdoc``): an opaque origin, so the
  code of a cell cannot read this page's token, IndexedDB, Cache Storage,
  cookies or DOM. The worker cannot fetch the site either; the page answers
  its fetches of the site's public static files (``_serve_fetch``), and
  nothing else.
* **The log it folds.** The page's own view of the notebook: the kernel
  starts from the page's state (``NotebookState.dump``) and is fed, in the
  order the page learns of them, every event after it — the person's own
  pending events, the log's confirmed ones and the kernel's own pushes —
  numbered by a local counter. Text edits are left out: a kernel reads a
  run's source from its ``executionRequested``.
* **Its pushes** become this page's pending events, exactly like an edit:
  stored in IndexedDB, pushed with the person's token when the relay is
  there, and decided by the log when they land (``Execution.claimable_by``:
  a tab kernel claims only its own person's requests asked of a tab).
  Events a kernel may not write (anything but its own session's kernel
  events) are refused here before they go anywhere.
* **Interrupts** write SIGINT into the frame's SharedArrayBuffer when the
  page is cross-origin isolated; otherwise, after ``FALLBACK_SECONDS``, the
  worker is replaced by a fresh one (the namespace is lost, and said so).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
from collections.abc import Callable
from typing import Any

import js
import pyodide
from pyodide.ffi import JsBuffer, create_proxy, to_js

from shared_schema.ids import new_session_id

from .browser import NetworkError, fetch, js_object, site_root
from .model import NotebookModel
from .relay import Relay

log = logging.getLogger("anode.client.tab_kernel")

LEASE_SECONDS = 10.0
#: Without a SharedArrayBuffer, how long an interrupt waits before the worker is replaced.
FALLBACK_SECONDS = 1.0
#: How often an interrupt is repeated until the kernel says it arrived.
INTERRUPT_REPEAT = 0.25
#: What the worker may fetch from the site through the page: public static files only.
SERVED_PREFIXES = ("vendor/", "kernel_headless/", "shared_schema/", "wheels/", "pyodide-packages/")
#: Where the page keeps the kernel's Pyodide memory snapshot (Cache Storage; sw.js keeps it).
SNAPSHOT_CACHE = "anode-tab-snapshot"


class TabKernel:
    """Starts, feeds and serves this tab's kernel for one notebook."""

    def __init__(
        self,
        model: NotebookModel,
        commit: Callable[[], None],
        on_status: Callable[[], None],
        relay: Relay | None = None,
    ) -> None:
        self.model = model
        self._commit = commit
        self._on_status = on_status
        self._relay = relay
        #: off, starting, idle, busy, failed
        self.status = "off"
        self.detail = ""
        self.session_id = ""
        #: Interrupts can stop a cell that computes (the frame is cross-origin isolated).
        self.interrupts = False
        self._frame: Any = None
        self._frame_ready: asyncio.Future[None] | None = None
        self._listener: Any = None
        self._worker = 0  # which spawn the frame's worker messages must come from
        #: The MessagePort to the current worker (the frame hands it over), and what waits
        #: for it.
        self._port: Any = None
        self._port_listener: Any = None
        self._unsent: list[tuple[Any, list[Any]]] = []
        self._fed: set[str] = set()
        self._head = 0
        self._running: str | None = None
        self._interrupting: str | None = None
        self._interrupt_task: asyncio.Task | None = None
        self._beat_task: asyncio.Task | None = None
        self._worker_source = ""
        self._config: dict[str, Any] = {}
        #: Loading Python ahead (``preload``), or done; the worker became the kernel (``_begin``);
        #: the worker failed.
        self._prepared: asyncio.Future[None] | None = None
        self._began = False
        self._worker_dead = False
        #: The current worker has not said "loaded": no cell can have run in it, so it may ask
        #: for a snapshot and give one (a cell's code could post the same messages later, and
        #: a snapshot it gave would start every later kernel of this browser).
        self._loading = False
        #: The key of the snapshot that worker asked for and the page has none of.
        self._snapshot_key: str | None = None

    # --- starting ---------------------------------------------------------------------

    @property
    def on(self) -> bool:
        return self.status in ("starting", "idle", "busy")

    def preload(self) -> None:
        """Load Python in a worker ahead of the first Run (the page is idle and runs cells
        here): no kernel yet, nothing in the log, until ``start``."""
        if self.status == "off" and self._prepared is None:
            self._prepared = asyncio.ensure_future(self._prepare())
            self._prepared.add_done_callback(self._preloaded)

    def _preloaded(self, task: asyncio.Future[None]) -> None:
        """A preload that failed (offline, a file missing) is said in the console; the
        first Run tries again and says it on the page."""
        if not task.cancelled() and task.exception() is not None:
            log.warning("could not load the tab kernel ahead: %s", task.exception())
            if self._prepared is task:
                self._prepared = None

    def start(self) -> None:
        """Start the kernel (once); the page goes on at once, the kernel follows."""
        if self.on:
            return
        self.status, self.detail = "starting", "loading Python…"
        self._on_status()
        asyncio.ensure_future(self._start())

    async def _start(self) -> None:
        try:
            if self._prepared is None:
                self._prepared = asyncio.ensure_future(self._prepare())
            await self._prepared
            if self._worker_dead:  # it failed before: a fresh one
                self._spawn()
            self.session_id = new_session_id()
            self._begin(restarted=False)
            if self._relay is not None and self._beat_task is None:
                self._beat_task = asyncio.ensure_future(self._heartbeats())
        except Exception as error:  # a file missing from the site, a frame that never came up
            log.exception("the tab kernel did not start")
            self._prepared = None
            self._failed(f"could not start: {error}")

    async def _prepare(self) -> None:
        """The frame, the worker's script and config, and a worker loading Python."""
        root = site_root()
        _, source, manifest, health = await asyncio.gather(
            self._open_frame(),
            _text(root + "kernel_headless/host/tab_worker.js"),
            _text(root + "kernel_headless/files.json"),
            self._health(),
        )
        self._worker_source = source
        self._config = self._kernel_config(root, json.loads(manifest), health)
        self._spawn()

    def _kernel_config(
        self, root: str, manifest: dict[str, Any], health: dict[str, Any]
    ) -> dict[str, Any]:
        packages = health.get("pyodide_packages")
        # The site's own wheelhouse first (``anode build-site --wheels``; the same address as
        # the relay's when the relay serves the page), then the relay's: micropip goes on to
        # the next index where one has no such project.
        wheelhouses = [root + "wheels/simple/"]
        if self._relay is not None:
            wheelhouses.append(self._relay.url("/wheels/simple/"))
        return {
            "host": "tab",
            "label": "this tab",
            "lease_seconds": LEASE_SECONDS,
            "site": root,
            "pyodide_url": root + "vendor/pyodide/",
            "pyodide_version": pyodide.__version__,  # the same vendored Pyodide as the page's
            # None: Pyodide's CDN (host/tab_worker.js); the client names no remote address.
            "package_base_url": packages if isinstance(packages, str) else None,
            "python_files": manifest["python_files"],
            "micropip_wheel": root + manifest["micropip_wheel"],
            "index_urls": list(dict.fromkeys(wheelhouses)),  # and PyPI (host/tab_worker.js)
        }

    async def _health(self) -> dict[str, Any]:
        if self._relay is None:
            return {}
        try:
            status, body = await self._relay.request("GET", "/api/health")
        except NetworkError:
            return {}
        return body if status == 200 and isinstance(body, dict) else {}

    async def _open_frame(self) -> None:
        if self._frame is not None:
            return
        glue = await _text(site_root() + "client/js/tab_frame.js")
        self._frame_ready = asyncio.get_running_loop().create_future()
        self._listener = create_proxy(self._on_message)
        js.window.addEventListener("message", self._listener)
        frame = js.document.createElement("iframe")
        frame.setAttribute("sandbox", "allow-scripts")
        frame.setAttribute("allow", "cross-origin-isolated")
        frame.setAttribute("title", "this tab's kernel")
        frame.className = "tab-kernel-frame"
        frame.hidden = True
        frame.srcdoc = f"<!doctype html><script>{glue}</script>"
        js.document.body.append(frame)
        self._frame = frame
        await asyncio.wait_for(self._frame_ready, 10)

    def _spawn(self) -> None:
        """A fresh worker in the frame: it loads Python, then waits for ``_begin``."""
        self._worker += 1
        self._running = None
        self._snapshot_key = None
        self._loading = True
        self._began = self._worker_dead = False
        self._close_port()
        # As JSON text: a JavaScript object would lose every None (``null`` becomes undefined).
        config = json.dumps(self._config)
        self._post_frame({"type": "spawn", "source": self._worker_source, "config": config})

    def _begin(self, *, restarted: bool) -> None:
        """Make the worker this notebook's kernel, from the page's state as it is now."""
        state = self.model.state().copy()
        self._head = state.seq
        self._fed = set(self._feedable_ids())
        self._began = True
        start = {
            "session_id": self.session_id,
            "actor": self.model.actor,  # known by now (Python may have loaded before it was)
            "restarted": restarted,
            "state": state.dump(),
        }
        self._post_worker({"type": "start", "config": json.dumps(start)})

    def _restart(self) -> None:
        self._spawn()
        self._begin(restarted=True)

    def _post_frame(self, message: dict[str, Any]) -> None:
        if self._frame is None or self._frame.contentWindow is None:
            return
        self._frame.contentWindow.postMessage(
            to_js(message, dict_converter=js.Object.fromEntries), "*"
        )

    def _post_worker(self, message: Any, transfer: list[Any] | None = None) -> None:
        """To the current worker through its port (kept in order until the port arrives)."""
        if not isinstance(message, str):
            message = to_js(message, dict_converter=js.Object.fromEntries)
        if self._port is None:
            self._unsent.append((message, transfer or []))
        elif transfer:
            self._port.postMessage(message, to_js(transfer))
        else:
            self._port.postMessage(message)

    def _to_kernel(self, message: dict[str, Any]) -> None:
        self._post_worker(json.dumps(message))

    def _take_port(self, port: Any) -> None:
        self._port = port
        self._port_listener = create_proxy(self._on_port_message)
        port.addEventListener("message", self._port_listener)
        port.start()
        for message, transfer in self._unsent:
            self._post_worker(message, transfer)
        self._unsent = []

    def _close_port(self) -> None:
        if self._port is not None:
            self._port.removeEventListener("message", self._port_listener)
            self._port.close()
            self._port_listener.destroy()
        self._port = self._port_listener = None
        self._unsent = []

    def _failed(self, why: str) -> None:
        self.status, self.detail = "failed", why
        self._on_status()

    # --- messages from the frame (untrusted: a cell's code can post anything) ----------

    def _on_message(self, event: Any) -> None:
        if self._frame is None or event.source != self._frame.contentWindow:
            return
        data = event.data
        kind = str(getattr(data, "type", "") or "")
        if kind == "frame_ready":
            if self._frame_ready is not None and not self._frame_ready.done():
                self._frame_ready.set_result(None)
        elif int(getattr(data, "worker", 0) or 0) != self._worker:
            return  # from a worker that was replaced
        elif kind == "worker_port" and self._port is None and event.ports.length == 1:
            self._take_port(event.ports[0])
        elif kind == "worker":  # it failed to start, or crashed
            self._on_port_message(data)

    def _on_port_message(self, event: Any) -> None:
        try:
            self._from_worker(event.data)
        except Exception:  # whatever the worker says, the page goes on
            log.exception("a message from the tab kernel was not understood")

    def _from_worker(self, data: Any) -> None:
        if isinstance(data, str):
            self._from_kernel(json.loads(data))
            return
        kind = str(getattr(data, "type", "") or "")
        if kind == "log":
            log.info("tab kernel: %s", str(data.line)[:2000])
        elif kind == "fetch":
            asyncio.ensure_future(self._serve_fetch(int(data.id), str(data.url)))
        elif kind == "snapshot_get":
            if self._loading:
                asyncio.ensure_future(self._serve_snapshot(int(data.id), str(data.material)))
        elif kind == "snapshot_put":
            if self._loading and self._snapshot_key is not None:
                asyncio.ensure_future(self._keep_snapshot(self._snapshot_key, data.body))
        elif kind == "ready":
            self.interrupts = bool(data.interrupts)
            js.document.body.dataset.tabKernel = "ready"
            self.status, self.detail = "idle", ""
            self._on_status()
        elif kind == "loaded":
            self._loading = False
            js.document.body.dataset.tabKernelLoaded = str(getattr(data, "source", "") or "")
        elif kind == "fatal":
            self._loading = False
            self._worker_dead = True
            if not self._began:  # loading ahead, unasked: the first Run tries again, and says
                log.warning("could not load the tab kernel ahead: %s", str(data.error)[:2000])
                return
            log.error("the tab kernel failed: %s", str(data.error)[:2000])
            self._failed(str(data.error).split("\n")[0][:300])

    def _from_kernel(self, message: dict[str, Any]) -> None:
        kind = message.get("type")
        if kind == "push":
            self._pushes([message])
        elif kind == "pushes":
            self._pushes(list(message.get("pushes") or []))
        elif kind == "busy":
            self._running = str(message.get("execution_id") or "") or None
            self._set_status("busy")
            self.check_interrupts()
        elif kind == "idle":
            self._running = None
            self._interrupting = None
            self._set_status("idle")
        elif kind == "interrupt_taken":
            self._interrupting = None
        elif kind == "restart":
            self._restart()
        elif kind == "exit":
            self.status, self.detail = "off", "the session ended"
            self._on_status()

    def _set_status(self, status: str) -> None:
        if self.status in ("idle", "busy") and self.status != status:
            self.status = status
            self._on_status()

    # --- the kernel's pushes ----------------------------------------------------------

    def _pushes(self, pushes: list[dict[str, Any]]) -> None:
        results = []
        for push in pushes:
            push_id = push.get("id")
            events = push.get("events")
            problem = self.model.kernel_refusal(events, self.session_id)
            if problem is not None:
                log.error("the tab kernel's push was refused: %s", problem)
                error = {"error": "not_your_session", "detail": problem}
                message = {"type": "push_failed", "id": push_id, "status": 403, "error": error}
                self._to_kernel(message)
                continue
            self.model.add_kernel_events(events)
            results.append({"id": push_id, "seqs": self._append(events)})
        if results:  # the kernel hears first; storing follows in this same task
            self._to_kernel({"type": "pushed", "results": results, "head": self._head})
            self._commit()  # stores them, sends them to the relay, redraws

    def _append(self, events: list[dict[str, Any]]) -> list[int]:
        """Put the kernel's own events in its log (the page's order), and feed them back."""
        stored = []
        for raw in events:
            self._head += 1
            self._fed.add(raw["id"])
            stored.append({**raw, "seq": self._head, "actor": self.model.actor, "ts": time.time()})
        self._send_events(stored)
        return [item["seq"] for item in stored]

    # --- feeding the log ----------------------------------------------------------------

    def _feedable_ids(self) -> list[str]:
        return [event["id"] for event in self.model.pending_events()]

    def feed(self, confirmed: list[dict[str, Any]] | None = None) -> None:
        """Hand the kernel what it has not seen: confirmed events from the log, then the
        person's own new pending events. Called after every change of the model."""
        if not self._began or not self.on:
            return  # no kernel yet: it starts from the page's state as it is then
        out: list[dict[str, Any]] = []
        now = time.time()
        for raw in confirmed or ():
            if raw["id"] not in self._fed:
                self._fed.add(raw["id"])
                if raw["name"] != "cellSourceEdited":
                    self._head += 1
                    out.append({**raw, "seq": self._head})
        fresh = []
        for event in reversed(self.model.pending_events()):  # new ones are at the end
            if event["id"] in self._fed:
                break
            fresh.append(event)
        for event in reversed(fresh):
            self._fed.add(event["id"])
            if event["name"] != "cellSourceEdited":
                self._head += 1
                out.append({**event, "seq": self._head, "actor": self.model.actor, "ts": now})
        if out:
            self._send_events(out)
        self.check_interrupts()

    def _send_events(self, stored: list[dict[str, Any]]) -> None:
        body = json.dumps({"events": stored}, separators=(",", ":"))
        self._to_kernel({"type": "events", "body": body, "last": self._head})

    # --- interrupts ---------------------------------------------------------------------

    def check_interrupts(self) -> None:
        """Interrupt the running cell when the page's view asks for it (an interrupt, a
        cancel, from anyone who may)."""
        running = self._running
        if running is None or self._interrupting == running:
            return
        run = self.model.state().executions.get(running)
        if run is None or not (run.interrupt_requested or run.status == "cancelled"):
            return
        self._interrupting = running
        if self._interrupt_task is not None:
            self._interrupt_task.cancel()
        self._interrupt_task = asyncio.ensure_future(self._interrupt(running))

    async def _interrupt(self, execution_id: str) -> None:
        started = time.monotonic()
        while self._running == execution_id:
            if self.interrupts:
                self._post_frame({"type": "interrupt"})
            self._to_kernel({"type": "interrupt", "execution_id": execution_id})
            if self._interrupting != execution_id:
                return  # it arrived
            if not self.interrupts and time.monotonic() - started >= FALLBACK_SECONDS:
                log.warning("no SharedArrayBuffer: replacing the tab kernel's worker")
                self.detail = "restarted to stop a busy cell: its variables are gone"
                self._restart()
                self._on_status()
                return
            await asyncio.sleep(INTERRUPT_REPEAT)

    # --- fetches and heartbeats -----------------------------------------------------------

    async def _serve_fetch(self, fetch_id: int, url: str) -> None:
        """Answer the worker's fetch of a public static file of this site (nothing else)."""
        root = site_root()
        answer: dict[str, Any] = {"type": "fetched", "id": fetch_id, "status": 0, "error": ""}
        try:  # as fetch will read it (``%2e%2e`` is ``..``), with no query or fragment
            address = js.URL.new(url, root)
            url = str(address.origin) + str(address.pathname)
        except Exception:  # not an address at all
            url = ""
        path = url[len(root) :] if url.startswith(root) else None
        if path is None or not path.startswith(SERVED_PREFIXES) or ".." in path:
            answer |= {"status": 403, "body": None}
            self._post_worker(answer)
            return
        try:
            response = await fetch(url, js_object({"method": "GET", "credentials": "omit"}))
            body = await response.arrayBuffer()
            answer |= {
                "status": int(response.status),
                "contentType": str(response.headers.get("content-type") or ""),
                "body": body,
            }
            self._post_worker(answer, [body])
        except Exception as error:  # offline and not cached: the worker raises it
            answer["error"] = str(error)
            self._post_worker(answer)

    async def _serve_snapshot(self, fetch_id: int, material: str) -> None:
        """Answer the worker's ask for a kept snapshot: 200 with its bytes, else 404 and
        whether this page can keep the one it would make (Cache Storage is there)."""
        key = hashlib.sha256(material.encode()).hexdigest()[:32]
        answer: dict[str, Any] = {"type": "fetched", "id": fetch_id, "status": 404, "keep": False}
        try:
            cache = await js.caches.open(SNAPSHOT_CACHE)
            response = await cache.match(_snapshot_url(key))
            if response is not None:
                body = await response.arrayBuffer()
                self._post_worker(answer | {"status": 200, "body": body}, [body])
                return
            self._snapshot_key = key
            answer["keep"] = True
        except Exception as error:  # no Cache Storage here (an insecure origin): start cold
            log.info("no tab kernel snapshot: %s", error)
        self._post_worker(answer)

    async def _keep_snapshot(self, key: str, body: Any) -> None:
        """Keep the snapshot a fresh worker made, in place of any older one."""
        if not isinstance(body, JsBuffer):
            return
        try:
            cache = await js.caches.open(SNAPSHOT_CACHE)
            for old in await cache.keys():
                await cache.delete(old)
            headers = js_object({"headers": {"content-type": "application/octet-stream"}})
            await cache.put(_snapshot_url(key), js.Response.new(body, headers))
            js.document.body.dataset.tabSnapshot = "ready"
        except Exception as error:  # storage full or refused: the next start is cold again
            log.warning("could not keep the tab kernel's snapshot: %s", error)

    async def _heartbeats(self) -> None:
        """While the log holds this session: its presence, a third of a lease apart."""
        assert self._relay is not None
        while True:
            if self.on and self.session_id in self.model.confirmed.kernels:
                state = {
                    "session_id": self.session_id,
                    "status": "busy" if self._running else "idle",
                    "execution_id": self._running,
                    "host": "tab",
                    "label": "this tab",
                }
                body = {
                    "client_id": self.session_id,
                    "kind": "kernel",
                    "state": state,
                    "ttl": 2 * LEASE_SECONDS,
                }
                path = f"/api/notebooks/{js.encodeURIComponent(self.model.notebook_id)}/presence"
                try:
                    await self._relay.request("POST", path, body)
                except NetworkError:
                    pass  # offline: the lease decides
            await asyncio.sleep(LEASE_SECONDS / 3)


def _snapshot_url(key: str) -> str:
    return f"{site_root()}.anode-tab-snapshot/{key}"


async def _text(url: str) -> str:
    response = await fetch(url, js_object({"method": "GET"}))
    if not response.ok:
        raise RuntimeError(f"{url}: HTTP {response.status}")
    return str(await response.text())
