"""Helpers for tests that run real Node kernels against a real relay.

- ``Notebook``: one notebook on a relay, spoken to over HTTP the way a
  client does — push events, read the log and the snapshot, fold the log
  with ``shared_schema`` — plus ``wait_for(...)``, which polls until a
  condition holds or a deadline passes (and then says what it saw).
- ``Kernels``: starts kernels with ``kernel_headless.launch`` (stdout
  says when one is ready, stderr goes to a file the failure message shows)
  and always stops every process it started, even when a test fails.
- ``warm_snapshot()``: builds the Pyodide memory snapshot once, in the
  default cache (``~/.cache/anode``, shared with ``anode kernel`` and CI),
  so that every kernel in the run starts from it in well under a second.
- ``TcpProxy``: a cuttable TCP hop between a kernel and the relay, for a
  kernel that loses the relay while the relay itself stays up.

Its fixtures, ``kernels`` and ``notebooks``, are imported by the modules that
use them (as ``kernels_fixture`` and ``notebooks_fixture``), so this file
adds nothing to tests that do not ask for it.
"""

from __future__ import annotations

import json
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from kernel_headless.launch.node import ensure_snapshot, start_node_kernel
from kernel_headless.launch.spec import KernelSpec, default_cache_dir
from shared_schema import NotebookState, advance, stored_from_json
from shared_schema.state import Execution

READY = re.compile(r"^anode kernel ready: (\{.*\})$")
START_TIMEOUT = 60.0  # a cold start builds the snapshot; loaded ones take < 1 s


def new_id(prefix: str = "") -> str:
    return prefix + uuid.uuid4().hex[:16]


def event(name: str, **args: Any) -> dict[str, Any]:
    """A pushable event ``{"id", "name", "v", "args"}``."""
    return {"id": new_id("t"), "name": name, "v": 1, "args": args}


# --- a notebook over HTTP ------------------------------------------------------------

TERMINAL = ("ok", "error", "cancelled")


