"""The browser host of a headless kernel: Pyodide in a headless Chromium page.

    anode kernel --host browser --notebook ID --relay URL

Playwright launches Chromium and opens ``{relay}/kernel_headless/host/browser.html``.
That page is the host's main thread (``host/browser.mjs`` around the shared
``host/host.mjs``, as ``node.mjs`` is in Node); the kernel's Python runs in a
module Web Worker (``host/browser_worker.mjs``) that loads Pyodide and the
kernel's Python files from the relay. So code in a cell can use the APIs a
browser gives a worker (``import js; js.navigator``, ``js.fetch``,
``OffscreenCanvas``, WebGPU, ...).

This module drives the page: it passes the config in, forwards the page's
console (the kernel's logs) to stderr, prints the same ``anode kernel ready:
{...}`` line as the Node host, and turns Ctrl+C or SIGTERM into a clean end
of the session before it closes the browser. It also keeps the worker's
Pyodide memory snapshot on disk, as the Node host does, and hands it to the
page over a loopback HTTP port (Playwright's own channel moves 30 MB in
about ten seconds; loopback HTTP in a few tens of milliseconds).

CPython only (the ``anode`` command); Playwright is imported when a kernel starts.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import secrets
import shutil
import signal
import sys
import threading
import time
from collections.abc import Callable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from .spec import PROJECT_ROOT, KernelSpec, LaunchError

PAGE_PATH = "kernel_headless/host/browser.html"

#: Chromium's flags for a headless kernel (and for the test suite's browsers).
CHROMIUM_ARGS = (
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
)

_CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")

#: Seconds to wait for the page, and for the kernel to end its session.
_PAGE_TIMEOUT = 30.0
_SHUTDOWN_TIMEOUT = 10.0


def chromium_executable() -> str | None:
    """The system's Chromium: ``$ANODE_CHROMIUM``, ``/usr/bin/chromium``, or one on PATH.

    ``None`` means none is installed: Playwright's own download is used then.
    """
    configured = os.environ.get("ANODE_CHROMIUM")
    if configured:
        return configured
    if os.access("/usr/bin/chromium", os.X_OK):
        return "/usr/bin/chromium"
    for name in _CHROMIUM_NAMES:
        found = shutil.which(name)
        if found:
            return found
    return None


def launch_options(headless: bool = True) -> dict[str, Any]:
    """Keyword arguments for Playwright's ``chromium.launch``."""
    options: dict[str, Any] = {"headless": headless, "args": list(CHROMIUM_ARGS)}
    executable = chromium_executable()
    if executable is not None:
        options["executable_path"] = executable
    return options


def browser_config(spec: KernelSpec, snapshot_url: str | None = None) -> dict[str, Any]:
    """The host config for the page: paths on this machine become paths on the relay.

    ``python_files`` lists the kernel's Python as paths under the relay's root;
    ``snapshot_url`` is where the worker gets and puts its memory snapshot
    (``{snapshot_url}/{key}``), or ``None`` to start cold every time.
    """
    config = spec.host_config()
    config["host"] = "browser"
    del config["cache_dir"]
    config["snapshot_url"] = snapshot_url
    wheel = config["micropip_wheel"]
    if wheel:
        relative = Path(wheel).relative_to(PROJECT_ROOT / "vendor")
        config["micropip_wheel"] = f"{config['relay']}/vendor/{relative.as_posix()}"
    return config


def run_browser_kernel(spec: KernelSpec) -> int:
    """Run one browser kernel in the foreground until its session ends."""
    try:
        import playwright  # noqa: F401
    except ImportError:
        raise LaunchError(
            "the browser host needs Playwright: run `make setup` "
            "(or `pip install 'anode[browser]'`)"
        ) from None
    snapshots = SnapshotCache(spec.cache_dir, allowed_origin=_origin(spec.relay))
    try:
        kernel = _BrowserKernel(spec, snapshots.start(), on_ready=snapshots.close_uploads)
        return asyncio.run(kernel.run())
    finally:
        snapshots.close()
        sys.stdout.flush()


