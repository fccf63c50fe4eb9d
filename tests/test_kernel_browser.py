"""The browser kernel: Pyodide in headless Chromium, against a real relay.

Each test starts a real relay (``anode serve --kernels none``) and a kernel
as the command a person types, ``python -m anode kernel --host browser``,
then talks to both only through the relay's HTTP API. The Pyodide snapshot
cache is shared by the tests of a session (the first kernel starts cold and
makes it), except where a test is about the cache.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from kernel_headless.launch.browser import PAGE_PATH, SnapshotCache, browser_config
from kernel_headless.launch.spec import KernelSpec
from tests.chromium import require_chromium, sync_browser
from tests.conftest import REPO_ROOT, RelayProcess
from tests.kernels import read_ready_line

pytestmark = pytest.mark.slow

#: A cold Pyodide in Chromium takes 4-10 s on a small machine; leave room for a busy one.
READY_TIMEOUT = 90.0
TIMEOUT = 30.0


def wait_until(check: Callable[[], Any], timeout: float = TIMEOUT, what: str = "it") -> Any:
    """Poll ``check()`` until it returns something truthy; return that."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            found = check()
        except (AssertionError, httpx.TransportError) as error:  # not there yet
            found = None
            last: Any = error
        else:
            last = found
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"waited {timeout} s for {what}; last saw {last!r:.2000}")
        time.sleep(0.05)


class Notebook:
    """One notebook on a relay, spoken to over HTTP as a client does."""

    def __init__(self, url: str, notebook_id: str) -> None:
        self.url = url
        self.id = notebook_id
        self.http = httpx.Client(base_url=f"{url}/api/notebooks/{notebook_id}", timeout=30)

    @classmethod
    def create(cls, url: str) -> Notebook:
        response = httpx.post(f"{url}/api/notebooks", json={"title": "browser kernel"}, timeout=30)
        assert response.status_code == 201, response.text
        return cls(url, response.json()["id"])

    def push(self, name: str, **args: Any) -> None:
        event = {"id": uuid.uuid4().hex, "name": name, "v": 1, "args": args}
        response = self.http.post("/events", json={"events": [event]})
        assert response.status_code == 200, response.text

    def run(self, source: str) -> str:
        """Press Run on a new cell holding ``source``; returns the execution's id."""
        cell_id, execution_id = "c" + uuid.uuid4().hex[:12], "x" + uuid.uuid4().hex[:12]
        self.push("cellCreated", cell_id=cell_id, source=source)
        self.push("executionRequested", execution_id=execution_id, cell_id=cell_id, source=source)
        return execution_id

    def interrupt(self, execution_id: str) -> None:
        self.push("interruptRequested", execution_id=execution_id)

    def log(self) -> list[dict[str, Any]]:
        return self.http.get("/events", params={"after": 0, "limit": 10_000}).json()["events"]

    def snapshot(self) -> dict[str, Any]:
        return self.http.get("/snapshot").json()["state"]

    def cell_of(self, execution_id: str) -> dict[str, Any]:
        """The cell whose latest execution is ``execution_id``, with its outputs."""
        for cell in self.snapshot()["cells"]:
            if (cell.get("execution") or {}).get("id") == execution_id:
                return cell
        raise AssertionError(f"no cell runs {execution_id}")

    def wait_status(
        self, execution_id: str, *statuses: str, timeout: float = TIMEOUT
    ) -> dict[str, Any]:
        def reached() -> dict[str, Any] | None:
            cell = self.cell_of(execution_id)
            return cell if cell["execution"]["status"] in statuses else None

        return wait_until(reached, timeout, f"{execution_id} to be {' or '.join(statuses)}")

    def wait_done(self, execution_id: str, timeout: float = TIMEOUT) -> dict[str, Any]:
        return self.wait_status(execution_id, "ok", "error", "cancelled", timeout=timeout)

    def wait_event(self, name: str, **args: Any) -> dict[str, Any]:
        def found() -> dict[str, Any] | None:
            matches = (e for e in self.log() if e["name"] == name)
            return next((e for e in matches if args.items() <= e["args"].items()), None)

        return wait_until(found, what=f"{name} {args}")


def stream_text(cell: dict[str, Any], name: str = "stdout") -> str:
    return "".join(o["text"] for o in outputs_of(cell, "stream") if o["name"] == name)


def outputs_of(cell: dict[str, Any], output_type: str) -> list[dict[str, Any]]:
    return [o for o in cell["outputs"] if o["output_type"] == output_type]


