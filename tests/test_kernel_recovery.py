"""Kernels and relays that die or drop off, with real processes: nothing stuck, nothing twice.

- a kernel killed with ``kill -9`` mid-cell: the relay expires its lease, the
  cell ends ``error`` (``KernelLost``), and work a silent session had claimed
  but not started goes back to ``pending`` for a live kernel;
- a relay killed with ``kill -9`` and started again: the kernel reconnects,
  keeps its session and runs new work, and nothing from before runs again;
- a kernel cut off from the relay for longer than its lease: it finds its
  session expired in the log and carries on under a new one.
"""

from __future__ import annotations

import time

import pytest

from tests.kernels import (  # noqa: F401 - the *_fixture names are fixtures
    Kernels,
    Notebook,
    TcpProxy,
    author,
    event,
    kernels_fixture,
    notebooks_fixture,
    only_error,
    stream_text,
)

pytestmark = pytest.mark.slow

LEASE = 1.5


def _starts(notebook: Notebook, execution_id: str) -> list[dict]:
    return notebook.events("executionStarted", execution_id=execution_id)


def _outputs_authors(notebook: Notebook, execution_id: str) -> set[str]:
    return {
        author(e)
        for e in notebook.history
        if e["name"] in ("streamAppended", "outputAdded")
        and e["args"].get("execution_id") == execution_id
    }


def test_kill_9_of_a_kernel_mid_cell(relay_process, kernels: Kernels, notebooks) -> None:
    relay = relay_process("--kernels", "none")
    notebook: Notebook = notebooks(relay.url, relay.token)
    pair = [
        kernels.start(
            relay.url, notebook.id, token=notebook.kernel_token(), lease_seconds=LEASE, wait=False
        )
        for _ in range(2)
    ]
    for kernel in pair:
        kernel.wait_ready()

    running = notebook.run("import time\nprint('started')\nwhile True:\n    time.sleep(0.05)")
    run = notebook.wait_status(running, "executing")
    [doomed] = [k for k in pair if k.session_id == run.kernel_session]
    [spare] = [k for k in pair if k is not doomed]
    notebook.wait_for(lambda state: state.executions[running].outputs, what="the first output")

    # A session that claims work and is never heard from again (no heartbeats):
    # announced, claimed and left in one atomic push, so no live kernel can come first.
    fake = "ks-fake-" + running[-8:]
    created, cell_id = notebook.cell_created("print('claimed, never started')")
    requested, claimed = notebook.requested("print('claimed, never started')", cell_id)
    notebook.push(
        event("kernelSessionStarted", session_id=fake, host="other", lease_seconds=LEASE),
        created,
        requested,
        event("executionAssigned", execution_id=claimed, session_id=fake),
    )
    assert notebook.sync().executions[claimed].status == "assigned"

    killed_at = time.time()
    doomed.kill()
    expired = notebook.wait_event(
        "kernelSessionExpired", timeout=LEASE + 10, session_id=doomed.session_id
    )
    print(
        f"\nkill -9 -> kernelSessionExpired in {expired['ts'] - killed_at:.2f} s (lease {LEASE} s)"
    )
    assert expired["actor"] == "relay"
    notebook.wait_event("kernelSessionExpired", timeout=LEASE + 10, session_id=fake)

    [lost, rerun] = notebook.wait_done(running, claimed, timeout=30)
    assert lost.status == "error"
    assert stream_text(lost.outputs) == "started\n"
    error = only_error(lost.outputs)
    assert error["ename"] == "KernelLost"
    assert "lost" in error["evalue"]

    # The claimed run went back to pending, and the live kernel ran it, once.
    assert (rerun.status, rerun.kernel_session) == ("ok", spare.session_id)
    assert rerun.outputs == [
        {"output_type": "stream", "name": "stdout", "text": "claimed, never started\n"}
    ]
    assert [e["args"]["session_id"] for e in _starts(notebook, claimed)] == [spare.session_id]
    assignments = [
        e["args"]["session_id"] for e in notebook.events("executionAssigned", execution_id=claimed)
    ]
    assert assignments[0] == fake and assignments[-1] == spare.session_id

    # Nothing ran twice: the lost cell ran under the doomed session only. The
    # spare may have raced for it at the start (a claim goes out with its start,
    # and a losing pair folds to nothing), but never after the lease expired.
    [won, *lost_races] = notebook.events("executionAssigned", execution_id=running)
    assert won["args"]["session_id"] == doomed.session_id
    assert all(e["seq"] < expired["seq"] for e in lost_races)
    assert all(e["seq"] < expired["seq"] for e in _starts(notebook, running))
    assert not notebook.events("executionCompleted", execution_id=running)
    doomed_author = author(_starts(notebook, running)[0])
    assert _outputs_authors(notebook, running) == {doomed_author}
    state = notebook.sync()
    assert state.kernels[spare.session_id].status == "live"
    assert state.queue == []


