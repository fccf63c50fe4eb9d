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
from typing import Any, Protocol

import js
from pyodide.ffi import JsProxy, create_proxy

from shared_schema import ot
from shared_schema.state import NotebookState

from .browser import Listeners, js_object
from .cell_view import CellView, cell_template
from .dom import clear, h, set_text
from .header import Header
from .presence import Person
from .render import FrameSizer
from .status import SyncStatus

#: How often the time of a running cell is redrawn (seconds).
TICK = 0.5


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
    def rename(self, name: str) -> None: ...
    def share(self) -> None: ...
    def download(self) -> None: ...
    def remove_requirement(self, package: str) -> None: ...
    def set_run_in(self, where: str) -> None: ...


#: How far outside the viewport a cell's editor is made (CSS margin).
EDITOR_MARGIN = "800px 0px"

#: An editor waiting for the page to be idle is made after this long at the latest (ms).
EDITOR_IDLE_TIMEOUT = 300

#: Seconds after a keystroke during which no lazy editor is made (typing keeps its frames).
TYPING_PAUSE = 0.5

#: Where a cell shows HTML someone else wrote (sanitized, but free to borrow our class names).
_AUTHORED = ".markdown-rendered, .outputs"


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
        self.header = Header(actions, self._listeners)
        self._ticker: asyncio.Future | None = None
        self._state = NotebookState()
        #: A line under the header for what a person must know (read-only, no relay).
        self.notice = h("p", {"class": "notice", "role": "status", "hidden": True})
        #: False for a viewer (or a token that does not cover this notebook): nothing changes from
        #: here.
        self.editable = True
        self.list = h("main", {"class": "cells"})
        add_code = h(
            "button", {"class": "add-cell", "type": "button", "data-type": "code"}, "+ Code"
        )
        add_md = h(
            "button", {"class": "add-cell", "type": "button", "data-type": "markdown"}, "+ Markdown"
        )
        footer = h("div", {"class": "add-cells"}, add_code, add_md)
        clear(root)
        root.append(self.header.element, self.notice, self.list, footer)
        self._templates: dict[str, JsProxy] = {}
        #: Cells whose editor waits until they near the viewport.
        self._observer_proxy = create_proxy(self._near_viewport)
        self._observer = js.IntersectionObserver.new(
            self._observer_proxy, js_object({"rootMargin": EDITOR_MARGIN})
        )
        #: Cells near the viewport whose editor is made when the page is idle, one per task
        #: (an editor takes several ms: a screenful at once would be one long frame).
        self._waiting: dict[str, None] = {}
        self._idle_handle: Any = None
        self._idle_proxy = create_proxy(self._make_waiting_editor)
        self._typed_at = 0.0  # when a key was last pressed (lazy editors wait for a pause)
        #: Cells that show someone's tag or caret.
        self._people_cells: set[str] = set()
        #: Cells whose run is executing (their time is redrawn every ``TICK``).
        self._running: set[str] = set()
        # One listener per kind for every cell (a cell's element carries its id).
        self._listeners.on(self.list, "click", self._cell_click)
        self._listeners.on(self.list, "change", self._cell_change)
        self._listeners.on(self.list, "mousedown", self._cell_mousedown)
        self._listeners.on(self.list, "mouseover", self._cell_mouseover)
        self._listeners.on(self.list, "focusin", self._cell_mouseover)
        self._listeners.on(self.list, "dblclick", self._cell_dblclick)
        self._listeners.on(add_code, "click", lambda _e: self._append("code"))
        self._listeners.on(add_md, "click", lambda _e: self._append("markdown"))
        self._listeners.on(js.document, "keydown", self._command_key)

    # --- rendering -----------------------------------------------------------------

    def cell_template(self, cell_type: str) -> JsProxy:
        template = self._templates.get(cell_type)
        if template is None:
            template = self._templates[cell_type] = cell_template(cell_type)
        return template

    def render(self, state: NotebookState, status: SyncStatus) -> None:
        self.header.render(state, status)
        if state is self._state:
            self._render_sources(state)
            return
        visible = state.visible_cells()
        ids = [cell.id for cell in visible]
        if len(ids) != len(self.cells) or ids != self.order:
            for cell_id in set(self.cells) - set(ids):
                self._running.discard(cell_id)
                self.cells.pop(cell_id).destroy()
        created: list[CellView] = []
        for cell in visible:
            view = self.cells.get(cell.id)
            if view is None:
                view = self.cells[cell.id] = CellView(self, cell.id, cell.cell_type, cell.source)
                if not self.editable:
                    view.set_editable(False)
                created.append(view)
            run = state.executions.get(cell.execution_id) if cell.execution_id else None
            view.update(state, cell, run)  # writes only what differs
            if view.running:
                self._running.add(cell.id)
            else:
                self._running.discard(cell.id)
        if ids != self.order:
            self._place(ids)
        observe = self._observer.observe
        for view in created:
            if not view.live:
                observe(view.element)  # its editor comes when it nears the viewport
        self.order = ids
        if self.selected not in self.cells:
            self.selected = ids[0] if ids else None
        # A rejected delete brings one back.
        remade = any(view.cell_id == self.selected for view in created)
        if self._shown_selected != self.selected or remade:
            shown = self.cells.get(self._shown_selected) if self._shown_selected else None
            if shown is not None:
                shown.element.classList.remove("selected")
            if self.selected is not None:
                self.cells[self.selected].element.classList.add("selected")
            self._shown_selected = self.selected
        self._state = state
        if self._ticker is None and self._running:
            self._ticker = asyncio.ensure_future(self._tick())

    def _render_sources(self, state: NotebookState) -> None:
        """The same state as last time: only the text of a cell typed into can have changed
        (the model edits it in place for a keystroke), so only editors' texts are compared."""
        cells = state.cells
        for cell_id, view in self.cells.items():
            if view.editor is None:
                continue  # only an editor can have been typed into
            cell = cells[cell_id]
            if view.text != cell.source:
                run = state.executions.get(cell.execution_id) if cell.execution_id else None
                view.update(state, cell, run)

    def _place(self, ids: list[str]) -> None:
        """Put the cells' elements in ``ids`` order, moving only those out of place.

        The page holds the cells in ``self.order`` (less those just destroyed), so
        the moves are worked out here rather than by walking the DOM.
        """
        cells = self.cells
        if not self.order:  # the first render: built off the page, added at once
            self.list.append(*(cells[cell_id].element for cell_id in ids))
            return
        current = [cell_id for cell_id in self.order if cell_id in cells]
        placed = set(current)
        for index, cell_id in enumerate(ids):
            if index < len(current) and current[index] == cell_id:
                continue
            if cell_id in placed:
                current.remove(cell_id)
            element = cells[cell_id].element
            if index < len(current):
                self.list.insertBefore(element, cells[current[index]].element)
            else:
                self.list.append(element)
            current.insert(index, cell_id)
            placed.add(cell_id)

    async def _tick(self) -> None:
        """Redraw the time of running cells while any runs."""
        try:
            while True:
                await asyncio.sleep(TICK)
                running = [
                    self.cells[cell_id] for cell_id in self._running if cell_id in self.cells
                ]
                running = [view for view in running if view.running]
                if not running:
                    return
                for view in running:
                    view.show_summary(self._state)
        finally:
            self._ticker = None

    def set_access(self, editable: bool, can_share: bool) -> None:
        """A viewer gets the notebook read-only: no editing, no buttons that change it."""
        self.header.set_access(editable, can_share)
        if editable == self.editable:
            return
        self.editable = editable
        js.document.body.classList.toggle("read-only", not editable)
        for view in self.cells.values():
            view.set_editable(editable)
        read_only = (
            "Read-only: your token lets you read this notebook and follow it live, not change it."
        )
        self.show_notice("" if editable else read_only)

    def show_notice(self, text: str) -> None:
        set_text(self.notice, text)
        self.notice.hidden = not text

    def show_people(self, people: list[Person]) -> None:
        """Everyone else here: initials in the header, tags and carets in their cells."""
        self.header.show_people(people)
        by_cell: dict[str, list[Person]] = {}
        for person in people:
            if person.cell is not None:
                by_cell.setdefault(person.cell, []).append(person)
        for cell_id in self._people_cells | by_cell.keys():  # only cells someone is in, or was in
            view = self.cells.get(cell_id)
            if view is not None:
                view.show_people(by_cell.get(cell_id, []))
        self._people_cells = set(by_cell)

    # --- the cells' own events, one listener each for all cells ----------------------

    def _cell_of(self, event: Any) -> CellView | None:
        # A child of the list: a ``section.cell`` someone wrote in markdown is deeper down.
        section = event.target.closest(".cells > section.cell")
        # ``closest`` gives null (JsNull, falsy) when there is none.
        return self.cells.get(str(section.dataset.cellId)) if section else None

    def _cell_click(self, event: Any) -> None:
        button = event.target.closest("button[data-action]")
        if not button or button.closest(_AUTHORED):  # a button in someone's markdown is not a tool
            return
        view = self._cell_of(event)
        if view is not None:
            view.action(str(button.dataset.action))

    def _cell_change(self, event: Any) -> None:
        view = self._cell_of(event)
        target = event.target
        if (
            view is not None
            and target.classList.contains("cell-type")
            and not target.closest(_AUTHORED)
        ):
            self.actions.change_type(view.cell_id, str(target.value))

    def _cell_mousedown(self, event: Any) -> None:
        view = self._cell_of(event)
        if view is None:
            return
        self.select(view.cell_id)
        if not view.live and event.target.closest(".source-static"):
            event.preventDefault()  # the static text is going: focus the editor that replaces it
            self.focus_cell(view.cell_id)

    def _cell_mouseover(self, event: Any) -> None:
        """The pointer (or focus) reached a cell's static source: make its editor before the
        click."""
        if event.target.closest(".source-static"):
            view = self._cell_of(event)
            if view is not None:
                view.ensure_editor()

    def _cell_dblclick(self, event: Any) -> None:
        view = self._cell_of(event)
        if view is not None and event.target.closest(".markdown-rendered"):
            self.focus_cell(view.cell_id)

    def _near_viewport(self, entries: Any, _observer: Any) -> None:
        """Cells came near the viewport (their editors wait for an idle moment) or left it."""
        # A cell waits only after an earlier report: a first report of hundreds of far
        # cells needs no look-up (each is a few calls into JavaScript).
        some_waiting = bool(self._waiting)
        for entry in entries:
            near = bool(entry.isIntersecting)
            if near or some_waiting:
                cell_id = str(entry.target.getAttribute("data-cell-id"))
                if near and cell_id in self.cells:
                    self._waiting[cell_id] = None
                else:
                    self._waiting.pop(cell_id, None)
        self._schedule_editor()

    def _schedule_editor(self) -> None:
        if self._waiting and self._idle_handle is None:
            if hasattr(js, "requestIdleCallback"):
                options = js_object({"timeout": EDITOR_IDLE_TIMEOUT})
                self._idle_handle = js.requestIdleCallback(self._idle_proxy, options)
            else:  # Safari: the next task, after this frame's rendering
                self._idle_handle = js.setTimeout(self._idle_proxy, 0)

    def _make_waiting_editor(self, *_deadline: Any) -> None:
        """One waiting cell gets its editor; the next one waits for the next idle moment."""
        self._idle_handle = None
        if time.monotonic() - self._typed_at < TYPING_PAUSE:
            self._schedule_editor()  # someone is typing: an editor made now would share their frame
            return
        while self._waiting:
            cell_id = next(iter(self._waiting))
            del self._waiting[cell_id]
            view = self.cells.get(cell_id)
            if view is not None and not view.live:
                view.ensure_editor()
                break
        self._schedule_editor()

    def unobserve(self, view: CellView) -> None:
        self._waiting.pop(view.cell_id, None)
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
        self._typed_at = time.monotonic()
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
        self._waiting.clear()
        if self._idle_handle is not None:
            if hasattr(js, "cancelIdleCallback"):
                js.cancelIdleCallback(self._idle_handle)
            else:
                js.clearTimeout(self._idle_handle)
        self._idle_proxy.destroy()
        if self._ticker is not None:
            self._ticker.cancel()