class Notebook:
    """One notebook on a relay, as a client sees it. ``run(source)`` is what pressing Run does.

    ``sync()`` pulls the log past what it has (a long poll when asked to wait)
    and folds it with ``shared_schema``, so waiting costs one request per new
    batch of events, not a snapshot per poll; ``history`` keeps every stored
    event in order and ``folded`` is the state they fold to.
    """

    def __init__(self, url: str, notebook_id: str, token: str | None = None) -> None:
        self.id = notebook_id
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.http = httpx.Client(base_url=url, timeout=60, headers=headers)
        self.history: list[dict[str, Any]] = []
        self.folded = NotebookState()
        self._cells = 0

    @classmethod
    def create(cls, url: str, title: str = "kernel test", token: str | None = None) -> Notebook:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        response = httpx.post(
            f"{url}/api/notebooks", json={"title": title}, headers=headers, timeout=30
        )
        assert response.status_code == 201, response.text
        return cls(url, response.json()["id"], token)

    def kernel_token(self) -> str | None:
        """A fresh ``kernel`` token for this notebook (None when the relay runs without auth)."""
        if "Authorization" not in self.http.headers:
            return None
        response = self.http.post(
            f"/api/notebooks/{self.id}/tokens", json={"role": "kernel", "label": "test"}
        )
        assert response.status_code == 201, response.text
        return response.json()["token"]

    def close(self) -> None:
        self.http.close()

    # --- writing ---

    def push(self, *events: dict[str, Any]) -> list[int]:
        """Push a batch; retried if the connection drops (event ids make it idempotent)."""
        for attempt in range(3):
            try:
                response = self.http.post(
                    f"/api/notebooks/{self.id}/events", json={"events": list(events)}
                )
                break
            except httpx.TransportError:
                if attempt == 2:
                    raise
                time.sleep(0.2)
        assert response.status_code == 200, response.text
        return response.json()["seqs"]

    def cell_created(self, source: str = "") -> tuple[dict[str, Any], str]:
        self._cells += 1
        cell_id = f"c{self._cells}-{new_id()[:6]}"
        created = event("cellCreated", cell_id=cell_id, source=source, after=self._last_cell)
        self._last_cell = cell_id
        return created, cell_id

    def requested(
        self, source: str, cell_id: str, runner: str | None = None
    ) -> tuple[dict[str, Any], str]:
        execution_id = new_id("x")
        where = {} if runner is None else {"runner": runner}
        return event(
            "executionRequested", execution_id=execution_id, cell_id=cell_id, source=source,
            **where,
        ), execution_id  # fmt: skip

    def run(self, source: str, cell_id: str | None = None) -> str:
        """Request an execution of ``source`` (in a new cell unless given); returns its id."""
        return self.run_many([source], cell_id)[0]

    def run_many(
        self, sources: list[str], cell_id: str | None = None, runner: str | None = None
    ) -> list[str]:
        """Request several executions in one atomic push, each in a new cell (or all in
        ``cell_id``); ``runner="tab"``: in the requester's own tab kernel."""
        events: list[dict[str, Any]] = []
        ids = []
        for source in sources:
            cell = cell_id
            if cell is None:
                created, cell = self.cell_created(source)
                events.append(created)
            requested, execution_id = self.requested(source, cell, runner)
            events.append(requested)
            ids.append(execution_id)
        self.push(*events)
        return ids

    _last_cell: str | None = None

    def interrupt(self, execution_id: str) -> int:
        return self.push(event("interruptRequested", execution_id=execution_id))[0]

    def cancel(self, execution_id: str) -> int:
        return self.push(event("executionCancelled", execution_id=execution_id))[0]

    # --- reading ---

    def sync(self, wait: float = 0.0) -> NotebookState:
        """Fold what the relay has past our last event (waiting up to ``wait`` s for some)."""
        while True:
            after = self.history[-1]["seq"] if self.history else 0
            params: dict[str, Any] = {"after": after, "limit": 10_000}
            if wait:
                params["wait"] = wait
            response = self.http.get(f"/api/notebooks/{self.id}/events", params=params)
            assert response.status_code == 200, response.text
            page = response.json()["events"]
            for raw in page:
                self.history.append(raw)
                advance(self.folded, stored_from_json(raw))
            if len(page) < 10_000:
                return self.folded
            wait = 0.0

    def snapshot(self) -> dict[str, Any]:
        """The relay's own folded state (``GET /snapshot``)."""
        response = self.http.get(f"/api/notebooks/{self.id}/snapshot")
        assert response.status_code == 200, response.text
        return response.json()["state"]

    def execution(self, execution_id: str) -> Execution:
        """An execution as the folded log has it (status, session, count, outputs)."""
        return self.folded.executions[execution_id]

    def events(self, name: str, **args: Any) -> list[dict[str, Any]]:
        """Stored events called ``name`` whose args include ``args`` (as of the last sync)."""
        return [
            e
            for e in self.history
            if e["name"] == name and all(e["args"].get(k) == v for k, v in args.items())
        ]

    # --- waiting ---

    def wait_for(
        self,
        check: Callable[[NotebookState], Any],
        timeout: float = 30.0,
        what: str = "a condition",
    ) -> Any:
        """Sync until ``check(state)`` returns something truthy; return that."""
        deadline = time.monotonic() + timeout
        last: Any = None
        wait = 0.0
        while True:
            try:
                last = check(self.sync(wait))
            except (
                httpx.TransportError,
                KeyError,
            ) as error:  # relay restarting; not in the log yet
                last = error
                time.sleep(0.05)
            if last and not isinstance(last, Exception):
                return last
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(
                    f"timed out after {timeout} s waiting for {what}; last saw: {last!r:.2000}"
                )
            wait = min(remaining, 1.0)

    def wait_done(self, *execution_ids: str, timeout: float = 30.0) -> list[Execution]:
        """Wait until every execution has finished; return them."""

        def done(state: NotebookState) -> list[Execution] | None:
            runs = [state.executions[x] for x in execution_ids]
            return runs if all(run.status in TERMINAL for run in runs) else None

        return self.wait_for(done, timeout, f"executions {', '.join(execution_ids)} to finish")

    def wait_status(self, execution_id: str, status: str, timeout: float = 30.0) -> Execution:
        return self.wait_for(
            lambda state: (
                state.executions[execution_id].status == status and state.executions[execution_id]
            ),
            timeout,
            f"execution {execution_id} to be {status}",
        )

    def wait_event(self, name: str, timeout: float = 30.0, **args: Any) -> dict[str, Any]:
        """Wait for a stored event called ``name`` whose args include ``args``."""
        return self.wait_for(
            lambda state: next(iter(self.events(name, **args)), None),
            timeout,
            f"{name} {args or ''}",
        )


