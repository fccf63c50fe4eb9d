"""Real Node kernels against a real relay: what a person pressing Run sees.

Every test starts ``anode serve`` as a process and Pyodide kernels as Node
processes (from the cached memory snapshot), pushes events the way a client
does, and reads the outcome from the log: folded here with ``shared_schema``
and, where it matters, from the relay's own snapshot.
Recovery from lost kernels and lost relays is in ``test_kernel_recovery.py``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from shared_schema import NotebookState, advance, stored_from_json
from tests.kernels import (  # noqa: F401 - the *_fixture names are fixtures
    JUPYTER_CELLS,
    Kernels,
    Notebook,
    author,
    check_jupyter_cells,
    event,
    kernels_fixture,
    notebooks_fixture,
    only_error,
    stream_text,
    wait_until,
    warm_snapshot,
    wheelhouse_fixture,
)

pytestmark = pytest.mark.slow

REPO_ROOT = Path(__file__).resolve().parent.parent


def _alive_pids_with(text: str) -> list[int]:
    """Processes whose command line contains ``text`` (Linux /proc)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if text.encode() in (entry / "cmdline").read_bytes():
                    pids.append(int(entry.name))
            except OSError:
                pass
    return pids


# --- auto-start ---------------------------------------------------------------------


def test_serve_starts_a_kernel_for_waiting_work(relay_process, notebooks) -> None:
    warm_snapshot()
    relay = relay_process()  # --kernels auto is the default
    notebook: Notebook = notebooks(relay.url, relay.token)

    first = notebook.run("print(1)")
    notebook.wait_done(first, timeout=60)
    cell = next(c for c in notebook.snapshot()["cells"] if c["execution"]["id"] == first)
    assert cell["outputs"] == [{"output_type": "stream", "name": "stdout", "text": "1\n"}]
    execution = cell["execution"]
    assert execution["status"] == "ok"
    assert execution["execution_count"] == 1
    session = execution["kernel_session"]
    assert session

    second = notebook.run("print(2)")
    notebook.wait_done(second)
    state = notebook.snapshot()
    cell = next(c for c in state["cells"] if c["execution"]["id"] == second)
    assert cell["outputs"] == [{"output_type": "stream", "name": "stdout", "text": "2\n"}]
    assert (cell["execution"]["kernel_session"], cell["execution"]["execution_count"]) == (
        session,
        2,
    )
    [kernel] = state["kernels"]
    assert (kernel["id"], kernel["label"], kernel["status"]) == (session, "auto", "live")

    # Stopping the relay stops its kernels: no process is left, the session ended.
    assert _alive_pids_with(session)
    relay.stop()
    wait_until(lambda: not _alive_pids_with(session), 15, f"the kernel of {session} to exit")
    relay.start()
    notebook.sync()
    [ended] = notebook.events("kernelSessionEnded", session_id=session)
    assert ended["args"]["reason"] == "the relay shut down"
    assert not notebook.events("kernelSessionExpired")


# --- Jupyter semantics, end to end ----------------------------------------------------


def test_cells_behave_as_in_jupyter(relay_process, kernels: Kernels, notebooks) -> None:
    relay = relay_process("--kernels", "none")
    notebook: Notebook = notebooks(relay.url, relay.token)
    kernels.start(relay.url, notebook.id, token=notebook.kernel_token())
    ids = dict(zip(JUPYTER_CELLS, notebook.run_many(list(JUPYTER_CELLS.values())), strict=False))
    notebook.wait_done(*ids.values(), timeout=90)
    check_jupyter_cells(notebook, ids)


# --- several kernels, one notebook -------------------------------------------------------