@pytest.mark.parametrize(
    "down_seconds", [1.0, 2 * LEASE], ids=["down-1s", "down-longer-than-the-lease"]
)
def test_kernel_reconnects_after_the_relay_restarts(
    relay_process, kernels: Kernels, notebooks, down_seconds
) -> None:
    relay = relay_process("--kernels", "none")
    notebook: Notebook = notebooks(relay.url, relay.token)
    kernel = kernels.start(
        relay.url, notebook.id, token=notebook.kernel_token(), lease_seconds=LEASE
    )
    before = notebook.run_many(["print('before')", "b = 2"])
    notebook.wait_done(*before)
    head = notebook.history[-1]["seq"]

    relay.kill()  # kill -9, while the kernel waits in a long poll
    time.sleep(down_seconds)
    relay.start()  # same port, same data

    after = notebook.run("print('after', b)")
    [run] = notebook.wait_done(after, timeout=30)
    assert (run.status, stream_text(run.outputs)) == ("ok", "after 2\n")
    assert (
        run.kernel_session == kernel.session_id
    )  # the same session: a relay restart costs no lease

    state = notebook.sync()
    for execution_id in before:
        assert len(_starts(notebook, execution_id)) == 1
        assert state.executions[execution_id].status == "ok"
    later = notebook.history[head:]
    assert not [e for e in later if e["args"].get("execution_id") in before], (
        "work from before ran again"
    )
    assert not notebook.events("kernelSessionExpired")
    assert state.kernels[kernel.session_id].status == "live"
    assert "cannot reach the relay" in kernel.stderr()


def test_kernel_cut_off_past_its_lease_starts_a_new_session(
    relay_process, kernels: Kernels, notebooks
) -> None:
    relay = relay_process("--kernels", "none")
    notebook: Notebook = notebooks(relay.url, relay.token)
    proxy = TcpProxy(relay.port)
    try:
        kernel = kernels.start(
            proxy.url, notebook.id, token=notebook.kernel_token(), lease_seconds=LEASE
        )
        [first] = notebook.wait_done(notebook.run("x = 'kept'\nprint('first')"))
        assert first.kernel_session == kernel.session_id

        proxy.cut()  # the relay stays up; this kernel cannot reach it
        notebook.wait_event(
            "kernelSessionExpired", timeout=LEASE + 10, session_id=kernel.session_id
        )
        waiting = notebook.run("print('second', x)")
        time.sleep(0.5)
        assert notebook.sync().executions[waiting].status == "pending"
        proxy.restore()

        [second] = notebook.wait_done(waiting, timeout=30)
        assert second.status == "ok", second.outputs
        # Same interpreter (its variables survive), a new session in the log.
        assert stream_text(second.outputs) == "second kept\n"
        assert second.kernel_session != kernel.session_id
        started = notebook.events("kernelSessionStarted", session_id=second.kernel_session)
        assert started and author(started[0]) == author(_starts(notebook, first.id)[0])
        expired = notebook.events("kernelSessionExpired", session_id=kernel.session_id)[0]
        assert started[0]["seq"] > expired["seq"]
        assert len(_starts(notebook, first.id)) == 1, "the first cell ran again"
        assert _outputs_authors(notebook, waiting) == {author(started[0])}
    finally:
        kernels.close()  # while the proxy still lets them end their sessions
        proxy.close()
