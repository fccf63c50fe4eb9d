"""The notebook page: header, cells in order, each with editor, state and outputs.

``NotebookView.render(state, status)`` is called after every change and is
cheap when little changed: cells are matched by id, moved rather than
rebuilt, and a cell's outputs are rebuilt only when its output list is a
different list of dicts (outputs are never mutated in place, so identity
says "unchanged"). Editors are never re-rendered from state: their text
moves only by ops (see ``client.editor``), which keeps cursors in place.

What a person does goes to ``Actions`` (the notebook page), never to the
model directly.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import js
from pyodide.ffi import JsProxy
from shared_schema import ot
from shared_schema.events import CELL_TYPES
from shared_schema.state import Execution, NotebookState

from .browser import Listeners
from .dom import clear, h, set_text
from .editor import CellEditor
from .presence import Person
from .render import FrameSizer, render_output, text_lines

#: What a person sees for each execution status.
STATUS_LABELS = {
    "pending": "queued",
    "assigned": "queued",
    "executing": "running",
    "ok": "done",
    "error": "error",
    "cancelled": "cancelled",
}

#: Outputs taller than this many lines start scrolled (a button shows them whole).
LONG_OUTPUT_LINES = 40

#: How often the time of a running cell is redrawn (seconds).
TICK = 0.5


@dataclass
class SyncStatus:
    online: bool
    unsynced: int
    detail: str = ""


class Actions(Protocol):
    """What the view asks of the notebook page."""

    def text(self, cell_id: str) -> str: ...
    def edit(self, cell_id: str, ops: ot.TextOps) -> None: ...
    def run(self, cell_id: str, then: str) -> None: ...
    def add_cell(self, after: str | None, cell_type: str) -> str: ...
    def delete_cell(self, cell_id: str) -> None: ...
    def move_cell(self, cell_id: str, offset: int) -> None: ...
    def change_type(self, cell_id: str, cell_type: str) -> None: ...
    def interrupt(self, cell_id: str) -> None: ...
    def cancel(self, cell_id: str) -> None: ...
    def run_above(self, cell_id: str) -> None: ...
    def run_below(self, cell_id: str) -> None: ...
    def clear_cell(self, cell_id: str) -> None: ...
    def set_title(self, title: str) -> None: ...
    def run_all(self) -> None: ...
    def interrupt_all(self) -> None: ...
    def restart_kernel(self) -> None: ...
    def clear_outputs(self) -> None: ...
    def moved(self, cell_id: str | None, cursor: tuple[int, int] | None) -> None: ...
    def share(self) -> None: ...


def kernel_status(state: NotebookState, kernels: str | None = None) -> tuple[str, str, bool]:
    """``(status, text, show the command)`` for the header: none, starting, idle, busy or restarting.

    ``kernels`` is the relay's ``--kernels`` mode from ``/api/health``: "auto"
    (it starts a kernel when work waits), "none" (someone must start one), or
    ``None`` when the relay does not say (then the command shows while work waits).
    """
    live = state.live_kernels()
    waiting = bool(state.pending())
    if not live:
        if kernels == "none":
            return "none", "kernel: none · start one with", True
        if waiting:
            return "starting", "kernel: starting…" + ("" if kernels == "auto" else " · or start one with"), kernels != "auto"
        return "none", "kernel: none" + (" (one starts when you run a cell)" if kernels == "auto" else ""), False
    label = ", ".join(session.label or session.id[:8] for session in live)
    if any(session.restart_requested for session in live):
        return "restarting", f"kernel: restarting… · {label}", False
    busy = any(state.executions[eid].status == "executing" for eid in state.queue)
    return ("busy" if busy else "idle"), f"kernel: {'busy' if busy else 'idle'} · {label}", False


def execution_summary(run: Execution, state: NotebookState, now: float | None = None) -> str:
    """"done in 0.12 s · kernel ab12cd34 (node)", "running 3.5 s · …" and the like."""
    text = STATUS_LABELS.get(run.status, run.status)
    if run.started_at is not None and run.completed_at is not None:
        text += f" in {_duration(run.completed_at - run.started_at)}"
    elif run.status == "executing" and run.started_at is not None:
        text += f" {_duration((now if now is not None else time.time()) - run.started_at, live=True)}"
    elif run.status in ("pending", "assigned") and run.id in state.queue:
        ahead = state.queue.index(run.id)
        if ahead:
            text += f" · {ahead} ahead"
    if run.kernel_session:
        session = state.kernels.get(run.kernel_session)
        name = (session.label if session and session.label else run.kernel_session[:8])
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


class CellView:
    """One cell on the page."""

    def __init__(self, notebook: NotebookView, cell_id: str, cell_type: str) -> None:
        self.cell_id = cell_id
        self._notebook = notebook
        actions = notebook.actions
        self._listeners = Listeners()
        self.prompt = h("span", {"class": "prompt"}, "[ ]:")
        self.type_select = h("select", {"class": "cell-type", "title": "Cell type"})
        for name in CELL_TYPES:
            self.type_select.append(h("option", {"value": name}, name))
        self.type_select.value = cell_type
        self.run_button = self._button("▶", "Run (Shift+Enter)", "run", lambda: actions.run(cell_id, "stay"))
        self.stop_button = self._button("■", "Interrupt", "interrupt", lambda: actions.interrupt(cell_id))
        self.cancel_button = self._button("✕ queued", "Cancel this queued run", "cancel", lambda: actions.cancel(cell_id))
        self.stop_button.hidden = self.cancel_button.hidden = True
        tools = h(
            "div", {"class": "cell-tools"},
            self.type_select,
            self.run_button,
            self.stop_button,
            self.cancel_button,
            self._button("⤒", "Run the cells above", "run-above", lambda: actions.run_above(cell_id)),
            self._button("⤓", "Run this cell and those below", "run-below", lambda: actions.run_below(cell_id)),
            self._button("⌫", "Clear this cell's outputs", "clear-cell", lambda: actions.clear_cell(cell_id)),
            self._button("↑", "Move up", "move-up", lambda: actions.move_cell(cell_id, -1)),
            self._button("↓", "Move down", "move-down", lambda: actions.move_cell(cell_id, 1)),
            self._button("+", "Add a cell below (B)", "add-below", lambda: notebook.add_below(cell_id)),
            self._button("✕", "Delete (DD)", "delete", lambda: actions.delete_cell(cell_id)),
        )  # fmt: skip
        self.editor_host = h("div", {"class": "editor"})
        #: A markdown cell shows its rendering unless someone is editing it here.
        self.rendered = h("div", {"class": "markdown-rendered", "title": "Double-click to edit"})
        self.editing = False
        self._rendered_source: str | None = None
        self.people = h("div", {"class": "cell-people"})
        self.status = h("div", {"class": "cell-status"})
        self.outputs = h("div", {"class": "outputs", "data-collapsed": "false"})
        #: Long outputs scroll inside a box; a collapsed cell hides them behind one line.
        self.collapse_button = h("button", {"class": "output-tool toggle-outputs", "type": "button",
                                            "title": "Hide or show this cell's outputs"}, "collapse")
        self.scroll_button = h("button", {"class": "output-tool toggle-scroll", "type": "button",
                                          "title": "Show long outputs whole, or in a scrolling box"}, "show all")
        self.collapsed_note = h("button", {"class": "outputs-collapsed", "type": "button", "hidden": True})
        self.output_tools = h("div", {"class": "output-tools", "hidden": True},
                              self.collapse_button, self.scroll_button)
        self._collapsed = False
        self._scroll_whole = False
        self._output_lines = 0
        self.element = h(
            "section", {"class": "cell", "data-cell-id": cell_id, "data-cell-type": cell_type},
            h("div", {"class": "cell-gutter"}, self.prompt),
            h("div", {"class": "cell-body"}, self.people, tools, self.editor_host, self.rendered, self.status,
              self.output_tools, self.collapsed_note, self.outputs),
        )  # fmt: skip
        self._listeners.on(self.collapse_button, "click", lambda _e: self.set_collapsed(not self._collapsed))
        self._listeners.on(self.collapsed_note, "click", lambda _e: self.set_collapsed(False))
        self._listeners.on(self.scroll_button, "click", lambda _e: self._toggle_scroll())
        self._listeners.on(self.type_select, "change", lambda _e: actions.change_type(cell_id, str(self.type_select.value)))
        self._listeners.on(self.element, "mousedown", lambda _e: notebook.select(cell_id))
        self._listeners.on(self.rendered, "dblclick", lambda _e: notebook.focus_cell(cell_id))
        self.editor = CellEditor(
            notebook.cm,
            self.editor_host,
            actions.text(cell_id),
            on_edit=lambda ops: actions.edit(cell_id, ops),
            on_key=lambda name: notebook.editor_key(cell_id, name),
            on_focus=lambda focused: notebook.editor_focus(cell_id, focused),
            on_selection=lambda anchor, head: actions.moved(cell_id, (anchor, head)),
        )
        self._people_key: tuple[tuple[str, str], ...] = ()
        self._outputs: list[dict[str, Any]] | None = None
        self._run_key: tuple[Any, ...] | None | bool = False  # never rendered
        self._run: Execution | None = None

    def _button(self, label: str, title: str, name: str, action: Callable[[], None]) -> JsProxy:
        button = h("button", {"class": f"tool {name}", "title": title, "type": "button", "data-action": name}, label)
        self._listeners.on(button, "click", lambda _e: action())
        return button

    def update(self, state: NotebookState, cell_type: str, source: str, run: Execution | None) -> None:
        if self.element.dataset.cellType != cell_type:
            self.element.dataset.cellType = cell_type
            self.type_select.value = cell_type
        if self.editor.text != source:  # the model reset this cell: show the log's text
            self.editor.set_text(source)
        self.show_markdown(cell_type == "markdown" and not self.editing, source)
        self._run = run
        queued = run is not None and run.status in ("pending", "assigned")
        run_key = None if run is None else (
            run.id, run.status, run.execution_count, run.kernel_session, run.completed_at, run.reason,
            state.queue.index(run.id) if queued and run.id in state.queue else -1,
        )  # fmt: skip
        if run_key != self._run_key:
            self._run_key = run_key
            status = "idle" if run is None else STATUS_LABELS.get(run.status, run.status)
            self.element.dataset.status = status
            count = "" if run is None or run.execution_count is None else str(run.execution_count)
            mark = "*" if run is not None and run.status in ("pending", "assigned", "executing") else count
            set_text(self.prompt, f"[{mark or ' '}]:")
            self.show_summary(state)
            self.status.dataset.status = status
            self.status.dataset.kernel = (run.kernel_session or "") if run is not None else ""
            self.stop_button.hidden = run is None or run.status != "executing"
            self.cancel_button.hidden = not queued
        outputs = run.outputs if run is not None else []
        if not _same_outputs(outputs, self._outputs):
            self._outputs = list(outputs)
            clear(self.outputs)
            for output in outputs:
                self.outputs.append(render_output(output, self._notebook.md))
            self._output_lines = sum(text_lines(output) for output in outputs)
            self._show_output_tools()

    def show_summary(self, state: NotebookState) -> None:
        """The line under the editor: state, how long it ran (or has run so far), which kernel."""
        set_text(self.status, "" if self._run is None else execution_summary(self._run, state))

    @property
    def running(self) -> bool:
        return self._run is not None and self._run.status == "executing"

    def set_collapsed(self, collapsed: bool) -> None:
        self._collapsed = collapsed
        self._show_output_tools()

    def _toggle_scroll(self) -> None:
        self._scroll_whole = not self._scroll_whole
        self._show_output_tools()

    def _show_output_tools(self) -> None:
        count = len(self._outputs or [])
        long = self._output_lines > LONG_OUTPUT_LINES
        collapsed = self._collapsed and count > 0
        self.output_tools.hidden = count == 0
        self.outputs.hidden = collapsed
        self.outputs.dataset.collapsed = "true" if collapsed else "false"
        self.outputs.classList.toggle("scrolled", long and not self._scroll_whole)
        set_text(self.collapse_button, "expand" if collapsed else "collapse")
        self.scroll_button.hidden = collapsed or not long
        set_text(self.scroll_button, "scroll" if self._scroll_whole else "show all")
        self.collapsed_note.hidden = not collapsed
        noun = "output" if count == 1 else "outputs"
        set_text(self.collapsed_note, f"… {count} {noun} hidden ({self._output_lines} lines): show")

    def show_markdown(self, rendered: bool, source: str) -> None:
        if rendered and source != self._rendered_source:
            self._rendered_source = source
            if source.strip():
                self.rendered.innerHTML = str(self._notebook.md.renderMarkdown(source))  # sanitized
            else:
                self.rendered.textContent = "Empty markdown cell: double-click to write."
        self.rendered.hidden = not rendered
        self.editor_host.hidden = rendered
        self.element.classList.toggle("rendered", rendered)

    def show_people(self, people: list[Person]) -> None:
        """Others in this cell: name tags above it, carets in its editor."""
        key = tuple((person.client_id, person.name) for person in people)
        if key != self._people_key:
            self._people_key = key
            clear(self.people)
            for person in people:
                tag = h("span", {"class": "person-tag"}, person.name)
                tag.style.backgroundColor = person.color
                self.people.append(tag)
            self.element.classList.toggle("has-people", bool(people))
        self.editor.set_cursors(
            [(p.name, p.color, p.tint, *p.cursor) for p in people if p.cursor is not None]
        )

    def destroy(self) -> None:
        self.editor.destroy()
        self._listeners.clear()
        self.element.remove()


def _same_outputs(a: list[dict[str, Any]], b: list[dict[str, Any]] | None) -> bool:
    return b is not None and len(a) == len(b) and all(x is y for x, y in zip(a, b))


class NotebookView:
    """The whole notebook page under ``root``."""

    def __init__(self, root: JsProxy, cm: Any, md: Any, actions: Actions) -> None:
        self.cm = cm
        self.md = md
        self.actions = actions
        self._listeners = Listeners()
        self._sizer = FrameSizer()
        self.cells: dict[str, CellView] = {}
        self.order: list[str] = []
        self.selected: str | None = None
        self._editing: str | None = None
        self._pending_d = False
        self.title = h("input", {"class": "title", "aria-label": "Notebook title", "spellcheck": "false"})
        self.kernel = h("span", {"class": "kernel-status", "data-status": "none"})
        self.kernel_text = h("span", {"class": "kernel-text"})
        #: How to start a kernel by hand, shown when none is live and the relay will not start one.
        self.kernel_command = h("code", {"class": "kernel-command", "hidden": True})
        self.kernel.append(self.kernel_text, self.kernel_command)
        #: The relay's ``--kernels`` mode ("auto", "none") once ``/api/health`` said it.
        self.kernels_mode: str | None = None
        #: The shell command that starts a kernel for this notebook (set by the page).
        self.start_command = ""
        self._ticker: asyncio.Future | None = None
        self._state = NotebookState()
        self.sync = h("span", {"class": "sync-status", "data-online": "false"}, "connecting…")
        self.people = h("span", {"class": "people", "data-count": "0"})
        self.share_button = h("button", {"class": "tool share", "type": "button", "title": "Share a link to this notebook", "hidden": True}, "Share")
        self._listeners.on(self.share_button, "click", lambda _e: actions.share())
        #: A line under the header for what a person must know (read-only, no relay).
        self.notice = h("p", {"class": "notice", "role": "status", "hidden": True})
        #: False for a viewer (or a token that does not cover this notebook): nothing changes from here.
        self.editable = True
        controls = h("span", {"class": "controls"})
        for label, name, title, action in (
            ("▶▶", "run-all", "Run all cells", actions.run_all),
            ("■", "interrupt-all", "Interrupt the running cell", actions.interrupt_all),
            ("↻", "restart", "Restart the kernel", actions.restart_kernel),
            ("⌫", "clear-all", "Clear all outputs", actions.clear_outputs),
        ):
            button = h("button", {"class": f"tool {name}", "type": "button", "title": title, "data-action": name}, label)
            self._listeners.on(button, "click", lambda _e, action=action: action())
            controls.append(button)
        header = h(
            "header", {"class": "bar"},
            h("a", {"class": "home", "href": "?"}, "Anode"),
            self.title, controls, self.people, self.kernel, self.sync, self.share_button,
        )  # fmt: skip
        self.list = h("main", {"class": "cells"})
        add_code = h("button", {"class": "add-cell", "type": "button", "data-type": "code"}, "+ Code")
        add_md = h("button", {"class": "add-cell", "type": "button", "data-type": "markdown"}, "+ Markdown")
        footer = h("div", {"class": "add-cells"}, add_code, add_md)
        clear(root)
        root.append(header, self.notice, self.list, footer)
        self._listeners.on(add_code, "click", lambda _e: self._append("code"))
        self._listeners.on(add_md, "click", lambda _e: self._append("markdown"))
        self._listeners.on(self.title, "change", lambda _e: actions.set_title(str(self.title.value)))
        self._listeners.on(js.document, "keydown", self._command_key)

    # --- rendering -----------------------------------------------------------------

    def render(self, state: NotebookState, status: SyncStatus) -> None:
        if js.document.activeElement != self.title and self.title.value != state.title:
            self.title.value = state.title
        js.document.title = f"{state.title or 'Untitled'} · Anode"
        kernel, text, show_command = kernel_status(state, self.kernels_mode)
        self.kernel.dataset.status = kernel
        self.kernel.dataset.restarts = str(sum(session.restarts for session in state.live_kernels()))
        set_text(self.kernel_text, text)
        self.kernel_command.hidden = not show_command
        set_text(self.kernel_command, self.start_command)
        self.sync.dataset.online = "true" if status.online else "false"
        self.sync.dataset.unsynced = str(status.unsynced)
        sync_text = "online" if status.online else "offline"
        if status.unsynced:
            sync_text += f" · {status.unsynced} to sync"
        set_text(self.sync, sync_text)
        self.sync.title = status.detail

        visible = state.visible_cells()
        ids = [cell.id for cell in visible]
        for cell_id in set(self.cells) - set(ids):
            self.cells.pop(cell_id).destroy()
        previous = None
        for cell in visible:
            view = self.cells.get(cell.id)
            if view is None:
                view = self.cells[cell.id] = CellView(self, cell.id, cell.cell_type)
                if not self.editable:
                    view.editor.set_editable(False)
            run = state.executions.get(cell.execution_id) if cell.execution_id else None
            view.update(state, cell.cell_type, cell.source, run)
            expected_next = self.list.firstChild if previous is None else previous.nextSibling
            if expected_next != view.element:
                self.list.insertBefore(view.element, expected_next)
            previous = view.element
        self.order = ids
        if self.selected not in self.cells:
            self.selected = ids[0] if ids else None
        for cell_id, view in self.cells.items():
            view.element.classList.toggle("selected", cell_id == self.selected)
        self._state = state
        if self._ticker is None and any(view.running for view in self.cells.values()):
            self._ticker = asyncio.ensure_future(self._tick())

    async def _tick(self) -> None:
        """Redraw the time of running cells while any runs."""
        try:
            while True:
                await asyncio.sleep(TICK)
                running = [view for view in self.cells.values() if view.running]
                if not running:
                    return
                for view in running:
                    view.show_summary(self._state)
        finally:
            self._ticker = None

    def set_access(self, editable: bool, can_share: bool) -> None:
        """A viewer gets the notebook read-only: no editing, no buttons that change it."""
        self.share_button.hidden = not can_share
        if editable == self.editable:
            return
        self.editable = editable
        js.document.body.classList.toggle("read-only", not editable)
        self.title.readOnly = not editable
        for view in self.cells.values():
            view.editor.set_editable(editable)
        self.show_notice("" if editable else "Read-only: your token lets you read this notebook and follow it live, not change it.")

    def show_notice(self, text: str) -> None:
        set_text(self.notice, text)
        self.notice.hidden = not text

    def show_people(self, people: list[Person]) -> None:
        """Everyone else here: initials in the header, tags and carets in their cells."""
        self.people.dataset.count = str(len(people))
        clear(self.people)
        for person in sorted(people, key=lambda p: p.name):
            badge = h("span", {"class": "person", "title": person.name}, person.name[:1].upper())
            badge.style.backgroundColor = person.color
            self.people.append(badge)
        for cell_id, view in self.cells.items():
            view.show_people([p for p in people if p.cell == cell_id])

    # --- focus and keys ---------------------------------------------------------------

    def select(self, cell_id: str) -> None:
        previous = self.cells.get(self.selected) if self.selected else None
        if previous is not None:
            previous.element.classList.remove("selected")
        self.selected = cell_id
        if cell_id in self.cells:
            self.cells[cell_id].element.classList.add("selected")

    def focus_cell(self, cell_id: str | None, where: str = "") -> None:
        """Edit mode on a cell (a markdown cell shows its source while edited)."""
        if cell_id in self.cells:
            view = self.cells[cell_id]
            self.select(cell_id)
            if not view.editing:
                view.editing = True
                view.show_markdown(False, view.editor.text)
            view.editor.focus(where)

    def stop_editing(self, cell_id: str) -> None:
        """Leave a markdown cell rendered (what Run does to one)."""
        view = self.cells.get(cell_id)
        if view is not None:
            view.editing = False
            view.editor.blur()
            view.show_markdown(view.element.dataset.cellType == "markdown", view.editor.text)

    def editor_focus(self, cell_id: str, focused: bool) -> None:
        if focused:
            self._editing = cell_id
            self.select(cell_id)
            self.actions.moved(cell_id, self.cells[cell_id].editor.selection())
        elif self._editing == cell_id:
            self._editing = None
            self.actions.moved(cell_id, None)

    def neighbour(self, cell_id: str, offset: int) -> str | None:
        if cell_id not in self.order:
            return None
        index = self.order.index(cell_id) + offset
        return self.order[index] if 0 <= index < len(self.order) else None

    def add_below(self, cell_id: str | None, cell_type: str = "code") -> None:
        new = self.actions.add_cell(cell_id, cell_type)
        self.focus_cell(new)

    def _append(self, cell_type: str) -> None:
        self.add_below(self.order[-1] if self.order else None, cell_type)

    def editor_key(self, cell_id: str, name: str) -> bool:
        """A notebook key pressed inside an editor; True if handled."""
        if not self.editable and name.startswith("run"):
            return True
        if name == "run":
            self.actions.run(cell_id, "stay")
        elif name == "run-advance":
            self.actions.run(cell_id, "advance")
        elif name == "run-insert":
            self.actions.run(cell_id, "insert")
        elif name == "command-mode":
            self.cells[cell_id].editor.blur()
            self._editing = None
            self.select(cell_id)
        elif name in ("up", "down"):
            target = self.neighbour(cell_id, -1 if name == "up" else 1)
            if target is None:
                return False
            self.focus_cell(target, "end" if name == "up" else "start")
        else:
            return False
        return True

    def _command_key(self, event: Any) -> None:
        """Jupyter's command mode: keys on the selected cell when no editor has focus."""
        # Where the key went decides, not our record of focus: CodeMirror reports
        # focus changes a moment late, and a key pressed right after Esc is ours.
        target = event.target
        if target.closest(".cm-editor, input, select, textarea"):
            return
        if target.closest("button") and str(event.key) in ("Enter", " "):
            return  # the button's own action
        cell_id = self.selected
        if cell_id is None or event.ctrlKey or event.metaKey or event.altKey:
            return
        key = str(event.key)
        if not self.editable and key not in ("ArrowUp", "k", "ArrowDown", "j"):
            return
        handled = True
        if key == "Enter" and event.shiftKey:
            self.actions.run(cell_id, "advance")
        elif key == "Enter":
            self.focus_cell(cell_id)
        elif key in ("ArrowUp", "k", "ArrowDown", "j"):
            target_id = self.neighbour(cell_id, -1 if key in ("ArrowUp", "k") else 1)
            if target_id is not None:
                self.select(target_id)
        elif key == "a":
            self.add_below(self.neighbour(cell_id, -1))
        elif key == "b":
            self.add_below(cell_id)
        elif key == "m":
            self.actions.change_type(cell_id, "markdown")
        elif key == "y":
            self.actions.change_type(cell_id, "code")
        elif key == "d":
            if self._pending_d:
                self._pending_d = False
                following = self.neighbour(cell_id, 1) or self.neighbour(cell_id, -1)
                self.actions.delete_cell(cell_id)
                self.selected = following
            else:
                self._pending_d = True
                return
        else:
            handled = False
        self._pending_d = False
        if handled:
            event.preventDefault()

    def close(self) -> None:
        for view in self.cells.values():
            view.destroy()
        self.cells.clear()
        self._listeners.clear()
        self._sizer.close()
        if self._ticker is not None:
            self._ticker.cancel()