def read_ready_line(proc: subprocess.Popen, timeout: float) -> dict[str, Any]:
    """The JSON of a kernel host's ``anode kernel ready: {...}`` line.

    ``{}`` when the process ends or ``timeout`` passes first. A thread keeps
    draining stdout afterwards, so the host never blocks on a full pipe.
    """
    assert proc.stdout is not None
    ready: dict[str, Any] = {}
    done = threading.Event()

    def read() -> None:
        for line in proc.stdout:  # type: ignore[union-attr]
            match = READY.match(line.strip())
            if match and not ready:
                ready.update(json.loads(match.group(1)))
                done.set()
        done.set()  # end of output: the process is gone

    threading.Thread(target=read, daemon=True).start()
    done.wait(timeout)
    return dict(ready)


def wait_until(check: Callable[[], Any], timeout: float, what: str, every: float = 0.05) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        try:
            last = check()
        except (
            httpx.TransportError,
            AssertionError,
        ) as error:  # relay restarting, cell not there yet
            last = error
        else:
            if last:
                return last
        if time.monotonic() > deadline:
            raise AssertionError(
                f"timed out after {timeout} s waiting for {what}; last saw: {last!r:.2000}"
            )
        time.sleep(every)


def stream_text(outputs: list[dict[str, Any]], name: str = "stdout") -> str:
    return "".join(o["text"] for o in outputs if o["output_type"] == "stream" and o["name"] == name)


def errors_in(outputs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [o for o in outputs if o["output_type"] == "error"]


def only_error(outputs: list[dict[str, Any]]) -> dict[str, Any]:
    errors = errors_in(outputs)
    assert len(errors) == 1, outputs
    return errors[0]


def author(stored: dict[str, Any]) -> str:
    """Which kernel worker pushed an event: each prefixes its event ids (``k<hex>-<n>``)."""
    return stored["id"].rsplit("-", 1)[0]


# --- kernel processes --------------------------------------------------------------------


@dataclass
class KernelProcess:
    spec: KernelSpec
    proc: subprocess.Popen
    stderr_path: Path
    ready: dict[str, Any] = field(default_factory=dict)

    @property
    def session_id(self) -> str:
        return self.spec.session_id

    def wait_ready(self, timeout: float = START_TIMEOUT) -> KernelProcess:
        """Read stdout until the host says it is ready (or fail with its stderr)."""
        ready = read_ready_line(self.proc, timeout)
        if not ready:
            raise AssertionError(
                f"kernel not ready after {timeout} s (exit {self.proc.poll()}):\n{self.stderr()}"
            )
        self.ready = ready
        return self

    def stderr(self) -> str:
        try:
            return self.stderr_path.read_text(errors="replace")[-8000:]
        except OSError:
            return ""

    def alive(self) -> bool:
        return self.proc.poll() is None

    def kill(self) -> None:
        """``kill -9``: the host gets no chance to end its session."""
        if self.alive():
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self, timeout: float = 10.0) -> int:
        """SIGTERM (the host ends its session), then SIGKILL if it lingers."""
        if self.alive():
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        return self.proc.returncode