def test_three_kernels_run_every_execution_exactly_once(
    relay_process, kernels: Kernels, notebooks
) -> None:
    relay = relay_process("--kernels", "none")
    notebook: Notebook = notebooks(relay.url, relay.token)
    started = [
        kernels.start(relay.url, notebook.id, token=notebook.kernel_token(), wait=False)
        for _ in range(3)
    ]
    for kernel in started:
        kernel.wait_ready()

    count = 200
    cells = [notebook.cell_created(f"print({i})") for i in range(count)]
    notebook.push(*(created for created, _ in cells))
    requests = [notebook.requested(f"print({i})", cell_id) for i, (_, cell_id) in enumerate(cells)]
    began = time.monotonic()
    for batch in range(0, count, 50):  # a few pushes, back to back
        notebook.push(*(requested for requested, _ in requests[batch : batch + 50]))
    ids = [execution_id for _, execution_id in requests]
    notebook.wait_done(*ids, timeout=120)
    took = time.monotonic() - began

    # Replay the log: which executionStarted counted (moved the run to `executing`)?
    state = NotebookState()
    counted: dict[str, list[dict]] = {x: [] for x in ids}
    for raw in notebook.history:
        execution_id = raw["args"].get("execution_id")
        before = state.executions[execution_id].status if execution_id in state.executions else None
        advance(state, stored_from_json(raw))
        if (
            raw["name"] == "executionStarted"
            and execution_id in counted
            and before == "assigned"
            and state.executions[execution_id].status == "executing"
        ):
            counted[execution_id].append(raw)
    outputs_by: dict[str, set[str]] = {x: set() for x in ids}
    for raw in notebook.history:
        if (
            raw["name"] in ("streamAppended", "outputAdded")
            and raw["args"]["execution_id"] in outputs_by
        ):
            outputs_by[raw["args"]["execution_id"]].add(author(raw))

    ran_by: Counter[str] = Counter()
    for i, execution_id in enumerate(ids):
        run = state.executions[execution_id]
        assert run.status == "ok", (execution_id, run.status)
        assert run.outputs == [{"output_type": "stream", "name": "stdout", "text": f"{i}\n"}]
        [start] = counted[execution_id]  # exactly one start counted
        assert start["args"]["session_id"] == run.kernel_session
        assert outputs_by[execution_id] == {author(start)}, (
            "outputs from a kernel that did not hold the run"
        )
        ran_by[run.kernel_session] += 1

    sessions = {k.session_id for k in started}
    claims = Counter(raw["args"]["session_id"] for raw in notebook.events("executionAssigned"))
    print(
        f"\n{count} executions on 3 kernels in {took:.1f} s; ran: {dict(ran_by)}; claims pushed: "
        f"{dict(claims)}"
    )
    assert set(ran_by) <= sessions
    assert len(ran_by) > 1, "only one kernel did any work"
    assert sum(ran_by.values()) == count


# --- interrupt, cancel, restart ---------------------------------------------------------


def test_interrupt_stops_a_running_cell(relay_process, kernels: Kernels, notebooks) -> None:
    relay = relay_process("--kernels", "none")
    notebook: Notebook = notebooks(relay.url, relay.token)
    kernel = kernels.start(relay.url, notebook.id, token=notebook.kernel_token())
    cases = [
        ("spinning, interruptRequested", "while True:\n    pass", notebook.interrupt),
        (
            "awaiting, interruptRequested",
            "import asyncio\nawait asyncio.sleep(100)",
            notebook.interrupt,
        ),
        ("spinning, executionCancelled", "while True:\n    pass", notebook.cancel),
        (
            "awaiting, executionCancelled",
            "import asyncio\nawait asyncio.sleep(100)",
            notebook.cancel,
        ),
    ]
    report = []
    for label, source, stop in cases:
        running = notebook.run(source)
        notebook.wait_status(running, "executing")
        time.sleep(0.2)  # well inside the loop (or the sleep)
        seq = stop(running)
        [run] = notebook.wait_done(running, timeout=20)
        asked = next(e for e in notebook.history if e["seq"] == seq)
        [completed] = notebook.events("executionCompleted", execution_id=running)
        latency = completed["ts"] - asked["ts"]  # both stamped by the relay
        report.append(f"{label}: {latency * 1000:.0f} ms")
        assert run.status == "cancelled", label
        error = only_error(run.outputs)
        assert error["ename"] == "KeyboardInterrupt", label
        assert run.kernel_session == kernel.session_id

        after = notebook.run("print('next')")
        [next_run] = notebook.wait_done(after)
        assert (next_run.status, next_run.outputs) == (
            "ok",
            [{"output_type": "stream", "name": "stdout", "text": "next\n"}],
        )
        assert next_run.kernel_session == kernel.session_id
    print("\ninterrupt -> executionCompleted (relay timestamps): " + "; ".join(report))
    assert not notebook.events("kernelRestarted"), "an interrupt must not cost the interpreter"