@dataclass
class BrowserKernel:
    """``python -m anode kernel --host browser`` as a process; stderr goes to a file."""

    proc: subprocess.Popen
    stderr_path: Path
    ready: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def start(cls, relay: str, notebook: str, cache_dir: Path, log_dir: Path) -> BrowserKernel:
        command = [
            sys.executable, "-m", "anode", "kernel", "--host", "browser",
            "--notebook", notebook, "--relay", relay,
            "--lease", "30",  # a busy test machine must not make the relay give up on it
        ]  # fmt: skip
        env = {**os.environ, "ANODE_CACHE": str(cache_dir), "PYTHONUNBUFFERED": "1"}
        stderr_path = log_dir / f"browser-kernel-{len(list(log_dir.glob('browser-kernel-*')))}.log"
        with stderr_path.open("w") as stderr:
            proc = subprocess.Popen(
                command, cwd=REPO_ROOT, env=env, text=True, stdout=subprocess.PIPE, stderr=stderr
            )
        return cls(proc, stderr_path)._wait_ready()

    def _wait_ready(self) -> BrowserKernel:
        ready = read_ready_line(self.proc, READY_TIMEOUT)
        assert ready, f"the browser kernel exited with {self.proc.poll()}:\n{self.log()}"
        self.ready = ready
        return self

    def log(self) -> str:
        return self.stderr_path.read_text(errors="replace")[-6000:]

    def stop(self, timeout: float = 20.0) -> int:
        """SIGTERM (the kernel ends its session), then SIGKILL if it lingers."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        return self.proc.returncode


@pytest.fixture(scope="session")
def snapshot_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("anode-cache")


@pytest.fixture
def notebook(relay_process: Callable[..., RelayProcess]) -> Iterator[Notebook]:
    require_chromium()
    notebook = Notebook.create(relay_process("--kernels", "none", "--no-auth").url)
    yield notebook
    notebook.http.close()


@pytest.fixture
def start_kernel(snapshot_cache: Path, tmp_path: Path) -> Iterator[Callable[..., BrowserKernel]]:
    """Factory: ``start_kernel(notebook)`` waits for the ready line; all are stopped at the end."""
    started: list[BrowserKernel] = []

    def start(notebook: Notebook, cache_dir: Path | None = None) -> BrowserKernel:
        cache = cache_dir or snapshot_cache
        kernel = BrowserKernel.start(notebook.url, notebook.id, cache, tmp_path)
        started.append(kernel)
        return kernel

    yield start
    for kernel in started:
        kernel.stop()


def result_of(cell: dict[str, Any]) -> str:
    results = outputs_of(cell, "execute_result")
    assert len(results) == 1, (cell["execution"], cell["outputs"])
    return results[0]["data"]["text/plain"]


# --- tests -------------------------------------------------------------------------------


def test_print_runs_and_its_output_is_in_the_snapshot(notebook: Notebook, start_kernel) -> None:
    kernel = start_kernel(notebook)
    assert kernel.ready["host"] == "browser" and kernel.ready["cross_origin_isolated"] is True
    cell = notebook.wait_done(notebook.run("print(1)"))
    assert cell["execution"]["status"] == "ok", kernel.log()
    assert stream_text(cell) == "1\n"
    (session,) = notebook.snapshot()["kernels"]
    assert session["host"] == "browser" and session["status"] == "live"


def test_cells_can_use_the_browser_apis(notebook: Notebook, start_kernel) -> None:
    kernel = start_kernel(notebook)
    cell = notebook.wait_done(notebook.run("import js\njs.navigator.userAgent"))
    assert "Chrome" in result_of(cell), kernel.log()
    cell = notebook.wait_done(notebook.run("str(js.self.location.href)"))
    assert result_of(cell) == repr(f"{notebook.url}/kernel_headless/host/browser_worker.mjs")
    # The worker's fetch reaches the relay it came from.
    source = "response = await js.fetch('/api/health')\n(await response.json()).to_py()['status']"
    cell = notebook.wait_done(notebook.run(source))
    assert result_of(cell) == "'ok'", cell["outputs"]


def test_interrupt_stops_a_busy_loop(notebook: Notebook, start_kernel) -> None:
    kernel = start_kernel(notebook)
    execution_id = notebook.run("print('spinning')\nwhile True: pass")
    notebook.wait_status(execution_id, "executing")
    # What a spinning cell printed arrives while it spins (the host's SIGUSR1 ticks).
    wait_until(lambda: "spinning" in stream_text(notebook.cell_of(execution_id)), what="the print")
    notebook.interrupt(execution_id)
    cell = notebook.wait_done(execution_id)
    assert cell["execution"]["status"] == "cancelled", kernel.log()
    assert [e["ename"] for e in outputs_of(cell, "error")] == ["KeyboardInterrupt"]
    # The interpreter survives the interrupt.
    assert stream_text(notebook.wait_done(notebook.run("print(2)"))) == "2\n"


def test_sigterm_ends_the_session(notebook: Notebook, start_kernel) -> None:
    kernel = start_kernel(notebook)
    started = notebook.wait_event("kernelSessionStarted", host="browser")
    assert kernel.stop() == 0, kernel.log()
    ended = [e["args"] for e in notebook.log() if e["name"] == "kernelSessionEnded"]
    assert ended == [{"session_id": started["args"]["session_id"], "reason": "shutdown"}]
    assert notebook.snapshot()["kernels"][0]["status"] == "ended"


def test_a_second_kernel_starts_from_the_snapshot_of_the_first(
    notebook: Notebook, start_kernel, tmp_path: Path
) -> None:
    cache_dir = tmp_path / "cache"
    first = start_kernel(notebook, cache_dir=cache_dir)
    assert first.ready["from"] == "cold", first.ready
    # The worker puts the snapshot right after its cold start: wait for it to land.
    wait_until(lambda: list(cache_dir.glob("kernel-pyodide-browser-*.snapshot")), what="a snapshot")
    assert stream_text(notebook.wait_done(notebook.run("print('cold')"))) == "cold\n"
    assert first.stop() == 0, first.log()
    second = start_kernel(notebook, cache_dir=cache_dir)
    assert second.ready["from"] == "snapshot", second.log()
    cell = notebook.wait_done(notebook.run("import sys\nprint(sys.platform)"))
    assert stream_text(cell) == "emscripten\n"


def test_without_cross_origin_isolation_the_page_says_so_and_awaits_still_cancel(
    notebook: Notebook, snapshot_cache: Path
) -> None:
    """Served without COOP/COEP there is no SharedArrayBuffer: the kernel still runs,
    and an interrupt still cancels a cell that awaits (not one that spins)."""
    cache = SnapshotCache(snapshot_cache, allowed_origin=notebook.url)
    config = browser_config(KernelSpec(relay=notebook.url, notebook=notebook.id), cache.start())
    console: list[str] = []

    def without_isolation(route: Any) -> None:
        response = route.fetch()
        headers = {k: v for k, v in response.headers.items() if not k.startswith("cross-origin")}
        route.fulfill(response=response, headers=headers)

    try:
        with sync_browser() as browser:
            page = browser.new_page()
            page.on("console", lambda message: console.append(message.text))
            page.route(f"**/{PAGE_PATH}", without_isolation)
            page.goto(f"{notebook.url}/{PAGE_PATH}")
            assert page.evaluate("crossOriginIsolated") is False
            started = page.evaluate("config => window.anode.start(config)", config)
            assert started == {"crossOriginIsolated": False}
            assert any("SharedArrayBuffer is unavailable" in line for line in console)
            cell = notebook.wait_done(notebook.run("print(3)"), timeout=READY_TIMEOUT)
            assert stream_text(cell) == "3\n", console
            execution_id = notebook.run("import asyncio\nawait asyncio.sleep(600)")
            notebook.wait_status(execution_id, "executing")
            notebook.interrupt(execution_id)
            assert notebook.wait_done(execution_id)["execution"]["status"] == "cancelled", console
            page.evaluate("window.anode.shutdown()")
            notebook.wait_event("kernelSessionEnded", reason="shutdown")
    finally:
        cache.close()


def test_the_snapshot_cache_takes_one_upload_before_any_cell_runs(tmp_path: Path) -> None:
    """The worker that runs cells knows the cache's URL: once the page is ready (a cell
    may run), or once a snapshot came, an upload is refused and nothing is written."""
    origin = "http://127.0.0.1:8000"
    cache = SnapshotCache(tmp_path, allowed_origin=origin)
    url = cache.start()
    key, other = "a" * 32, "b" * 32
    try:
        with httpx.Client(headers={"origin": origin}, timeout=10) as http:
            assert (
                http.put(f"{url}/{other}", content=b"planted").status_code == 403
            )  # never asked for
            assert http.get(f"{url}/{key}").status_code == 204  # missing: one upload may bring it
            assert http.put(f"{url}/{key}", content=b"the snapshot").status_code == 204
            assert http.put(f"{url}/{key}", content=b"planted").status_code == 403  # one only
            assert http.get(f"{url}/{key}").content == b"the snapshot"
        second = SnapshotCache(tmp_path, allowed_origin=origin)
        later = second.start()
        try:
            with httpx.Client(headers={"origin": origin}, timeout=10) as http:
                assert http.get(f"{later}/{other}").status_code == 204
                second.close_uploads()  # the page said ready
                assert http.put(f"{later}/{other}", content=b"planted").status_code == 403
        finally:
            second.close()
        assert sorted(path.name for path in tmp_path.iterdir()) == [
            f"kernel-pyodide-browser-{key}.snapshot"
        ]
    finally:
        cache.close()