class Kernels:
    """Starts Node kernels; ``close()`` stops every one (the fixture calls it)."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.started: list[KernelProcess] = []

    def start(
        self,
        relay: str,
        notebook: str,
        *,
        lease_seconds: float = 5.0,
        wait: bool = True,
        **spec: Any,
    ) -> KernelProcess:
        spec_ = KernelSpec(relay=relay, notebook=notebook, lease_seconds=lease_seconds, **spec)
        stderr_path = self.log_dir / f"kernel-{len(self.started)}-{spec_.session_id}.log"
        with stderr_path.open("w") as stderr:
            proc = start_node_kernel(spec_, stdout=subprocess.PIPE, stderr=stderr, text=True)
        kernel = KernelProcess(spec_, proc, stderr_path)
        self.started.append(kernel)
        return kernel.wait_ready() if wait else kernel

    def logs(self) -> str:
        return "\n".join(
            f"--- {k.session_id} (exit {k.proc.poll()})\n{k.stderr()}" for k in self.started
        )

    def close(self) -> None:
        for kernel in self.started:
            if kernel.alive():
                kernel.proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 10
        for kernel in self.started:
            try:
                kernel.proc.wait(max(deadline - time.monotonic(), 0.1))
            except subprocess.TimeoutExpired:
                kernel.proc.kill()
                kernel.proc.wait(10)


_warmed = False


def warm_snapshot() -> None:
    """Make sure the Pyodide snapshot for the current sources is cached (once per run)."""
    global _warmed
    if _warmed:
        return
    spec = KernelSpec(relay="http://127.0.0.1:9", notebook="warmup", cache_dir=default_cache_dir())
    snapshot = ensure_snapshot(spec, wait=True)
    assert snapshot.exists(), f"the snapshot maker made no {snapshot}"
    _warmed = True


@pytest.fixture(name="kernels")
def kernels_fixture(tmp_path: Path) -> Iterator[Kernels]:
    """Factory for Node kernels; every one is stopped at the end, and their logs shown on
    failure."""
    warm_snapshot()
    started = Kernels(tmp_path)
    try:
        yield started
    finally:
        started.close()


@pytest.fixture(name="notebooks")
def notebooks_fixture() -> Iterator[Callable[..., Notebook]]:
    """``notebooks(relay.url, relay.token)`` creates a notebook; its HTTP client is closed at the
    end."""
    made: list[Notebook] = []

    def create(url: str, token: str | None = None) -> Notebook:
        notebook = Notebook.create(url, token=token)
        made.append(notebook)
        return notebook

    yield create
    for notebook in made:
        notebook.close()


# --- a TCP hop that can be cut ------------------------------------------------------------


class TcpProxy:
    """Forwards 127.0.0.1:<port> to ``target``; ``cut()`` drops every connection and refuses new
    ones."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._open = threading.Event()
        self._open.set()
        self._closed = False
        self._pairs: list[tuple[socket.socket, socket.socket]] = []
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if not self._open.is_set():
                client.close()  # "connection reset": the relay is unreachable
                continue
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port), timeout=5)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._pairs.append((client, upstream))
            threading.Thread(target=self._pipe, args=(client, upstream), daemon=True).start()
            threading.Thread(target=self._pipe, args=(upstream, client), daemon=True).start()

    @staticmethod
    def _pipe(source: socket.socket, target: socket.socket) -> None:
        try:
            while chunk := source.recv(65536):
                target.sendall(chunk)
        except OSError:
            pass
        finally:
            for sock in (source, target):
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def cut(self) -> None:
        self._open.clear()
        with self._lock:
            pairs, self._pairs = self._pairs, []
        for pair in pairs:
            for sock in pair:
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                sock.close()

    def restore(self) -> None:
        self._open.set()

    def close(self) -> None:
        self._closed = True
        self.cut()
        self.listener.close()