def _log(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def _first_line(error: BaseException) -> str:
    return (str(error).strip().splitlines() or [type(error).__name__])[0]


# --- the snapshot cache ---------------------------------------------------------------------


class SnapshotCache:
    """Pyodide memory snapshots in ``cache_dir``, served to one page on a loopback port.

    ``GET {url}/{key}`` answers the snapshot (204 when there is none yet);
    ``PUT {url}/{key}`` stores one. The worker derives ``key`` from Pyodide's
    version and the text of the kernel's Python files, so a change to either
    makes a new snapshot. The URL holds a random token and only the relay's
    origin may use it; the three most recently used snapshots are kept.

    The worker that runs cells knows the URL, so uploads are taken only
    while no cell can have run: at most one, for a key that was missing, and
    none once the page reports ready (``close_uploads``). The worker makes
    its snapshot and waits for the upload before it starts the kernel.
    """

    KEEP = 3
    MAX_BYTES = 1 << 30
    KEY = re.compile(r"[0-9a-f]{32}")

    def __init__(self, cache_dir: Path, allowed_origin: str) -> None:
        self.cache_dir = Path(cache_dir)
        self.allowed_origin = allowed_origin
        self.token = secrets.token_urlsafe(16)
        self._server: ThreadingHTTPServer | None = None
        self._lock = threading.Lock()
        #: The keys a GET found missing: the only ones an upload may bring.
        self._missing: set[str] = set()
        self._uploads_open = True

    def close_uploads(self) -> None:
        """From now on no upload is taken: a cell may have run."""
        with self._lock:
            self._uploads_open = False

    def _take_upload(self, key: str) -> bool:
        """True once, for a key a GET found missing, while uploads are open."""
        with self._lock:
            if not self._uploads_open or key not in self._missing:
                return False
            self._uploads_open = False
            return True

    def start(self) -> str:
        """Serve in a background thread; returns the URL to give the page."""
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        serve = self._server.serve_forever
        threading.Thread(target=serve, name="anode-snapshots", daemon=True).start()
        return f"http://127.0.0.1:{self._server.server_port}/{self.token}"

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def path(self, key: str) -> Path:
        if not self.KEY.fullmatch(key):
            raise ValueError(f"not a snapshot key: {key!r}")
        return self.cache_dir / f"kernel-pyodide-browser-{key}.snapshot"

    def save(self, key: str, data: bytes) -> None:
        target = self.path(key)
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        temporary = target.with_suffix(f".{os.getpid()}.tmp")
        temporary.write_bytes(data)
        temporary.replace(target)  # atomic: another kernel never reads half a snapshot
        _log(f"anode kernel: cached a Pyodide snapshot in {target}")
        older = sorted(
            self.cache_dir.glob("kernel-pyodide-browser-*.snapshot"),
            key=lambda path: path.stat().st_mtime,
            reverse=True,
        )
        for stale in older[self.KEEP :]:
            stale.unlink(missing_ok=True)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        cache = self

        class Handler(BaseHTTPRequestHandler):
            def do_OPTIONS(self) -> None:  # the CORS preflight of a PUT
                self._answer(HTTPStatus.NO_CONTENT)

            def do_GET(self) -> None:
                key = self._key()
                if key is None:
                    return
                path = cache.path(key)
                try:
                    data = path.read_bytes()
                    os.utime(path)  # recently used: pruned last
                except FileNotFoundError:
                    with cache._lock:
                        cache._missing.add(key)
                    return self._answer(HTTPStatus.NO_CONTENT)
                self._answer(HTTPStatus.OK, data)

            def do_PUT(self) -> None:
                key = self._key()
                if key is None:
                    return
                length = int(self.headers.get("content-length") or 0)
                if not 0 < length <= cache.MAX_BYTES:
                    return self._answer(HTTPStatus.REQUEST_ENTITY_TOO_LARGE)
                if not cache._take_upload(key):
                    return self._answer(HTTPStatus.FORBIDDEN)
                try:
                    cache.save(key, self.rfile.read(length))
                except OSError as error:
                    _log(f"anode kernel: could not cache the snapshot: {error}")
                    return self._answer(HTTPStatus.INTERNAL_SERVER_ERROR)
                self._answer(HTTPStatus.NO_CONTENT)

            def _key(self) -> str | None:
                """The request's snapshot key; answers 404 itself when it has none."""
                token, _, key = self.path.lstrip("/").partition("/")
                origin = self.headers.get("origin")
                if (
                    not secrets.compare_digest(token.encode(), cache.token.encode())
                    or not cache.KEY.fullmatch(key)
                    or (origin is not None and origin != cache.allowed_origin)
                ):
                    self._answer(HTTPStatus.NOT_FOUND)
                    return None
                return key

            def _answer(self, status: HTTPStatus, body: bytes = b"") -> None:
                self.send_response(status)
                self.send_header("access-control-allow-origin", cache.allowed_origin)
                self.send_header("access-control-allow-methods", "GET, PUT")
                self.send_header("access-control-allow-private-network", "true")
                self.send_header("content-type", "application/octet-stream")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return Handler


# --- the page ---------------------------------------------------------------------------------


class _BrowserKernel:
    def __init__(
        self,
        spec: KernelSpec,
        snapshot_url: str | None,
        on_ready: Callable[[], None] = lambda: None,
    ) -> None:
        self.config = browser_config(spec, snapshot_url)
        self.on_ready = on_ready
        self.token = spec.token
        self.started = time.monotonic()
        self.browser_seconds = 0.0
        self.exit_code: asyncio.Future[int] | None = None
        self.stopping = False
        self.stop_requested = asyncio.Event()

    async def run(self) -> int:
        from playwright.async_api import Error, async_playwright

        loop = asyncio.get_running_loop()
        self.exit_code = loop.create_future()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, self._on_signal)
        async with async_playwright() as playwright:
            try:
                # The driver must not close the browser on a signal: the kernel
                # still has to end its session in it.
                browser = await playwright.chromium.launch(
                    **launch_options(),
                    handle_sigint=False,
                    handle_sigterm=False,
                    handle_sighup=False,
                )
            except Error as error:
                raise LaunchError(f"cannot start Chromium: {_first_line(error)}") from None
            try:
                return await self._serve(browser)
            finally:
                await browser.close()

    async def _serve(self, browser: Any) -> int:
        from playwright.async_api import Error

        assert self.exit_code is not None
        page = await browser.new_page()
        page.on("console", lambda message: _log(message.text))
        page.on("pageerror", lambda error: _log(f"anode kernel: page error: {error}"))
        page.on("crash", lambda _page: self._exit(1, "the kernel's page crashed"))
        browser.on("disconnected", lambda _browser: self._exit(1, "the browser went away"))
        await page.expose_function("anodeReady", self._on_ready)
        await page.expose_function("anodeExit", lambda code: self._exit(int(code)))
        url = f"{self.config['relay']}/{PAGE_PATH}"
        try:
            response = await page.goto(url, timeout=_PAGE_TIMEOUT * 1000)
            if response is None or not response.ok:
                status = response.status if response else "no answer"
                raise LaunchError(f"the relay does not serve the kernel page {url} ({status})")
            await page.wait_for_function("window.anode !== undefined", timeout=_PAGE_TIMEOUT * 1000)
        except Error as error:
            raise LaunchError(f"cannot open the kernel page {url}: {_first_line(error)}") from None
        self.browser_seconds = time.monotonic() - self.started
        if self.stopping:  # a signal came while the page loaded: no session to end
            return 0
        # The token goes to the page's main thread only (see host/browser.mjs).
        start = "([config, token]) => window.anode.start(config, token)"
        await page.evaluate(start, [self.config, self.token])
        stopper = asyncio.create_task(self._stop_when_asked(page))
        try:
            return await self.exit_code
        finally:
            stopper.cancel()

    # --- the page's callbacks ------------------------------------------------------------

    def _on_ready(self, raw: str) -> None:
        self.on_ready()
        message = json.loads(raw)
        message["host"] = "browser"
        message["browser_seconds"] = round(self.browser_seconds, 3)
        message["seconds"] = f"{time.monotonic() - self.started:.3f}"
        print(f"anode kernel ready: {json.dumps(message)}", flush=True)

    def _exit(self, code: int, reason: str = "") -> None:
        """End with ``code``, unless the end is decided already (the first word counts)."""
        if self.exit_code is None or self.exit_code.done():
            return
        if reason:
            _log(f"anode kernel: {reason}")
        self.exit_code.set_result(code)

    # --- shutdown --------------------------------------------------------------------------

    def _on_signal(self) -> None:
        if self.stopping:  # a second Ctrl+C: stop now
            self._exit(130, "stopped without ending the session")
        self.stopping = True
        self.stop_requested.set()

    async def _stop_when_asked(self, page: Any) -> None:
        await self.stop_requested.wait()
        try:
            await page.evaluate("window.anode.shutdown()")
        except Exception as error:  # the page is gone already
            self._exit(1, f"could not end the session: {_first_line(error)}")
            return
        await asyncio.sleep(_SHUTDOWN_TIMEOUT)
        self._exit(1, "the kernel did not end its session in time")