def test_cancelled_pending_execution_never_runs(relay_process, kernels: Kernels, notebooks) -> None:
    relay = relay_process("--kernels", "none")
    notebook: Notebook = notebooks(relay.url, relay.token)
    cancelled = notebook.run("print('must not run')")
    notebook.cancel(cancelled)
    later = notebook.run("print('runs')")

    kernels.start(relay.url, notebook.id, token=notebook.kernel_token())
    [run, ran] = notebook.wait_done(cancelled, later)
    assert (ran.status, stream_text(ran.outputs)) == ("ok", "runs\n")
    assert run.status == "cancelled" and run.outputs == [] and run.kernel_session is None
    touched = [e["name"] for e in notebook.history if e["args"].get("execution_id") == cancelled]
    assert touched == ["executionRequested", "executionCancelled"]


def test_restart_gives_a_fresh_namespace(relay_process, kernels: Kernels, notebooks) -> None:
    relay = relay_process("--kernels", "none")
    notebook: Notebook = notebooks(relay.url, relay.token)
    kernel = kernels.start(relay.url, notebook.id, token=notebook.kernel_token())
    [define, show] = notebook.wait_done(*notebook.run_many(["x = 1", "x"]))
    assert (define.execution_count, show.execution_count) == (1, 2)
    assert show.outputs[0]["data"] == {"text/plain": "1"}

    notebook.push(event("kernelRestartRequested", session_id=None))
    notebook.wait_event("kernelRestarted", session_id=kernel.session_id)
    [after] = notebook.wait_done(notebook.run("x"))
    assert after.status == "error"
    error = only_error(after.outputs)
    assert (error["ename"], error["evalue"]) == ("NameError", "name 'x' is not defined")
    assert after.execution_count == 1
    assert after.kernel_session == kernel.session_id
    [session] = notebook.snapshot()["kernels"]
    assert (session["status"], session["restarts"], session["restart_requested"]) == (
        "live",
        1,
        False,
    )


# --- bad input ---------------------------------------------------------------------------

BAD_CELLS = [
    # (label, source, expected status, expected ename(s) or stdout text)
    ("syntax error", "def broken(:\n    pass", "error", "SyntaxError"),
    ("raise", "raise ValueError('bad value')", "error", "ValueError"),
    ("binary junk", 'print(b"\\xff".decode("utf-8", "surrogateescape"))', "ok", "\ufffd\n"),
    ("lone surrogate", 'import sys\nsys.stdout.write("\\udcff");', "ok", "\ufffd"),
    ("infinite recursion", "def f():\n    return f()\n\nf()", "error", "RecursionError"),
    ("too much memory", "x = bytearray(8 * 1024**3)", "error", ("MemoryError", "OverflowError")),
    ("sys.exit()", "import sys\nsys.exit()", "error", "SystemExit"),
    ("sys.exit(3)", "import sys\nsys.exit(3)", "error", "SystemExit"),
    # The interpreter itself goes: the host starts a fresh one and says so.
    ("the worker exits", "import js\njs.process.exit(3)", "error", "KernelRestarted"),
    (
        "C recursion past the wasm stack",
        (
            "import sys\nsys.setrecursionlimit(100_000)\n\n"
            "class Deep:\n    def __repr__(self):\n        return repr(Deep())\n\nrepr(Deep())"
        ),
        "error",
        ("KernelRestarted", "RecursionError"),  # Pyodide 314.0: a fatal RangeError
    ),
]


def test_bad_input_never_stops_the_kernel(relay_process, kernels: Kernels, notebooks) -> None:
    relay = relay_process("--kernels", "none")
    notebook: Notebook = notebooks(relay.url, relay.token)
    kernel = kernels.start(relay.url, notebook.id, token=notebook.kernel_token())
    sources = []
    for _, source, _, _ in BAD_CELLS:
        sources += [source, "print('alive')"]
    ids = notebook.run_many(sources)
    runs = notebook.wait_done(*ids, timeout=90)

    restarts = 0
    pairs = zip(BAD_CELLS, runs[::2], runs[1::2], strict=True)
    for (label, _, status, expected), bad, alive in pairs:
        assert bad.status == status, (label, bad.outputs)
        if status == "error":
            error = only_error(bad.outputs)
            allowed = expected if isinstance(expected, tuple) else (expected,)
            assert error["ename"] in allowed, (label, error)
            assert error["traceback"], label
            restarts += error["ename"] == "KernelRestarted"
        else:
            assert stream_text(bad.outputs) == expected, label
        assert (alive.status, alive.outputs) == (
            "ok",
            [{"output_type": "stream", "name": "stdout", "text": "alive\n"}],
        ), label
        assert alive.kernel_session == kernel.session_id, label

    syntax = "\n".join(only_error(runs[0].outputs)["traceback"])
    assert "def broken(:" in syntax and "<cell-1>" in syntax
    died = [e["args"]["session_id"] for e in notebook.events("kernelRestarted")]
    assert died == [kernel.session_id] * restarts and restarts >= 1
    assert "restarted" in only_error(runs[16].outputs)["evalue"]
    assert runs[17].execution_count == 1  # a fresh interpreter counts from 1 again
    assert "interpreter died" in kernel.stderr()


