"""The folded state of one notebook, and its two JSON forms.

``public()`` is what the snapshot endpoint serves and what a UI renders:
cells in notebook order with their outputs and latest execution.
``dump()``/``load()`` is the internal form (edit histories, tombstones) that
the relay stores as a snapshot so folding can resume from it. It holds
everything a fold rule or ``public()`` can still read, and no more.

Mutation happens only in ``materializer``; everything here is data.
Output dicts and op lists are never mutated in place once stored, so
``copy()`` can share them.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from typing import Any, Literal

from .ids import CellId, ExecutionId, SessionId
from .ot import TextOps

ExecutionStatus = Literal["pending", "assigned", "executing", "ok", "error", "cancelled"]
SessionStatus = Literal["live", "ended", "expired"]

TERMINAL: frozenset[str] = frozenset({"ok", "error", "cancelled"})

#: Bumped when ``dump()``'s shape changes; ``load()`` refuses other versions
#: and the relay then refolds from the log instead.
#: 2: deleted cells and finished executions that no cell shows any more are
#: stored as tombstones (arrays) instead of whole records (objects).
#: 3: sources hold only ``\n`` line endings (a format-2 dump may hold ``\r``).
STATE_FORMAT = 3


@dataclass(slots=True)
class Cell:
    id: CellId
    cell_type: str
    source: str
    rev: int = 0
    metadata: dict[str, Any] = field(default_factory=dict)
    #: ``history[r]`` is the edit, as applied, that took revision r to r+1.
    history: list[TextOps] = field(default_factory=list)
    deleted: bool = False
    execution_id: str | None = None
    created_by: str = ""
    #: A markdown or raw cell's ``attachments``: name -> MIME bundle (``attachment:name``).
    attachments: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: Outputs an imported cell brought, shown until it first runs here.
    imported_outputs: list[dict[str, Any]] = field(default_factory=list)
    imported_count: int | None = None

    def copy(self) -> Cell:
        return replace(self, metadata=dict(self.metadata), history=list(self.history))

    def imported(self) -> dict[str, Any] | None:
        """``{"execution_count": N}`` while the cell shows outputs it was imported
        with (it has not run here since); None otherwise."""
        if self.execution_id is None and (self.imported_outputs or self.imported_count is not None):
            return {"execution_count": self.imported_count}
        return None


@dataclass(slots=True)
class Execution:
    id: ExecutionId
    cell_id: CellId
    source: str
    status: ExecutionStatus = "pending"
    kernel_session: str | None = None
    execution_count: int | None = None
    requested_by: str = ""
    requested_at: float = 0.0
    assigned_at: float | None = None
    started_at: float | None = None
    completed_at: float | None = None
    interrupt_requested: bool = False
    #: Why the execution ended without its kernel saying so (kernel lost, ...).
    reason: str | None = None
    outputs: list[dict[str, Any]] = field(default_factory=list)
    #: ``clear_output(wait=True)`` was called: clear when the next output lands.
    clear_pending: bool = False
    #: ``"tab"``: asked to run in its requester's own tab (``executionRequested.runner``).
    runner: str | None = None

    def copy(self) -> Execution:
        return replace(self, outputs=list(self.outputs))

    def claimable_by(self, session: KernelSession) -> bool:
        """Whether a claim of this execution by ``session`` may count (when it is pending).

        A tab kernel runs only what its own person asked to run in a tab: a
        colleague's code never runs in my tab without my action. Every other
        kernel runs only what was not asked of a tab, so nothing asked of a
        tab (offline, say) also runs on a server.
        """
        if session.host == "tab":
            return self.runner == "tab" and self.requested_by == session.actor
        return self.runner is None

    def public(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "cell_id": self.cell_id,
            "status": self.status,
            "kernel_session": self.kernel_session,
            "execution_count": self.execution_count,
            "source": self.source,
            "requested_by": self.requested_by,
            "requested_at": self.requested_at,
            "assigned_at": self.assigned_at,
            "started_at": self.started_at,
            "completed_at": self.completed_at,
            "interrupt_requested": self.interrupt_requested,
            "reason": self.reason,
            "runner": self.runner,
        }


@dataclass(slots=True)
class KernelSession:
    id: SessionId
    host: str
    lease_seconds: float
    label: str = ""
    actor: str = ""
    status: SessionStatus = "live"
    started_at: float = 0.0
    ended_at: float | None = None
    restart_requested: bool = False
    restarts: int = 0

    def copy(self) -> KernelSession:
        return replace(self)

    def public(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in _field_names(KernelSession)}


@dataclass(slots=True)
class NotebookState:
    seq: int = 0
    title: str = ""
    metadata: dict[str, Any] = field(default_factory=dict)
    created_at: float | None = None
    updated_at: float | None = None
    #: Cell ids in notebook order, deleted ones included (as anchors for ``after``).
    order: list[str] = field(default_factory=list)
    cells: dict[str, Cell] = field(default_factory=dict)
    executions: dict[str, Execution] = field(default_factory=dict)
    #: Executions not yet finished, in the order they were requested.
    queue: list[str] = field(default_factory=list)
    kernels: dict[str, KernelSession] = field(default_factory=dict)
    #: Cells not deleted (kept by the fold, so counting them costs nothing; not dumped).
    live_cells: int = 0

    def copy(self) -> NotebookState:
        """A copy that shares nothing mutable with this state."""
        return replace(
            self,
            metadata=dict(self.metadata),
            order=list(self.order),
            cells={key: cell.copy() for key, cell in self.cells.items()},
            executions={key: run.copy() for key, run in self.executions.items()},
            queue=list(self.queue),
            kernels={key: session.copy() for key, session in self.kernels.items()},
        )

    # --- reading ------------------------------------------------------------

    def visible_cells(self) -> list[Cell]:
        """Live cells in notebook order."""
        return [self.cells[cid] for cid in self.order if not self.cells[cid].deleted]

    def pending(self) -> list[Execution]:
        """Executions waiting for a kernel, oldest request first."""
        return [
            self.executions[eid] for eid in self.queue if self.executions[eid].status == "pending"
        ]

    def live_kernels(self) -> list[KernelSession]:
        return [session for session in self.kernels.values() if session.status == "live"]

    def public(self) -> dict[str, Any]:
        """The snapshot shape: cells in order, each with outputs and latest execution."""
        cells = []
        for cell in self.visible_cells():
            run = self.executions.get(cell.execution_id) if cell.execution_id else None
            cells.append(
                {
                    "id": cell.id,
                    "cell_type": cell.cell_type,
                    "source": cell.source,
                    "rev": cell.rev,
                    "metadata": cell.metadata,
                    "attachments": cell.attachments,
                    "outputs": list(run.outputs if run else cell.imported_outputs),
                    "execution": run.public() if run else None,
                    "imported": cell.imported(),
                }
            )
        return {
            "title": self.title,
            "metadata": self.metadata,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "cells": cells,
            "queue": [self.executions[eid].public() for eid in self.queue],
            "kernels": [session.public() for session in self.kernels.values()],
        }

    # --- the internal form --------------------------------------------------

    def dump(self) -> dict[str, Any]:
        """The internal form, as JSON-ready data that shares no mutable container
        with this state, so it can be encoded while the state moves on.

        Two kinds of entry are stored as tombstones (arrays), because nothing
        can read more of them again: a deleted cell keeps only its id (ids are
        never reused), and a finished execution that is not its live cell's
        latest run keeps its id, cell, status and end time (every later event
        about it is a no-op, and ``public()`` shows only latest runs and the
        queue). Edit histories stay whole: a late edit may be based on any
        revision.
        """
        return {
            "format": STATE_FORMAT,
            "seq": self.seq,
            "title": self.title,
            "metadata": dict(self.metadata),
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "order": list(self.order),
            "cells": [_dump_cell(cell) for cell in self.cells.values()],
            "executions": [self._dump_execution(run) for run in self.executions.values()],
            "queue": list(self.queue),
            "kernels": [_as_dict(session) for session in self.kernels.values()],
        }

    @classmethod
    def load(cls, data: dict[str, Any]) -> NotebookState:
        if data.get("format") != STATE_FORMAT:
            raise ValueError(f"state format {data.get('format')!r} is not {STATE_FORMAT}")
        cells = [_load_cell(item) for item in data["cells"]]
        executions = [_load_execution(item) for item in data["executions"]]
        return cls(
            seq=data["seq"],
            title=data["title"],
            metadata=data["metadata"],
            created_at=data["created_at"],
            updated_at=data["updated_at"],
            order=data["order"],
            cells={cell.id: cell for cell in cells},
            executions={run.id: run for run in executions},
            queue=data["queue"],
            kernels={item["id"]: KernelSession(**item) for item in data["kernels"]},
            live_cells=sum(1 for cell in cells if not cell.deleted),
        )

    def _dump_execution(self, run: Execution) -> dict[str, Any] | list[Any]:
        cell = self.cells[run.cell_id]
        shown = not cell.deleted and cell.execution_id == run.id
        if run.status in TERMINAL and not shown:
            return [run.id, run.cell_id, run.status, run.completed_at]
        return {**_as_dict(run), "outputs": list(run.outputs)}


def _dump_cell(cell: Cell) -> dict[str, Any] | list[Any]:
    if cell.deleted:
        return [cell.id]
    return {
        **_as_dict(cell),
        "metadata": dict(cell.metadata),
        "history": list(cell.history),
        "attachments": dict(cell.attachments),
        "imported_outputs": list(cell.imported_outputs),
    }


def _load_cell(item: dict[str, Any] | list[Any]) -> Cell:
    if isinstance(item, list):
        return Cell(id=item[0], cell_type="code", source="", deleted=True)
    return Cell(**item)


def _load_execution(item: dict[str, Any] | list[Any]) -> Execution:
    if isinstance(item, list):
        run_id, cell_id, status, completed_at = item
        return Execution(
            id=run_id, cell_id=cell_id, source="", status=status, completed_at=completed_at
        )
    return Execution(**item)


def _field_names(cls: type) -> list[str]:
    return [f.name for f in fields(cls)]


def _as_dict(item: Any) -> dict[str, Any]:
    return {name: getattr(item, name) for name in _field_names(type(item))}