@pytest.fixture(name="wheelhouse", scope="session")
def wheelhouse_fixture(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder holding humanize's wheel (pure Python, no dependencies), fetched once from PyPI."""
    folder = tmp_path_factory.mktemp("wheels")
    download_wheel(folder, "humanize")
    return folder


def download_wheel(folder: Path, name: str, *extra: str) -> Path:
    """``name``'s wheel (for Python 3.14; ``extra`` pip options, e.g. a Pyodide platform),
    fetched from PyPI into ``folder``; the test fails if PyPI cannot give it."""
    command = [
        sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check",
        "--no-deps", "--only-binary=:all:", "--python-version", "3.14", *extra, "-d",
        str(folder), name,
    ]  # fmt: skip
    result = subprocess.run(command, check=False, capture_output=True, text=True, timeout=180)
    stem = name.replace("-", "_")
    found = sorted(folder.glob(f"{stem}-*.whl"))
    if result.returncode != 0 or not found:
        pytest.fail(f"could not fetch {name}'s wheel from PyPI:\n{result.stderr}", pytrace=False)
    return found[-1]


#: Cells that show what a kernel does as Jupyter's does (``check_jupyter_cells``), on
#: every host.
JUPYTER_CELLS = {
    "result": "x = 6\nx * 7",
    "quiet": "x * 7;",
    "quiet_comment": "x * 7;  # the ; still hides it",
    "await": "import asyncio\nawait asyncio.sleep(0.01)\n'awaited'",
    "display": (
        "from IPython.display import HTML, clear_output, display\n"
        "handle = display(HTML('<b>1</b>'), display_id='progress')\n"
        "handle.update(HTML('<b>2</b>'))"
    ),
    "update_later": "handle.update(HTML('<b>3</b>'))",
    "clear": "print('before')\nclear_output()\nprint('after')",
    "clear_wait": "print('one')\nclear_output(wait=True)\nprint('two')",
    "stderr": "import sys\nprint('to stderr', file=sys.stderr)\nprint('to stdout')",
    "error": "def inner():\n    return 1 / 0\n\ninner()",
    "input": "name = input('name? ')",
    "many_prints": "for i in range(100_000):\n    print(i)",
    "flood": "print('x' * 6_000_000)",
}


def check_jupyter_cells(notebook: Notebook, ids: dict[str, str]) -> None:
    """``ids``: JUPYTER_CELLS' names -> their executions, run in this order by one fresh
    kernel; every one did as in Jupyter."""
    run = {name: notebook.execution(execution_id) for name, execution_id in ids.items()}

    run = {name: notebook.execution(execution_id) for name, execution_id in ids.items()}

    # One kernel ran them in order, counting as Jupyter does.
    assert [run[name].execution_count for name in JUPYTER_CELLS] == list(
        range(1, len(JUPYTER_CELLS) + 1)
    )
    assert len({r.kernel_session for r in run.values()}) == 1
    statuses = {name: r.status for name, r in run.items()}
    assert statuses == {
        name: "error" if name in ("error", "input") else "ok" for name in JUPYTER_CELLS
    }

    assert run["result"].outputs == [
        {
            "output_type": "execute_result",
            "data": {"text/plain": "42"},
            "metadata": {},
            "execution_count": 1,
        }
    ]
    assert run["quiet"].outputs == [] and run["quiet_comment"].outputs == []
    assert [o["data"] for o in run["await"].outputs] == [{"text/plain": "'awaited'"}]

    # display + update by display id, in the cell and later from another cell.
    [shown] = run["display"].outputs
    assert shown["output_type"] == "display_data"
    assert shown["data"]["text/html"] == "<b>3</b>"
    assert run["update_later"].outputs == []
    updates = notebook.events("displayUpdated", display_id="progress")
    assert [u["args"]["data"]["text/html"] for u in updates] == ["<b>2</b>", "<b>3</b>"]

    assert run["clear"].outputs == [{"output_type": "stream", "name": "stdout", "text": "after\n"}]
    assert run["clear_wait"].outputs == [
        {"output_type": "stream", "name": "stdout", "text": "two\n"}
    ]
    assert stream_text(run["stderr"].outputs, "stderr") == "to stderr\n"
    assert stream_text(run["stderr"].outputs, "stdout") == "to stdout\n"

    error = only_error(run["error"].outputs)
    assert (error["ename"], error["evalue"]) == ("ZeroDivisionError", "division by zero")
    trace = "\n".join(error["traceback"])
    cell_file = f"<cell-{run['error'].execution_count}>"
    assert f'"{cell_file}", line 4, in <module>' in trace and "inner()" in trace
    assert f'"{cell_file}", line 2, in inner' in trace and "return 1 / 0" in trace
    assert "kernel_headless" not in trace

    asked = only_error(run["input"].outputs)
    assert asked["ename"] == "StdinNotImplementedError"
    assert "input()" in asked["evalue"] and "not supported" in asked["evalue"]

    # 100,000 prints: every character, in a handful of coalesced events.
    printed = run["many_prints"]
    assert printed.outputs == [
        {
            "output_type": "stream",
            "name": "stdout",
            "text": "".join(f"{i}\n" for i in range(100_000)),
        }
    ]
    appends = notebook.events("streamAppended", execution_id=printed.id)
    seconds = printed.completed_at - printed.started_at
    print(f"\n100,000 print() calls in {seconds:.2f} s -> {len(appends)} streamAppended events")
    # Coalesced: a handful of chunks (one per ~50 ms tick or 64,000 characters,
    # and the relay's clock is no stopwatch for the kernel's ticks), never one
    # event per print.
    assert 1 <= len(appends) <= 100

    # More than the 5 MB cap: the first 5 MB, then a notice that says what was cut.
    flood = run["flood"]
    assert stream_text(flood.outputs, "stdout") == "x" * 5_000_000
    notice = stream_text(flood.outputs, "stderr")
    assert (
        "output truncated" in notice
        and "1.0 MB more was not shown" in notice
        and "5.0 MB" in notice
    )

    # The relay's snapshot agrees with our fold.
    snapshot = {c["execution"]["id"]: c for c in notebook.snapshot()["cells"] if c["execution"]}
    for name, execution_id in ids.items():
        assert snapshot[execution_id]["outputs"] == run[name].outputs, name
        assert snapshot[execution_id]["execution"]["status"] == run[name].status, name
