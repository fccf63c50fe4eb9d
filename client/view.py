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
from pyodide.ffi import JsProxy, create_proxy
from shared_schema import ot
from shared_schema.events import CELL_TYPES
from shared_schema.state import Execution, NotebookState

from .browser import Listeners, js_object
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


#: Cells this near the top of the notebook get their editor at once; the
#: others show their source as static text until they near the viewport.
EAGER_EDITORS = 10

#: How far outside the viewport a cell's editor is made (CSS margin).
EDITOR_MARGIN = "800px 0px"

#: The buttons of a cell's tool bar: (label, title, data-action).
_TOOLS = (
    ("▶", "Run (Shift+Enter)", "run"),
    ("■", "Interrupt", "interrupt"),
    ("✕ queued", "Cancel this queued run", "cancel"),
    ("⤒", "Run the cells above", "run-above"),
    ("⤓", "Run this cell and those below", "run-below"),
    ("⌫", "Clear this cell's outputs", "clear-cell"),
    ("↑", "Move up", "move-up"),
    ("↓", "Move down", "move-down"),
    ("+", "Add a cell below (B)", "add-below"),
    ("✕", "Delete (DD)", "delete"),
)


def _cell_template() -> JsProxy:
    """The DOM every cell starts from (cloned: one call instead of a hundred)."""
    select = h("select", {"class": "cell-type", "title": "Cell type"})
    for name in CELL_TYPES:
        select.append(h("option", {"value": name}, name))
    tools = h("div", {"class": "cell-tools"}, select)
    for label, title, name in _TOOLS:
        hidden = name in ("interrupt", "cancel")  # shown while the cell runs, or waits
        tools.append(h("button", {"class": f"tool {name}", "title": title, "type": "button", "data-action": name,
                                  "hidden": hidden}, label))
    return h(
        "section", {"class": "cell"},
        h("div", {"class": "cell-gutter"}, h("span", {"class": "prompt"}, "[ ]:")),
        h("div", {"class": "cell-body"},
          h("div", {"class": "cell-people"}),
          tools,
          h("div", {"class": "editor"}),
          h("div", {"class": "markdown-rendered", "title": "Double-click to edit", "hidden": True}),
          h("div", {"class": "cell-status"}),
          h("div", {"class": "output-tools", "hidden": True},
            h("button", {"class": "output-tool toggle-outputs", "type": "button", "data-action": "toggle-outputs",
                         "title": "Hide or show this cell's outputs"}, "collapse"),
            h("button", {"class": "output-tool toggle-scroll", "type": "button", "data-action": "toggle-scroll",
                         "title": "Show long outputs whole, or in a scrolling box"}, "show all")),
          h("button", {"class": "outputs-collapsed", "type": "button", "data-action": "show-outputs", "hidden": True}),
          h("div", {"class": "outputs", "data-collapsed": "false"})),
    )  # fmt: skip


