"""``state = fold(events)``: the one deterministic reading of a notebook's log.

The relay, every browser and every kernel fold the same ordered log with
this module and so agree on everything, races included. The rules that
decide a race live here:

- the first ``executionAssigned`` in log order wins; later claims are no-ops;
- a claim counts only from a kernel the request allows (``Execution.claimable_by``):
  a tab kernel runs only its own person's requests asked of a tab, and no
  other kernel runs those;
- only the session holding an execution may start or complete it;
- a cancelled execution stays cancelled; a finished one stays finished;
- when a kernel session ends or expires, work it claimed but had not started
  goes back to ``pending`` and work it was running ends as an ``error``;
- a notebook's requirements change only by ``requirementsAdded`` of a running
  execution and ``requirementRemoved`` (``requirements``);
- an imported cell shows the outputs it brought until it first runs here;
- an event about a deleted or unknown cell or execution is a no-op;
- a kernel's outputs count only while their execution is ``executing`` and
  is its cell's latest run (``displayUpdated`` excepted: like Jupyter, it
  updates every shown output with its display id);
- a text edit is transformed over every edit that landed after its base
  revision (edits already in the log win insert ties), unless that would
  cost more than ``limits.MAX_REBASE_WORK`` (``rebase_work``): then it is a no-op;
- a cell's source has one line ending, ``\n``: a ``\r\n`` or lone ``\r`` in a
  created source or an inserted text becomes ``\n`` (``ot.normalize_newlines``),
  as every code editor shows it, so positions mean the same everywhere.

Nothing here reads a clock or raises on a well-formed event: times come from
the relay's ``ts`` on each event, and an event that no longer applies is a
no-op.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from . import events as ev
from . import limits, ot, requirements
from .envelope import StoredEvent
from .outputs import display_id_of
from .state import TERMINAL, Cell, Execution, KernelSession, NotebookState

Handler = Callable[[NotebookState, StoredEvent], None]


def fold(state: NotebookState, event: StoredEvent) -> NotebookState:
    """Pure: a new state with ``event`` applied; ``state`` is left untouched."""
    new_state = state.copy()
    advance(new_state, event)
    return new_state


def fold_all(events: Iterable[StoredEvent], state: NotebookState | None = None) -> NotebookState:
    """Fold many events, copying the starting state once."""
    result = state.copy() if state is not None else NotebookState()
    for event in events:
        advance(result, event)
    return result


def advance(state: NotebookState, stored: StoredEvent) -> None:
    """Apply one event in place. The fast path for long logs; prefer ``fold``."""
    state.seq = max(state.seq, stored.seq)
    if stored.event is None:  # written by a newer schema: nothing we can apply
        return
    handler = _HANDLERS.get(type(stored.event))
    if handler is not None:
        handler(state, stored)
    state.updated_at = stored.ts


# --- the notebook -------------------------------------------------------------


def _notebook_initialized(state: NotebookState, stored: StoredEvent) -> None:
    event: ev.NotebookInitialized = stored.event  # type: ignore[assignment]
    if state.created_at is not None:
        return
    state.created_at = stored.ts
    state.title = event.title
    state.metadata = dict(event.metadata)


def _title_changed(state: NotebookState, stored: StoredEvent) -> None:
    event: ev.NotebookTitleChanged = stored.event  # type: ignore[assignment]
    state.title = event.title


def _metadata_set(state: NotebookState, stored: StoredEvent) -> None:
    event: ev.NotebookMetadataSet = stored.event  # type: ignore[assignment]
    _set_key(state.metadata, event.key, event.value)


def _requirement_removed(state: NotebookState, stored: StoredEvent) -> None:
    event: ev.RequirementRemoved = stored.event  # type: ignore[assignment]
    current = requirements.requirements_of(state.metadata)
    state.metadata = requirements.with_requirements(
        state.metadata, requirements.removed(current, event.package)
    )


# --- cells --------------------------------------------------------------------


def _cell_created(state: NotebookState, stored: StoredEvent) -> None:
    event: ev.CellCreated = stored.event  # type: ignore[assignment]
    if event.cell_id in state.cells:
        return  # ids are never reused, not even after a delete
    state.cells[event.cell_id] = Cell(
        id=event.cell_id,
        cell_type=event.cell_type,
        source=ot.normalize_newlines(event.source),
        created_by=stored.actor,
    )
    state.live_cells += 1
    _insert_after(state.order, event.cell_id, event.after)


def _cell_imported(state: NotebookState, stored: StoredEvent) -> None:
    event: ev.CellImported = stored.event  # type: ignore[assignment]
    if event.cell_id in state.cells:
        return
    state.cells[event.cell_id] = Cell(
        id=event.cell_id,
        cell_type=event.cell_type,
        source=ot.normalize_newlines(event.source),
        metadata=dict(event.metadata),
        created_by=stored.actor,
        attachments=dict(event.attachments),
        imported_outputs=list(event.outputs),
        imported_count=event.execution_count,
    )
    state.live_cells += 1
    _insert_after(state.order, event.cell_id, event.after)


def _cell_source_edited(state: NotebookState, stored: StoredEvent) -> None:
    event: ev.CellSourceEdited = stored.event  # type: ignore[assignment]
    cell = _live_cell(state, event.cell_id)
    if cell is None or event.base_rev > cell.rev:
        return
    if rebase_work(cell, event.base_rev, len(event.ops)) > limits.MAX_REBASE_WORK:
        return  # too stale to rebase cheaply; the relay refuses such edits
    ops = ot.newlines_in_inserts(event.ops)
    try:
        for landed in cell.history[event.base_rev :]:
            _, ops = ot.transform(landed, ops)
        source = ot.apply(cell.source, ops)
    except ot.OTError:
        return  # made against a text of another length: a broken client, ignored
    if len(source) > limits.MAX_SOURCE:
        return
    cell.source = source
    cell.history.append(ops)
    cell.rev += 1


def rebase_work(
    cell: Cell, base_rev: int, components: int, *, stop: int = limits.MAX_REBASE_WORK
) -> int:
    """What rebasing an edit of ``components`` from ``base_rev`` to the cell's head costs.

    Counting stops once past ``stop``, so the check costs at most a small
    share of the work it allows.
    """
    work = 0
    history = cell.history
    for rev in range(max(base_rev, 0), len(history)):
        work += len(history[rev]) + components + limits.REBASE_STEP_COST
        if work > stop:
            break
    return work


def _cell_type_changed(state: NotebookState, stored: StoredEvent) -> None:
    event: ev.CellTypeChanged = stored.event  # type: ignore[assignment]
    cell = _live_cell(state, event.cell_id)
    if cell is not None:
        cell.cell_type = event.cell_type


def _cell_moved(state: NotebookState, stored: StoredEvent) -> None:
    event: ev.CellMoved = stored.event  # type: ignore[assignment]
    cell = _live_cell(state, event.cell_id)
    if cell is None or event.after == event.cell_id:
        return
    if event.after is not None and event.after not in state.cells:
        return
    state.order.remove(event.cell_id)
    _insert_after(state.order, event.cell_id, event.after)


def _cell_deleted(state: NotebookState, stored: StoredEvent) -> None:
    event: ev.CellDeleted = stored.event  # type: ignore[assignment]
    cell = _live_cell(state, event.cell_id)
    if cell is None:
        return
    cell.deleted = True
    state.live_cells -= 1
    for run in list(_unfinished(state)):
        if run.cell_id == cell.id and run.status in ("pending", "assigned"):
            _finish(state, run, "cancelled", stored.ts)


def _cell_metadata_set(state: NotebookState, stored: StoredEvent) -> None:
    event: ev.CellMetadataSet = stored.event  # type: ignore[assignment]
    cell = _live_cell(state, event.cell_id)
    if cell is not None:
        _set_key(cell.metadata, event.key, event.value)


def _cell_outputs_cleared(state: NotebookState, stored: StoredEvent) -> None:
    event: ev.CellOutputsCleared = stored.event  # type: ignore[assignment]
    if event.cell_id is None:
        cells = state.visible_cells()
    else:
        cell = _live_cell(state, event.cell_id)
        cells = [cell] if cell is not None else []
    for cell in cells:
        run = state.executions.get(cell.execution_id) if cell.execution_id else None
        if run is not None:
            run.outputs = []
            run.clear_pending = False
        cell.imported_outputs = []
        cell.imported_count = None


# --- executions ---------------------------------------------------------------


def _execution_requested(state: NotebookState, stored: StoredEvent) -> None:
    event: ev.ExecutionRequested = stored.event  # type: ignore[assignment]
    cell = _live_cell(state, event.cell_id)
    if cell is None or event.execution_id in state.executions:
        return
    state.executions[event.execution_id] = Execution(
        id=event.execution_id,
        cell_id=event.cell_id,
        source=event.source,
        requested_by=stored.actor,
        requested_at=stored.ts,
        runner=event.runner,
    )
    previous = state.executions.get(cell.execution_id) if cell.execution_id else None
    if previous is not None and previous.status in TERMINAL:
        previous.outputs = []  # no longer shown anywhere: do not carry it
    cell.execution_id = event.execution_id
    cell.imported_outputs = []  # replaced by this run's, as in Jupyter
    cell.imported_count = None
    state.queue.append(event.execution_id)


def _execution_assigned(state: NotebookState, stored: StoredEvent) -> None:
    event: ev.ExecutionAssigned = stored.event  # type: ignore[assignment]
    run = state.executions.get(event.execution_id)
    session = state.kernels.get(event.session_id)
    if run is None or run.status != "pending" or session is None or session.status != "live":
        return
    if not run.claimable_by(session):
        return
    run.status = "assigned"
    run.kernel_session = event.session_id
    run.assigned_at = stored.ts


def _execution_started(state: NotebookState, stored: StoredEvent) -> None:
    event: ev.ExecutionStarted = stored.event  # type: ignore[assignment]
    run = state.executions.get(event.execution_id)
    if run is None or run.status != "assigned" or run.kernel_session != event.session_id:
        return
    run.status = "executing"
    run.started_at = stored.ts
    if event.execution_count is not None:
        run.execution_count = event.execution_count


def _execution_completed(state: NotebookState, stored: StoredEvent) -> None:
    event: ev.ExecutionCompleted = stored.event  # type: ignore[assignment]
    run = state.executions.get(event.execution_id)
    if run is None or run.kernel_session != event.session_id:
        return
    if run.status not in ("assigned", "executing"):
        return
    if event.execution_count is not None:
        run.execution_count = event.execution_count
    _finish(state, run, event.status, stored.ts)


def _execution_cancelled(state: NotebookState, stored: StoredEvent) -> None:
    event: ev.ExecutionCancelled = stored.event  # type: ignore[assignment]
    run = state.executions.get(event.execution_id)
    if run is None:
        return
    if run.status in ("pending", "assigned"):
        _finish(state, run, "cancelled", stored.ts)
    elif run.status == "executing":
        run.interrupt_requested = True  # the kernel stops it and completes it as cancelled


def _interrupt_requested(state: NotebookState, stored: StoredEvent) -> None:
    event: ev.InterruptRequested = stored.event  # type: ignore[assignment]
    run = state.executions.get(event.execution_id)
    if run is not None and run.status == "executing":
        run.interrupt_requested = True


def _restart_requested(state: NotebookState, stored: StoredEvent) -> None:
    event: ev.KernelRestartRequested = stored.event  # type: ignore[assignment]
    for session in state.live_kernels():
        if event.session_id is None or session.id == event.session_id:
            session.restart_requested = True


# --- outputs ------------------------------------------------------------------


def _output_added(state: NotebookState, stored: StoredEvent) -> None:
    event: ev.OutputAdded = stored.event  # type: ignore[assignment]
    run = _running_execution(state, event.execution_id)
    if run is not None:
        _take_pending_clear(run)
        run.outputs.append(event.output)


def _requirements_added(state: NotebookState, stored: StoredEvent) -> None:
    event: ev.RequirementsAdded = stored.event  # type: ignore[assignment]
    if _running_execution(state, event.execution_id) is None:
        return
    current = requirements.requirements_of(state.metadata)
    state.metadata = requirements.with_requirements(
        state.metadata, requirements.added(current, event.requirements)
    )


def _stream_appended(state: NotebookState, stored: StoredEvent) -> None:
    event: ev.StreamAppended = stored.event  # type: ignore[assignment]
    run = _running_execution(state, event.execution_id)
    if run is None or not event.text:
        return
    _take_pending_clear(run)
    last = run.outputs[-1] if run.outputs else None
    if last is not None and last["output_type"] == "stream" and last["name"] == event.stream:
        run.outputs[-1] = {**last, "text": last["text"] + event.text}
    else:
        run.outputs.append({"output_type": "stream", "name": event.stream, "text": event.text})


def _display_updated(state: NotebookState, stored: StoredEvent) -> None:
    """Like Jupyter: every shown output with that display id, in any cell, changes."""
    event: ev.DisplayUpdated = stored.event  # type: ignore[assignment]
    for cell in state.visible_cells():
        run = state.executions.get(cell.execution_id) if cell.execution_id else None
        if run is None:
            continue
        for index, output in enumerate(run.outputs):
            if display_id_of(output) == event.display_id:
                run.outputs[index] = {**output, "data": event.data, "metadata": event.metadata}


def _outputs_cleared(state: NotebookState, stored: StoredEvent) -> None:
    event: ev.OutputsCleared = stored.event  # type: ignore[assignment]
    run = _running_execution(state, event.execution_id)
    if run is None:
        return
    if event.wait:
        run.clear_pending = True
    else:
        run.outputs = []
        run.clear_pending = False


# --- kernels ------------------------------------------------------------------


def _session_started(state: NotebookState, stored: StoredEvent) -> None:
    event: ev.KernelSessionStarted = stored.event  # type: ignore[assignment]
    if event.session_id in state.kernels:
        return  # a session id is used once
    state.kernels[event.session_id] = KernelSession(
        id=event.session_id,
        host=event.host,
        lease_seconds=event.lease_seconds,
        label=event.label,
        actor=stored.actor,
        started_at=stored.ts,
    )


def _kernel_restarted(state: NotebookState, stored: StoredEvent) -> None:
    event: ev.KernelRestarted = stored.event  # type: ignore[assignment]
    session = state.kernels.get(event.session_id)
    if session is None or session.status != "live":
        return
    session.restart_requested = False
    session.restarts += 1
    for run in list(_unfinished(state)):
        if run.kernel_session == session.id and run.status == "executing":
            _lose(
                state, run, "KernelRestarted", "the kernel restarted while this cell ran", stored.ts
            )


def _session_ended(state: NotebookState, stored: StoredEvent) -> None:
    event: ev.KernelSessionEnded = stored.event  # type: ignore[assignment]
    _close_session(
        state, event.session_id, "ended", "the kernel shut down while this cell ran", stored.ts
    )


def _session_expired(state: NotebookState, stored: StoredEvent) -> None:
    event: ev.KernelSessionExpired = stored.event  # type: ignore[assignment]
    _close_session(
        state,
        event.session_id,
        "expired",
        "the kernel running this cell was lost (it stopped answering)",
        stored.ts,
    )


def _close_session(state: NotebookState, session_id: str, status: str, why: str, ts: float) -> None:
    session = state.kernels.get(session_id)
    if session is None or session.status != "live":
        return
    session.status = status  # type: ignore[assignment]
    session.ended_at = ts
    session.restart_requested = False
    for run in list(_unfinished(state)):
        if run.kernel_session != session_id:
            continue
        if run.status == "assigned":  # claimed, never started: someone else may run it
            run.status = "pending"
            run.kernel_session = None
            run.assigned_at = None
        elif run.status == "executing":
            _lose(state, run, "KernelLost", why, ts)


# --- helpers ------------------------------------------------------------------


def _live_cell(state: NotebookState, cell_id: str) -> Cell | None:
    cell = state.cells.get(cell_id)
    return None if cell is None or cell.deleted else cell


def _shown_execution(state: NotebookState, execution_id: str) -> Execution | None:
    """The execution if its outputs are still on screen (its cell's latest run)."""
    run = state.executions.get(execution_id)
    if run is None:
        return None
    cell = state.cells.get(run.cell_id)
    if cell is None or cell.deleted or cell.execution_id != execution_id:
        return None
    return run


def _running_execution(state: NotebookState, execution_id: str) -> Execution | None:
    """The execution if a kernel may still write its outputs: running, and shown."""
    run = _shown_execution(state, execution_id)
    return run if run is not None and run.status == "executing" else None


def _unfinished(state: NotebookState) -> Iterable[Execution]:
    return [state.executions[eid] for eid in state.queue]


def _finish(state: NotebookState, run: Execution, status: str, ts: float) -> None:
    run.status = status  # type: ignore[assignment]
    run.completed_at = ts
    run.clear_pending = False
    if run.id in state.queue:
        state.queue.remove(run.id)


def _lose(state: NotebookState, run: Execution, ename: str, why: str, ts: float) -> None:
    run.reason = why
    if _shown_execution(state, run.id) is not None:
        run.outputs.append(
            {
                "output_type": "error",
                "ename": ename,
                "evalue": why,
                "traceback": [f"{ename}: {why}"],
            }
        )
    _finish(state, run, "error", ts)


def _take_pending_clear(run: Execution) -> None:
    if run.clear_pending:
        run.outputs = []
        run.clear_pending = False


def _insert_after(order: list[str], cell_id: str, after: str | None) -> None:
    """Right after ``after`` (first when ``None``; last when ``after`` is unknown).

    A cell added after the last one (the common case: a person adding at the
    bottom, an import, a paste) costs nothing however long the notebook;
    anywhere else, one scan of the order.
    """
    if after is None:
        order.insert(0, cell_id)
    elif order and order[-1] == after:
        order.append(cell_id)
    else:
        try:
            order.insert(order.index(after) + 1, cell_id)
        except ValueError:
            order.append(cell_id)


def _set_key(mapping: dict, key: str, value: object) -> None:
    if value is None:
        mapping.pop(key, None)
    else:
        mapping[key] = value


_HANDLERS: dict[type, Handler] = {
    ev.NotebookInitialized: _notebook_initialized,
    ev.NotebookTitleChanged: _title_changed,
    ev.NotebookMetadataSet: _metadata_set,
    ev.RequirementRemoved: _requirement_removed,
    ev.CellCreated: _cell_created,
    ev.CellImported: _cell_imported,
    ev.CellSourceEdited: _cell_source_edited,
    ev.CellTypeChanged: _cell_type_changed,
    ev.CellMoved: _cell_moved,
    ev.CellDeleted: _cell_deleted,
    ev.CellMetadataSet: _cell_metadata_set,
    ev.CellOutputsCleared: _cell_outputs_cleared,
    ev.ExecutionRequested: _execution_requested,
    ev.ExecutionAssigned: _execution_assigned,
    ev.ExecutionStarted: _execution_started,
    ev.ExecutionCompleted: _execution_completed,
    ev.ExecutionCancelled: _execution_cancelled,
    ev.InterruptRequested: _interrupt_requested,
    ev.KernelRestartRequested: _restart_requested,
    ev.OutputAdded: _output_added,
    ev.RequirementsAdded: _requirements_added,
    ev.StreamAppended: _stream_appended,
    ev.DisplayUpdated: _display_updated,
    ev.OutputsCleared: _outputs_cleared,
    ev.KernelSessionStarted: _session_started,
    ev.KernelRestarted: _kernel_restarted,
    ev.KernelSessionEnded: _session_ended,
    ev.KernelSessionExpired: _session_expired,
}

missing = set(ev.REGISTRY.values()) - set(_HANDLERS)
if missing:  # pragma: no cover - a registry/handler mismatch is a bug caught at import
    raise RuntimeError(f"no fold rule for {sorted(cls.name for cls in missing)}")
del missing
