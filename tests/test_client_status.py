"""The words the page puts on runs, kernels and syncing (``client.status``), in CPython.

The view shows them; these tests need no browser.
"""

from __future__ import annotations

from client.status import _duration, execution_summary, kernel_status
from shared_schema import NotebookState, advance, stored
from shared_schema import events as ev


def _state(*events: ev.Event, ts: float = 100.0) -> NotebookState:
    state = NotebookState()
    for seq, event in enumerate(events, start=1):
        advance(state, stored(seq, f"e{seq}", event, "user:a", ts))
    return state


_CELL = ev.CellCreated(cell_id="c1")
_RUN = ev.ExecutionRequested(execution_id="x1", cell_id="c1", source="1")
_SESSION = ev.KernelSessionStarted(session_id="ks-12345678", host="node", lease_seconds=5, label="")


def test_no_kernel_says_whether_one_will_start() -> None:
    idle = _state(_CELL)
    assert kernel_status(idle, "auto") == (
        "none",
        "kernel: none (one starts when you run a cell)",
        False,
    )
    assert kernel_status(idle, "none") == ("none", "kernel: none · start one with", True)
    waiting = _state(_CELL, _RUN)
    assert kernel_status(waiting, "auto") == ("starting", "kernel: starting…", False)
    assert kernel_status(waiting, None) == (
        "starting",
        "kernel: starting… · or start one with",
        True,
    )


def test_a_live_kernel_is_idle_busy_or_restarting() -> None:
    live = _state(_CELL, _SESSION)
    assert kernel_status(live, "auto") == ("idle", "kernel: idle · ks-12345", False)
    busy = _state(
        _CELL, _SESSION, _RUN,
        ev.ExecutionAssigned(execution_id="x1", session_id="ks-12345678"),
        ev.ExecutionStarted(execution_id="x1", session_id="ks-12345678"),
    )  # fmt: skip
    assert kernel_status(busy, "auto")[:2] == ("busy", "kernel: busy · ks-12345")
    restarting = _state(_CELL, _SESSION, ev.KernelRestartRequested(session_id=None))
    assert kernel_status(restarting, "auto")[0] == "restarting"


def test_a_run_says_how_long_it_took_and_where() -> None:
    state = _state(
        _CELL, _SESSION, _RUN,
        ev.ExecutionAssigned(execution_id="x1", session_id="ks-12345678"),
        ev.ExecutionStarted(execution_id="x1", session_id="ks-12345678"),
    )  # fmt: skip
    run = state.executions["x1"]
    assert (
        execution_summary(run, state, now=run.started_at + 3.5)
        == "running 3.5 s · kernel ks-12345 (node)"
    )
    advance(
        state,
        stored(
            6,
            "e6",
            ev.ExecutionCompleted(execution_id="x1", session_id="ks-12345678", status="ok"),
            "kernel:k",
            run.started_at + 0.123,
        ),
    )
    assert execution_summary(run, state) == "done in 0.12 s · kernel ks-12345 (node)"
    advance(
        state,
        stored(
            7,
            "e7",
            ev.ExecutionRequested(execution_id="x2", cell_id="c1", source="2"),
            "user:a",
            200.0,
        ),
    )
    advance(
        state,
        stored(
            8,
            "e8",
            ev.ExecutionRequested(execution_id="x3", cell_id="c1", source="3"),
            "user:a",
            200.0,
        ),
    )
    assert execution_summary(state.executions["x3"], state) == "queued · 1 ahead"
    assert (
        _duration(125.4) == "2 min 05 s"
        and _duration(12.34) == "12.3 s"
        and _duration(0.5, live=True) == "0.5 s"
    )