# --- %pip from the relay's wheelhouse -------------------------------------------------------


def test_pip_installs_from_the_wheelhouse(
    relay_process, kernels: Kernels, notebooks, wheelhouse: Path
) -> None:
    relay = relay_process("--kernels", "none", "--wheels", str(wheelhouse))
    notebook: Notebook = notebooks(relay.url, relay.token)
    # Only the relay's wheelhouse: the package cannot come from anywhere else.
    kernels.start(
        relay.url,
        notebook.id,
        token=notebook.kernel_token(),
        index_urls=[f"{relay.url}/wheels/simple/"],
    )
    [install, use] = notebook.wait_done(
        *notebook.run_many(
            ["%pip install humanize", "import humanize\nhumanize.intcomma(1234567)"]
        ),
        timeout=60,
    )
    assert install.status == "ok", install.outputs
    assert "Successfully installed humanize" in stream_text(install.outputs)
    assert use.status == "ok", use.outputs
    assert use.outputs[0]["data"] == {"text/plain": "'1,234,567'"}


# --- the `anode kernel` command ---------------------------------------------------------------


def _anode(*args: str, **popen) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "anode", *args], cwd=REPO_ROOT, text=True,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, **popen,
    )  # fmt: skip


def test_kernel_command_without_a_relay_says_so() -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{sock.getsockname()[1]}"  # nothing listens there
    process = _anode("kernel", "--notebook", "nb", "--relay", url)
    _, err = process.communicate(timeout=30)
    assert process.returncode == 2
    assert err.strip().startswith("anode: error: cannot reach the relay at")
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_kernel_command_for_an_unknown_notebook_says_so(relay_process) -> None:
    relay = relay_process("--kernels", "none")
    process = _anode(
        "kernel", "--notebook", "no-such-notebook", "--relay", relay.url, "--token", relay.token
    )
    _, err = process.communicate(timeout=30)
    assert process.returncode == 2
    assert "no-such-notebook" in err and "404" in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_kernel_command_without_a_token_says_how_to_make_one(relay_process) -> None:
    relay = relay_process("--kernels", "none")
    process = _anode("kernel", "--notebook", "nb1", "--relay", relay.url)
    _, err = process.communicate(timeout=30)
    assert process.returncode == 2
    assert "needs a token" in err and "anode token create --notebook nb1 --role kernel" in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


@pytest.mark.parametrize(
    "signum, to_group",
    [
        pytest.param(signal.SIGINT, True, id="SIGINT-from-a-terminal"),
        pytest.param(signal.SIGTERM, False, id="SIGTERM-to-the-process"),
        pytest.param(signal.SIGTERM, True, id="SIGTERM-to-the-group"),
    ],
)
def test_signals_end_the_session(relay_process, notebooks, signum: int, to_group: bool) -> None:
    warm_snapshot()
    relay = relay_process("--kernels", "none")
    notebook: Notebook = notebooks(relay.url, relay.token)
    process = _anode(
        "kernel",
        "--notebook",
        notebook.id,
        "--relay",
        relay.url,
        "--lease",
        "2",
        "--token",
        notebook.kernel_token(),
        start_new_session=True,
    )
    try:
        [run] = notebook.wait_done(notebook.run("print('served')"), timeout=60)
        assert stream_text(run.outputs) == "served\n"
        session = run.kernel_session
        if to_group:
            os.killpg(process.pid, signum)  # what a terminal's Ctrl+C (or a supervisor) does
        else:
            process.send_signal(signum)  # `kill PID`
        ended = notebook.wait_event("kernelSessionEnded", timeout=15, session_id=session)
        assert ended["args"]["reason"] == "shutdown"
        assert not notebook.events("kernelSessionExpired"), "ended cleanly, not by losing its lease"
        process.wait(15)
        wait_until(lambda: not _alive_pids_with(session), 10, "the Node host to exit")
    finally:
        if process.poll() is None or _alive_pids_with(notebook.id):
            try:
                os.killpg(process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        process.communicate(timeout=10)
