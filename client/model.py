"""One notebook as this browser sees it: ``fold(confirmed) + replay(pending)``.

The relay's log is the truth. This module keeps three things beside it:

* ``confirmed``: the state folded from every event the log has served us,
  in seq order, with ``shared_schema``'s materializer;
* ``pending``: events this browser made that the log has not served back
  yet, in the order they were made (pushed, or waiting to be);
* one ``CellEditBuffer`` per cell being edited: the edit in flight (one of
  the pending events) and the keystrokes buffered behind it.

What the page shows is ``confirmed`` with ``pending`` replayed on top and
each buffer's text laid over its cell. When a confirmed event arrives the
view is simply recomputed; that is the whole of "rebase" (DESIGN.md).

Pure Python (no ``js``): it is driven the same way in CPython tests and in
the page. Everything the page must write to IndexedDB is collected as a
``LocalChanges`` the caller hands to ``client.store``.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from shared_schema import events as ev
from shared_schema import ot
from shared_schema.editing import CellEditBuffer
from shared_schema.envelope import PushedEvent, stored, stored_from_json
from shared_schema.errors import SchemaError
from shared_schema.ids import CellId, EventId, ExecutionId
from shared_schema.ipynb import ImportPlan
from shared_schema.materializer import advance
from shared_schema.state import NotebookState

log = logging.getLogger("anode.client")

#: A stored snapshot is written once the log has moved this far past the last one.
SNAPSHOT_EVERY = 500

#: The actor shown for our own unconfirmed events (the relay sets the real one).
LOCAL_ACTOR = "you"

#: Several tabs of one browser share IndexedDB. Each tab has a number (1..2**20-1,
#: ``client.tabs``) and keys its pending events ``tab * TAB_SPAN + n`` and its drafts
#: with its number, so tabs never overwrite each other's records; a tab adopts
#: only the records of tabs that are gone. Keys below ``TAB_SPAN`` are from
#: before tabs had numbers and belong to no live tab. (2**52 stays exact in a JS number.)
TAB_SPAN = 2**32


def key_owner(key: int) -> int:
    """The tab number a pending key belongs to (0: no tab)."""
    return key // TAB_SPAN


PushedJson = dict[str, Any]
StoredJson = dict[str, Any]
TextOpsJson = list[Any]


class Gap(Exception):
    """The log served an event past the one we expected: resume from our seq."""


def new_id() -> str:
    """A fresh id for an event, a cell or an execution (fits shared_schema's pattern)."""
    return os.urandom(
        16
    ).hex()  # what uuid4().hex is made of, without importing uuid (slow in Pyodide)


@dataclass
class Saved:
    """What IndexedDB holds for one notebook, as ``client.store`` loads it."""

    snapshot: dict[str, Any] | None = None  # ``NotebookState.dump()``
    confirmed: list[StoredJson] = field(default_factory=list)  # after the snapshot, in seq order
    pending: list[tuple[int, PushedJson]] = field(default_factory=list)  # (key, event), in order
    drafts: dict[str, TextOpsJson] = field(default_factory=dict)  # cell id -> buffered ops
    #: Drafts of other tabs (that are gone, or not: ``restore`` decides): (tab, cell id, ops).
    other_drafts: list[tuple[int, str, TextOpsJson]] = field(default_factory=list)
    #: Ids of stored confirmed events, when a gone tab left pending events: one may be in the log
    #: already.
    confirmed_ids: set[str] = field(default_factory=set)


@dataclass
class LocalChanges:
    """Writes for IndexedDB since the last ``take_changes``, applied in one transaction."""

    confirmed: list[StoredJson] = field(default_factory=list)
    pending_put: list[tuple[int, PushedJson]] = field(default_factory=list)
    pending_delete: list[int] = field(default_factory=list)
    #: cell id -> buffered ops, or ``None`` to forget the cell's draft.
    drafts: dict[str, TextOpsJson | None] = field(default_factory=dict)
    #: ``NotebookState.dump()``, or that already as JSON text.
    snapshot: dict[str, Any] | str | None = None
    #: Drafts adopted from a tab that is gone: (tab, cell id) records to delete.
    drafts_delete: list[tuple[int, str]] = field(default_factory=list)

    def __bool__(self) -> bool:
        return (
            bool(
                self.confirmed
                or self.pending_put
                or self.pending_delete
                or self.drafts
                or self.drafts_delete
            )
            or self.snapshot is not None
        )


@dataclass
class Received:
    """What one batch of confirmed events did, for the editors."""

    #: cell id -> ops to apply, in order, to what its editor shows.
    remote_edits: dict[str, list[ot.TextOps]] = field(default_factory=dict)
    #: cells whose buffer had to be reset to the log's text (show it whole).
    reset: set[str] = field(default_factory=set)


class NotebookModel:
    """The local view of one notebook, and the commands a person gives it."""

    def __init__(
        self, notebook_id: str, *, make_id: Callable[[], str] = new_id, tab: int = 0
    ) -> None:
        self.notebook_id = notebook_id
        #: This tab's number: its pending keys are ``tab * TAB_SPAN + n``.
        self.tab = tab
        self.confirmed = NotebookState()
        self.pending: list[tuple[int, PushedJson]] = []
        self.buffers: dict[str, CellEditBuffer] = {}
        self._make_id = make_id
        #: cell id -> id of its edit in flight (a pending ``cellSourceEdited``).
        self._in_flight: dict[str, str] = {}
        self._next_key = tab * TAB_SPAN + 1
        self._snapshot_seq = 0
        self._changes = LocalChanges()
        self._view: NotebookState | None = None
        #: Who this page's person is in the log (``/api/whoami``), for our own unconfirmed
        #: events: a tab kernel's claim counts only for its own person's requests.
        self.actor = LOCAL_ACTOR

    # --- loading -----------------------------------------------------------------

    @classmethod
    def restore(
        cls,
        notebook_id: str,
        saved: Saved,
        *,
        live_tabs: frozenset[int] = frozenset(),
        **kwargs: Any,
    ) -> NotebookModel:
        """Rebuild the model from IndexedDB: snapshot, later events, pending, drafts.

        Records of this tab (``tab=``) are ours; those of a tab in ``live_tabs``
        stay that tab's (it pushes them); the rest were left by a tab that is
        gone, and are adopted: re-keyed as ours, after ours, in their order.
        """
        model = cls(notebook_id, **kwargs)
        readable = _readable(saved)
        # What was dropped is deleted from the store too (what has no usable key is overwritten).
        model._changes.pending_delete += [
            key for key, event in saved.pending if type(key) is int and not _is_pushed(event)
        ]
        for cell_id in saved.drafts.keys() - readable.drafts.keys():
            if isinstance(cell_id, str):
                model._changes.drafts[cell_id] = None
        saved = readable
        if saved.snapshot is not None:
            try:
                model.confirmed = NotebookState.load(saved.snapshot)
                model._snapshot_seq = model.confirmed.seq
            except (ValueError, KeyError, TypeError):
                log.warning("stored snapshot unreadable; refolding from the stored events")
        for raw in saved.confirmed:
            if raw["seq"] != model.confirmed.seq + 1:
                continue
            try:
                advance(model.confirmed, stored_from_json(raw))
            except (SchemaError, KeyError, TypeError, ValueError):
                log.warning("stored event %s unreadable; the rest comes from the relay", raw["seq"])
                break
        own = [(key, event) for key, event in saved.pending if key_owner(key) == model.tab]
        orphans = [
            (key, event) for key, event in saved.pending
            if key_owner(key) != model.tab and key_owner(key) not in live_tabs
        ]  # fmt: skip
        model.pending = sorted(own)
        model._next_key = max((key for key, _ in own), default=model.tab * TAB_SPAN) + 1
        for key, event in sorted(orphans):
            model._changes.pending_delete.append(key)
            # Unless the log has it: the gone tab died before it knew.
            if event["id"] not in saved.confirmed_ids:
                model._put_pending(event)
        drafts = dict(saved.drafts)
        for tab, cell_id, ops in saved.other_drafts:
            if tab == model.tab or tab in live_tabs:
                continue
            model._changes.drafts_delete.append((tab, cell_id))
            if cell_id not in drafts:  # one draft per cell: ours first, else the first left behind
                drafts[cell_id] = ops
                model._changes.drafts[cell_id] = ops
        model._restore_buffers(drafts)
        return model

    def start_from(self, dump: dict[str, Any]) -> None:
        """Take the relay's state (``/snapshot?form=internal``) as the confirmed log so far.

        Opening a notebook this browser holds nothing of, that is one request
        instead of the whole log. Only for a model with nothing confirmed or
        pending: a pending event inside the snapshot would never come back on
        the stream to be recognised (``pushed`` catches that case anyway).
        Raises ``ValueError`` for a dump this materializer cannot load.
        """
        if self.confirmed.seq or self.pending:
            raise ValueError("start_from needs an empty model")
        try:
            state = NotebookState.load(dump)
        except (KeyError, TypeError, AttributeError) as error:
            raise ValueError(f"not a state dump: {error!r}") from error
        self.confirmed = state
        self._snapshot_seq = state.seq
        self._changes.snapshot = dump
        self._view = None

    def _restore_buffers(self, drafts: dict[str, TextOpsJson]) -> None:
        for _, event in self.pending:
            if event["name"] != "cellSourceEdited":
                continue
            cell_id = event["args"]["cell_id"]
            buffer = self._base_buffer(cell_id)
            if buffer is None:
                continue
            try:
                ops = event["args"]["ops"]
                history = self._history(cell_id)
                for landed in history[event["args"]["base_rev"] :]:
                    _, ops = ot.transform(landed, ops)
                buffer.edit(ops)
            except (ot.OTError, KeyError, TypeError, ValueError):
                log.warning("pending edit of cell %s no longer applies; dropped", cell_id)
                self._remove_pending(event["id"])
                continue
            buffer.take_outgoing()
            self.buffers[cell_id] = buffer
            self._in_flight[cell_id] = event["id"]
        for cell_id, ops in drafts.items():
            buffer = self.buffers.get(cell_id) or self._base_buffer(cell_id)
            if buffer is None:
                continue
            try:
                buffer.edit(ops)
            except (ot.OTError, TypeError, ValueError):
                log.warning("stored draft of cell %s no longer applies; dropped", cell_id)
                self._changes.drafts[cell_id] = None
                continue
            self.buffers[cell_id] = buffer

    # --- reading -----------------------------------------------------------------

    def state(self) -> NotebookState:
        """What to show: confirmed, pending replayed, each buffer's text laid over.

        Cached until something changes what it shows. Typing does not: a sent
        batch of keystrokes and its echo from the log leave the cached view as
        it was (only the edited cells' ``rev`` and ``updated_at`` lag, which no
        screen shows), so a keystroke costs no copy of the notebook.
        """
        if self._view is None:
            view = self.confirmed.copy()
            seq = view.seq
            now = time.time()
            for _, raw in self.pending:
                try:
                    event = ev.decode(raw["name"], raw["v"], raw["args"])
                except SchemaError:
                    continue
                seq += 1
                advance(view, stored(seq, raw["id"], event, self.actor, now))
            view.seq = self.confirmed.seq
            for cell_id, buffer in self.buffers.items():
                cell = view.cells.get(cell_id)
                if cell is not None:
                    cell.source = buffer.text
            self._view = view
        return self._view

    def text(self, cell_id: CellId) -> str:
        """The source an editor for this cell shows (creating its buffer)."""
        buffer = self.buffer(cell_id)
        return buffer.text if buffer is not None else ""

    def unsynced(self) -> int:
        """Events waiting for the log, counting each cell's buffered keystrokes as one."""
        return len(self.pending) + sum(1 for b in self.buffers.values() if b.buffered)

    def pending_events(self) -> list[PushedJson]:
        return [event for _, event in self.pending]

    # --- the log comes in ---------------------------------------------------------

    def receive(self, events: list[StoredJson]) -> Received:
        """Fold confirmed events (in seq order) and rebase what is local over them.

        Raises ``Gap`` if an event skips past the next seq; events at or
        below our seq are repeats and are ignored.
        """
        result = Received()
        own = {event["id"]: key for key, event in self.pending}
        view_holds = self._view is not None  # while only our own edits come back as sent
        for raw in events:
            seq = raw["seq"]
            if seq <= self.confirmed.seq:
                continue
            if seq != self.confirmed.seq + 1:
                self._view = None  # what this batch folded before the gap is confirmed already
                raise Gap(f"expected seq {self.confirmed.seq + 1}, got {seq}")
            event = stored_from_json(raw)
            cell_id = raw["args"].get("cell_id") if isinstance(raw.get("args"), dict) else None
            rev_before = self._confirmed_rev(cell_id) if cell_id else None
            advance(self.confirmed, event)
            self._changes.confirmed.append(raw)
            first_pending = self.pending[0][1]["id"] if self.pending else None
            if raw["id"] in own:
                self.pending = [(k, e) for k, e in self.pending if e["id"] != raw["id"]]
                self._changes.pending_delete.append(own.pop(raw["id"]))
            if raw["name"] == "cellSourceEdited" and cell_id is not None:
                as_sent = self._rebase_buffer(cell_id, raw["id"], rev_before, result)
                view_holds = view_holds and as_sent and raw["id"] == first_pending
            else:
                view_holds = False
                if raw["name"] == "cellDeleted" and cell_id is not None:
                    self._forget_buffer(cell_id)
        if self.confirmed.seq - self._snapshot_seq >= SNAPSHOT_EVERY:
            self._changes.snapshot = self.confirmed.dump()
            self._snapshot_seq = self.confirmed.seq
        if view_holds and self._view is not None:
            # What is shown is what it was: the edits were already replayed, as they landed.
            self._view.seq = self.confirmed.seq
        else:
            self._view = None
        return result

    def _rebase_buffer(
        self, cell_id: CellId, event_id: str, rev_before: int | None, result: Received
    ) -> bool:
        """Bring the cell's buffer over a confirmed edit; True if it was our in-flight edit, landed
        as sent."""
        buffer = self.buffers.get(cell_id)
        cell = self.confirmed.cells.get(cell_id)
        if buffer is None or cell is None or cell.deleted:
            return False
        landed = rev_before is not None and cell.rev == rev_before + 1
        if self._in_flight.get(cell_id) == event_id:
            del self._in_flight[cell_id]
            if landed:
                buffer.confirm_own()
                if buffer.confirmed_text == cell.source:
                    return True
            # Our edit did not land as sent: take the log's text.
            self._reset_buffer(cell_id, result)
            return False
        if not landed:
            return False  # someone's edit that the log turned into a no-op
        if buffer.confirmed_rev != rev_before:
            self._reset_buffer(cell_id, result)
            return False
        try:
            shown = buffer.apply_remote(cell.history[-1])
        except ot.OTError:
            self._reset_buffer(cell_id, result)
            return False
        result.remote_edits.setdefault(cell_id, []).append(shown)
        self._changes.drafts[cell_id] = buffer.buffered
        return False

    def _reset_buffer(self, cell_id: CellId, result: Received) -> None:
        cell = self.confirmed.cells[cell_id]
        log.warning("cell %s: local edits no longer fit the log; showing the log's text", cell_id)
        self.buffers[cell_id] = CellEditBuffer(cell.source, cell.rev)
        self._in_flight.pop(cell_id, None)
        self._changes.drafts[cell_id] = None
        result.reset.add(cell_id)

    def reject(self, event_id: str) -> set[str]:
        """The relay refused one of our events (4xx): it will never be in the log.

        Returns the cells whose editor must show the log's text again.
        """
        reset = self._drop_in_flight(event_id)
        self._remove_pending(event_id)
        return reset

    def pushed(self, seqs: dict[str, int]) -> set[str] | None:
        """The relay holds these events of ours at these seqs (a push's answer).

        One at or below our seq that is still pending was folded without our
        seeing it come back: we started from a snapshot that holds it (a tab
        that died before its events came back, adopted by this one). It is in
        ``confirmed`` already; replaying it again would apply it twice. Returns
        ``None`` if nothing was dropped, else the cells whose editor must show
        the log's text again.
        """
        waiting = {event["id"] for _, event in self.pending}
        folded = [
            event_id
            for event_id, seq in seqs.items()
            if event_id in waiting and seq <= self.confirmed.seq
        ]
        if not folded:
            return None
        reset: set[str] = set()
        for event_id in folded:
            log.info("event %s is in the log already; no longer pending", event_id)
            reset |= self._drop_in_flight(event_id)
            self._remove_pending(event_id)
        return reset

    def _drop_in_flight(self, event_id: str) -> set[str]:
        """Forget ``event_id`` as a cell's edit in flight: the buffer starts again from the log's
        text."""
        reset: set[str] = set()
        for cell_id, in_flight in list(self._in_flight.items()):
            if in_flight == event_id:
                cell = self.confirmed.cells.get(cell_id)
                del self._in_flight[cell_id]
                if cell is not None and not cell.deleted:
                    self.buffers[cell_id] = CellEditBuffer(cell.source, cell.rev)
                    reset.add(cell_id)
                else:
                    self.buffers.pop(cell_id, None)
                self._changes.drafts[cell_id] = None
        return reset

    # --- commands -------------------------------------------------------------------

    def create_cell(
        self, after: CellId | None, cell_type: str = "code", source: str = ""
    ) -> CellId:
        cell_id = CellId(self._make_id())
        self._add(ev.CellCreated(cell_id=cell_id, cell_type=cell_type, after=after, source=source))
        return cell_id

    def delete_cell(self, cell_id: CellId) -> None:
        self._add(ev.CellDeleted(cell_id=cell_id))

    def move_cell(self, cell_id: CellId, after: CellId | None) -> None:
        self._add(ev.CellMoved(cell_id=cell_id, after=after))

    def change_type(self, cell_id: CellId, cell_type: str) -> None:
        self._add(ev.CellTypeChanged(cell_id=cell_id, cell_type=cell_type))

    def set_title(self, title: str) -> None:
        self._add(ev.NotebookTitleChanged(title=title))

    def import_plan(self, plan: ImportPlan) -> None:
        """Fill this (new, local) notebook with an ``.ipynb``'s title, metadata and cells."""
        self.set_title(plan.title)
        for event in plan.events():
            self._add(event)

    def remove_requirement(self, package: str) -> None:
        self._add(ev.RequirementRemoved(package=package))

    def clear_outputs(self, cell_id: CellId | None) -> None:
        self._add(ev.CellOutputsCleared(cell_id=cell_id))

    def edit(self, cell_id: CellId, ops: ot.TextOps) -> None:
        """A local change to what the cell's editor showed (``self.text(cell_id)``)."""
        buffer = self.buffer(cell_id)
        if buffer is None:
            raise KeyError(f"no cell {cell_id}")
        buffer.edit(ops)
        self._changes.drafts[cell_id] = buffer.buffered
        if self._view is not None:  # only this cell's text changed: no need to replay the log
            cell = self._view.cells.get(cell_id)
            if cell is not None:
                cell.source = buffer.text
            else:
                self._view = None

    def run(self, cell_id: CellId, runner: str | None = None) -> ExecutionId | None:
        """Ask for an execution of what is on screen; ``None`` for a non-code cell.

        ``runner="tab"``: in this person's own tab kernel (``executionRequested.runner``).
        """
        cell = self.state().cells.get(cell_id)
        if cell is None or cell.deleted or cell.cell_type != "code":
            return None
        execution_id = ExecutionId(self._make_id())
        self.take_edits()
        self._add(
            ev.ExecutionRequested(
                execution_id=execution_id,
                cell_id=cell_id,
                source=self.text(cell_id),
                runner=runner,
            )
        )
        return execution_id

    def kernel_refusal(self, events: Any, session_id: str) -> str | None:
        """Why this tab's kernel (session ``session_id``) may not write ``events``; None: it may.

        A cell's code runs in that kernel's worker and can post the page anything, so
        only its own session's kernel events pass: about its session, or about a run it
        holds (or claims in these same events).
        """
        if not isinstance(events, list) or not events:
            return "a push is a non-empty list of events"
        state = self.state()
        claimed: set[str] = set()
        for raw in events:
            try:
                event = ev.decode(raw.get("name"), raw.get("v"), raw.get("args"))
            except (SchemaError, AttributeError) as error:
                return f"not an event: {error}"
            if not isinstance(raw.get("id"), str) or event.writer != "kernel":
                return f"a tab kernel does not write {event.name}"
            session = getattr(event, "session_id", None)
            if session is not None and session != session_id:
                return f"{event.name} names another kernel's session"
            if isinstance(event, ev.ExecutionAssigned):
                claimed.add(event.execution_id)
            execution = getattr(event, "execution_id", None)
            if session is None and execution is not None and execution not in claimed:
                run = state.executions.get(execution)
                if run is None or run.kernel_session != session_id:
                    return f"{event.name} is about an execution this kernel does not hold"
        return None

    def add_kernel_events(self, events: list[PushedJson]) -> None:
        """This tab's kernel's events (``kernel_refusal`` found nothing): pending, like edits."""
        for raw in events:
            self._put_pending({key: raw[key] for key in ("id", "name", "v", "args")})
        self._view = None

    def drop_lost_run(self, event_id: str) -> ExecutionId | None:
        """The relay refused ``event_id`` as not ours to write (``not_your_session``). If it
        is this tab's kernel's event about a run, that run lost: another kernel's claim
        landed first (this tab was offline, or another tab of this person claimed it too).
        Every pending kernel event of that run goes (each would be refused in turn), so the
        run shows as the log has it; returns its id (None: not a kernel's run)."""
        raw = next((event for _, event in self.pending if event["id"] == event_id), None)
        try:
            event = ev.decode(raw["name"], raw["v"], raw["args"]) if raw else None
        except SchemaError:
            event = None
        run = getattr(event, "execution_id", None)
        if event is None or event.writer != "kernel" or run is None:
            return None
        for _, pending in list(self.pending):
            kind = ev.REGISTRY.get(pending["name"])
            by_kernel = kind is not None and kind.writer == "kernel"
            if by_kernel and _args(pending).get("execution_id") == run:
                self._remove_pending(pending["id"])
        return run

    def set_actor(self, actor: str) -> None:
        if actor and actor != self.actor:
            self.actor = actor
            self._view = None

    def interrupt(self, execution_id: ExecutionId) -> None:
        self._add(ev.InterruptRequested(execution_id=execution_id))

    def cancel(self, execution_id: ExecutionId) -> None:
        self._add(ev.ExecutionCancelled(execution_id=execution_id))

    def restart_kernels(self) -> None:
        self._add(ev.KernelRestartRequested(session_id=None))

    def has_edit_in_flight(self, cell_id: str) -> bool:
        """Whether an edit of this cell was sent (pending) and is not confirmed yet."""
        return cell_id in self._in_flight

    def take_edits(self) -> bool:
        """Turn each cell's buffered keystrokes into a pending edit, where one may go."""
        added = False
        for cell_id, buffer in self.buffers.items():
            outgoing = buffer.take_outgoing()
            if outgoing is None:
                continue
            base_rev, ops = outgoing
            # What is shown does not change: the buffer's text is laid over the cell already.
            edit = ev.CellSourceEdited(cell_id=cell_id, base_rev=base_rev, ops=ops)
            event_id = self._add(edit, keep_view=True)
            self._in_flight[cell_id] = event_id
            self._changes.drafts[cell_id] = None
            added = True
        return added

    def take_changes(self) -> LocalChanges:
        """Everything to write to IndexedDB since the last call."""
        changes, self._changes = self._changes, LocalChanges()
        return changes

    # --- buffers -------------------------------------------------------------------

    def buffer(self, cell_id: CellId) -> CellEditBuffer | None:
        buffer = self.buffers.get(cell_id)
        if buffer is None:
            buffer = self._base_buffer(cell_id)
            if buffer is not None:
                self.buffers[cell_id] = buffer
        return buffer

    def _base_buffer(self, cell_id: CellId) -> CellEditBuffer | None:
        """A buffer at the cell's confirmed text, or its creation text if not yet confirmed."""
        cell = self.confirmed.cells.get(cell_id)
        if cell is not None:
            return None if cell.deleted else CellEditBuffer(cell.source, cell.rev)
        for _, event in self.pending:
            if event["name"] == "cellCreated" and event["args"]["cell_id"] == cell_id:
                return CellEditBuffer(event["args"].get("source", ""), 0)
        return None

    def _forget_buffer(self, cell_id: CellId) -> None:
        self.buffers.pop(cell_id, None)
        self._in_flight.pop(cell_id, None)
        self._changes.drafts[cell_id] = None

    def _history(self, cell_id: CellId) -> list[ot.TextOps]:
        cell = self.confirmed.cells.get(cell_id)
        return cell.history if cell is not None else []

    def _confirmed_rev(self, cell_id: CellId) -> int | None:
        cell = self.confirmed.cells.get(cell_id)
        return cell.rev if cell is not None else None

    # --- pending -------------------------------------------------------------------

    def _add(self, event: ev.Event, keep_view: bool = False) -> str:
        """Check a new event as the relay will, queue it as pending, and return its id."""
        ev.decode(event.name, event.version, event.to_args())  # raises on a bug of ours
        event_id = self._make_id()
        self._put_pending(PushedEvent(EventId(event_id), event).to_json())
        if isinstance(event, ev.CellDeleted):
            self._forget_buffer(event.cell_id)
        if not keep_view:
            self._view = None
        return event_id

    def _put_pending(self, pushed: PushedJson) -> None:
        key = self._next_key
        self._next_key += 1
        self.pending.append((key, pushed))
        self._changes.pending_put.append((key, pushed))

    def _remove_pending(self, event_id: str) -> None:
        for key, event in self.pending:
            if event["id"] == event_id:
                self._changes.pending_delete.append(key)
        self.pending = [(k, e) for k, e in self.pending if e["id"] != event_id]
        self._view = None


def _args(event: PushedJson) -> dict[str, Any]:
    args = event.get("args")
    return args if isinstance(args, dict) else {}


def _readable(saved: Saved) -> Saved:
    """``saved`` without the records no code of ours could have written (a damaged store,
    a hand edit): each is dropped with a log line, and the rest restores as usual."""
    confirmed = [
        raw for raw in saved.confirmed if isinstance(raw, dict) and type(raw.get("seq")) is int
    ]
    pending = [
        (key, event) for key, event in saved.pending if type(key) is int and _is_pushed(event)
    ]
    drafts = {
        cell_id: ops
        for cell_id, ops in saved.drafts.items()
        if isinstance(cell_id, str) and isinstance(ops, list)
    }
    others = [
        (tab, cell_id, ops)
        for tab, cell_id, ops in saved.other_drafts
        if type(tab) is int and isinstance(cell_id, str) and isinstance(ops, list)
    ]
    dropped = (
        len(saved.confirmed) - len(confirmed)
        + len(saved.pending) - len(pending)
        + len(saved.drafts) - len(drafts)
        + len(saved.other_drafts) - len(others)
    )  # fmt: skip
    if dropped:
        log.warning("dropped %d unreadable records of the local store", dropped)
    return replace(saved, confirmed=confirmed, pending=pending, drafts=drafts, other_drafts=others)


def _is_pushed(event: object) -> bool:
    """An event in the shape we push: ``{"id", "name", "v", "args"}`` with an id and args."""
    return (
        isinstance(event, dict)
        and isinstance(event.get("id"), str)
        and isinstance(event.get("name"), str)
        and isinstance(event.get("args"), dict)
    )
