"""What the page says about runs, kernels and syncing: pure Python, tested in CPython.

The notebook view (``client.view``) and the cell view (``client.cell_view``)
put these words on the page; nothing here touches the DOM.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from shared_schema.state import Execution, NotebookState

#: What a person sees for each execution status.
STATUS_LABELS = {
    "pending": "queued",
    "assigned": "queued",
    "executing": "running",
    "ok": "done",
    "error": "error",
    "cancelled": "cancelled",
}


@dataclass
class SyncStatus:
    online: bool
    #: Events of this tab the log has not served back yet (``<... data-unsynced>``).
    unsynced: int
    detail: str = ""
    #: Some have waited long enough to be worth a word ("N to sync"); while events go
    #: out as fast as they are made, the count would only flicker with every keystroke.
    late: bool = False


def kernel_status(
    state: NotebookState, kernels: str | None = None, tab: tuple[str, str] = ("off", "")
) -> tuple[str, str, bool]:
    """``(status, text, show the command)`` for the header: none, starting, idle, busy or
    restarting.

    ``kernels`` is the relay's ``--kernels`` mode from ``/api/health``: "auto"
    (it starts a kernel when work waits), "none" (someone must start one), or
    ``None`` when the relay does not say (then the command shows while work waits).
    ``tab`` is this tab's kernel (``client.tab_kernel``): its status and what to say of it.
    """
    tab_status, tab_detail = tab
    if tab_status in ("starting", "failed"):
        return tab_status, f"kernel: this tab · {tab_detail or tab_status}", False
    live = state.live_kernels()
    waiting = bool(state.pending())
    if not live:
        if kernels == "none":
            return "none", "kernel: none · start one with", True
        if waiting:
            return (
                "starting",
                "kernel: starting…" + ("" if kernels == "auto" else " · or start one with"),
                kernels != "auto",
            )
        return (
            "none",
            "kernel: none" + (" (one starts when you run a cell)" if kernels == "auto" else ""),
            False,
        )
    label = ", ".join(session.label or session.id[:8] for session in live)
    if any(session.restart_requested for session in live):
        return "restarting", f"kernel: restarting… · {label}", False
    busy = any(state.executions[eid].status == "executing" for eid in state.queue)
    text = f"kernel: {'busy' if busy else 'idle'} · {label}"
    if tab_detail:
        text += f" · {tab_detail}"
    return ("busy" if busy else "idle"), text, False


def execution_summary(run: Execution, state: NotebookState, now: float | None = None) -> str:
    """ "done in 0.12 s · kernel ab12cd34 (node)", "running 3.5 s · …" and the like."""
    text = STATUS_LABELS.get(run.status, run.status)
    if run.started_at is not None and run.completed_at is not None:
        text += f" in {_duration(run.completed_at - run.started_at)}"
    elif run.status == "executing" and run.started_at is not None:
        text += (
            f" {_duration((now if now is not None else time.time()) - run.started_at, live=True)}"
        )
    elif run.status in ("pending", "assigned") and run.id in state.queue:
        ahead = state.queue.index(run.id)
        if ahead:
            text += f" · {ahead} ahead"
    if run.kernel_session:
        session = state.kernels.get(run.kernel_session)
        name = session.label if session and session.label else run.kernel_session[:8]
        host = f" ({session.host})" if session else ""
        text += f" · kernel {name}{host}"
    if run.reason:
        text += f" · {run.reason}"
    return text


def _duration(seconds: float, live: bool = False) -> str:
    """0.12 s, 3.5 s, 2 min 05 s (a running cell's time in tenths, so it visibly moves)."""
    seconds = max(0.0, seconds)
    if seconds >= 60:
        return f"{int(seconds // 60)} min {int(seconds % 60):02d} s"
    return f"{seconds:.1f} s" if live or seconds >= 10 else f"{seconds:.2f} s"