class CellView:
    """One cell on the page.

    Its CodeMirror editor is made only when needed (``ensure_editor``): when
    the cell nears the viewport, gets focus, or the pointer reaches its
    source. Until then the source shows as static text, kept equal to the
    model's, so a notebook of hundreds of cells opens without hundreds of editors.
    """

    def __init__(self, notebook: NotebookView, cell_id: str, cell_type: str) -> None:
        self.cell_id = cell_id
        self._notebook = notebook
        self.element = notebook.cell_template.cloneNode(True)
        self.element.dataset.cellId = cell_id
        self.element.dataset.cellType = cell_type
        self._cell_type = cell_type
        element = self.element

        def find(selector: str) -> JsProxy:
            return element.querySelector(selector)

        self.prompt = find(".prompt")
        self.type_select = find(".cell-type")
        self.type_select.value = cell_type
        self.stop_button = find(".tool.interrupt")
        self.cancel_button = find(".tool.cancel")
        self.editor_host = find(".editor")
        #: A markdown cell shows its rendering unless someone is editing it here.
        self.rendered = find(".markdown-rendered")
        self.editing = False
        self._shown_rendered = False
        self._rendered_source: str | None = None
        self.people = find(".cell-people")
        self.status = find(".cell-status")
        self.outputs = find(".outputs")
        #: Long outputs scroll inside a box; a collapsed cell hides them behind one line.
        self.collapse_button = find(".toggle-outputs")
        self.scroll_button = find(".toggle-scroll")
        self.collapsed_note = find(".outputs-collapsed")
        self.output_tools = find(".output-tools")
        self._collapsed = False
        self._scroll_whole = False
        self._output_lines = 0
        #: The source as static text while there is no editor.
        self.editor: CellEditor | None = None
        self._source = notebook.actions.text(cell_id)
        self._static = h("div", {"class": "source-static"}, h("div", {"class": "cm-content"}, self._source))
        self.editor_host.append(self._static)
        self._editable = True
        self._cursors: list[tuple[str, str, str, int, int]] = []
        self._people_key: tuple[tuple[str, str], ...] = ()
        self._outputs: list[dict[str, Any]] | None = None
        self._run_key: tuple[Any, ...] | None | bool = False  # never rendered
        self._run: Execution | None = None
        #: The model's cell and run this view last showed (to skip unchanged cells).
        self.shown: tuple[Any, Execution | None] | None = None

    # --- the editor, made when needed ----------------------------------------------------

    @property
    def live(self) -> bool:
        return self.editor is not None

    def ensure_editor(self) -> CellEditor:
        """This cell's CodeMirror editor, made now if it has none yet."""
        if self.editor is None:
            notebook, cell_id, actions = self._notebook, self.cell_id, self._notebook.actions
            self._static.remove()
            notebook.unobserve(self)
            self.editor = CellEditor(
                notebook.cm,
                self.editor_host,
                actions.text(cell_id),
                on_edit=lambda ops: actions.edit(cell_id, ops),
                on_key=lambda name: notebook.editor_key(cell_id, name),
                on_focus=lambda focused: notebook.editor_focus(cell_id, focused),
                on_selection=lambda anchor, head: actions.moved(cell_id, (anchor, head)),
            )
            if not self._editable:
                self.editor.set_editable(False)
            if self._cursors:
                self.editor.set_cursors(self._cursors)
        return self.editor

    @property
    def text(self) -> str:
        """The source this cell shows (the editor's, or the static text's)."""
        return self.editor.text if self.editor is not None else self._source

    def set_text(self, text: str) -> None:
        if self.editor is not None:
            self.editor.set_text(text)
        elif text != self._source:
            self._source = text
            self._static.firstChild.textContent = text

    def apply_remote(self, ops: ot.TextOps) -> None:
        """Someone else's edit: into the editor (cursor kept), or the static text."""
        if self.editor is not None:
            self.editor.apply_remote(ops)
        else:
            self.set_text(ot.apply(self._source, ops))

    def set_editable(self, editable: bool) -> None:
        self._editable = editable
        if self.editor is not None:
            self.editor.set_editable(editable)

    def focus(self, where: str = "") -> None:
        self.ensure_editor().focus(where)

    def blur(self) -> None:
        if self.editor is not None:
            self.editor.blur()

    def selection(self) -> tuple[int, int]:
        return self.editor.selection() if self.editor is not None else (0, 0)

    # --- rendering -----------------------------------------------------------------------

    def update(self, state: NotebookState, cell_type: str, source: str, run: Execution | None) -> None:
        if self._cell_type != cell_type:
            self._cell_type = cell_type
            self.element.dataset.cellType = cell_type
            self.type_select.value = cell_type
        if self.text != source:  # the model reset this cell (or a remote edit): show the log's text
            self.set_text(source)
        markdown = cell_type == "markdown" and not self.editing
        if markdown or self._shown_rendered:
            self.show_markdown(markdown, source)
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
            first = self._outputs is None
            self._outputs = list(outputs)
            if not first:
                clear(self.outputs)
            if outputs:
                fragment = js.document.createDocumentFragment()
                for output in outputs:
                    fragment.append(render_output(output, self._notebook.md))
                self.outputs.append(fragment)
            self._output_lines = sum(text_lines(output) for output in outputs)
            if outputs or not first:
                self._show_output_tools()

    def show_summary(self, state: NotebookState) -> None:
        """The line under the editor: state, how long it ran (or has run so far), which kernel."""
        set_text(self.status, "" if self._run is None else execution_summary(self._run, state))

    @property
    def running(self) -> bool:
        return self._run is not None and self._run.status == "executing"

    def action(self, name: str) -> bool:
        """A button of this cell was clicked; True if it was one of ours."""
        actions, cell_id = self._notebook.actions, self.cell_id
        handlers: dict[str, Callable[[], None]] = {
            "run": lambda: actions.run(cell_id, "stay"),
            "interrupt": lambda: actions.interrupt(cell_id),
            "cancel": lambda: actions.cancel(cell_id),
            "run-above": lambda: actions.run_above(cell_id),
            "run-below": lambda: actions.run_below(cell_id),
            "clear-cell": lambda: actions.clear_cell(cell_id),
            "move-up": lambda: actions.move_cell(cell_id, -1),
            "move-down": lambda: actions.move_cell(cell_id, 1),
            "add-below": lambda: self._notebook.add_below(cell_id),
            "delete": lambda: actions.delete_cell(cell_id),
            "toggle-outputs": lambda: self.set_collapsed(not self._collapsed),
            "show-outputs": lambda: self.set_collapsed(False),
            "toggle-scroll": self._toggle_scroll,
        }
        handler = handlers.get(name)
        if handler is None:
            return False
        handler()
        return True

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
        self._shown_rendered = rendered
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
        cursors = [(p.name, p.color, p.tint, *p.cursor) for p in people if p.cursor is not None]
        if cursors and self.editor is None:
            self.ensure_editor()  # someone works here: show their caret
        self._cursors = cursors
        if self.editor is not None:
            self.editor.set_cursors(cursors)

    def destroy(self) -> None:
        if self.editor is not None:
            self.editor.destroy()
        else:
            self._notebook.unobserve(self)
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
        self._shown_selected: str | None = None
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
        self.cell_template = _cell_template()
        #: Cells whose editor waits until they near the viewport.
        self._observer_proxy = create_proxy(self._near_viewport)
        self._observer = js.IntersectionObserver.new(
            self._observer_proxy, js_object({"rootMargin": EDITOR_MARGIN})
        )
        # One listener per kind for every cell (a cell's element carries its id).
        self._listeners.on(self.list, "click", self._cell_click)
        self._listeners.on(self.list, "change", self._cell_change)
        self._listeners.on(self.list, "mousedown", self._cell_mousedown)
        self._listeners.on(self.list, "mouseover", self._cell_mouseover)
        self._listeners.on(self.list, "focusin", self._cell_mouseover)
        self._listeners.on(self.list, "dblclick", self._cell_dblclick)
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
        created: list[CellView] = []
        same_state = state is self._state
        for index, cell in enumerate(visible):
            view = self.cells.get(cell.id)
            if view is None:
                view = self.cells[cell.id] = CellView(self, cell.id, cell.cell_type)
                if not self.editable:
                    view.set_editable(False)
                created.append(view)
                if index < EAGER_EDITORS:
                    view.ensure_editor()
            run = state.executions.get(cell.execution_id) if cell.execution_id else None
            if same_state and view.shown == (cell, run) and view.text == cell.source:
                continue  # a keystroke elsewhere: the model changed one cell's text in place
            view.update(state, cell.cell_type, cell.source, run)
            view.shown = (cell, run)
        if ids != self.order:
            if not self.order and created:  # the first render: built off the page, added at once
                fragment = js.document.createDocumentFragment()
                for cell_id in ids:
                    fragment.append(self.cells[cell_id].element)
                self.list.append(fragment)
            else:
                previous = None
                for cell_id in ids:
                    element = self.cells[cell_id].element
                    expected_next = self.list.firstChild if previous is None else previous.nextSibling
                    if expected_next != element:
                        self.list.insertBefore(element, expected_next)
                    previous = element
        for view in created:
            if not view.live:
                self._observer.observe(view.element)
        self.order = ids
        if self.selected not in self.cells:
            self.selected = ids[0] if ids else None
        if self._shown_selected != self.selected or created:
            for cell_id, view in self.cells.items():
                view.element.classList.toggle("selected", cell_id == self.selected)
            self._shown_selected = self.selected
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
            view.set_editable(editable)
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

    # --- the cells' own events, one listener each for all cells ----------------------

    def _cell_of(self, event: Any) -> CellView | None:
        section = event.target.closest("section.cell")
        return self.cells.get(str(section.dataset.cellId)) if section else None  # null is JsNull, falsy

    def _cell_click(self, event: Any) -> None:
        button = event.target.closest("button[data-action]")
        view = self._cell_of(event) if button else None
        if view is not None:
            view.action(str(button.dataset.action))

    def _cell_change(self, event: Any) -> None:
        view = self._cell_of(event)
        if view is not None and event.target.classList.contains("cell-type"):
            self.actions.change_type(view.cell_id, str(event.target.value))

    def _cell_mousedown(self, event: Any) -> None:
        view = self._cell_of(event)
        if view is None:
            return
        self.select(view.cell_id)
        if not view.live and event.target.closest(".source-static"):
            event.preventDefault()  # the static text is going: focus the editor that replaces it
            self.focus_cell(view.cell_id)

    def _cell_mouseover(self, event: Any) -> None:
        """The pointer (or focus) reached a cell's static source: make its editor before the click."""
        if event.target.closest(".source-static"):
            view = self._cell_of(event)
            if view is not None:
                view.ensure_editor()

    def _cell_dblclick(self, event: Any) -> None:
        view = self._cell_of(event)
        if view is not None and event.target.closest(".markdown-rendered"):
            self.focus_cell(view.cell_id)

    def _near_viewport(self, entries: Any, _observer: Any) -> None:
        for entry in entries:
            if entry.isIntersecting:
                view = self.cells.get(str(entry.target.dataset.cellId))
                if view is not None:
                    view.ensure_editor()

    def unobserve(self, view: CellView) -> None:
        self._observer.unobserve(view.element)

    # --- focus and keys ---------------------------------------------------------------

    def select(self, cell_id: str) -> None:
        previous = self.cells.get(self.selected) if self.selected else None
        if previous is not None:
            previous.element.classList.remove("selected")
        self.selected = cell_id
        if cell_id in self.cells:
            self.cells[cell_id].element.classList.add("selected")
        self._shown_selected = cell_id

    def focus_cell(self, cell_id: str | None, where: str = "") -> None:
        """Edit mode on a cell (a markdown cell shows its source while edited)."""
        if cell_id in self.cells:
            view = self.cells[cell_id]
            self.select(cell_id)
            if not view.editing:
                view.editing = True
                view.show_markdown(False, view.text)
            view.focus(where)

    def stop_editing(self, cell_id: str) -> None:
        """Leave a markdown cell rendered (what Run does to one)."""
        view = self.cells.get(cell_id)
        if view is not None:
            view.editing = False
            view.blur()
            view.show_markdown(view.element.dataset.cellType == "markdown", view.text)

    def editor_focus(self, cell_id: str, focused: bool) -> None:
        if focused:
            self._editing = cell_id
            self.select(cell_id)
            self.actions.moved(cell_id, self.cells[cell_id].selection())
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
            self.cells[cell_id].blur()
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
        self._observer.disconnect()
        self._observer_proxy.destroy()
        if self._ticker is not None:
            self._ticker.cancel()
