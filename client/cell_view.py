"""One cell on the page: its editor, its state and its outputs.

``CellView.update`` is called with the cell's part of the state after every
change and touches the DOM only where what it shows changed (it remembers
what it wrote); outputs are rebuilt only when the output list is another
list. A cell starts as a clone of a template (``cell_template``), not as a
hundred calls into JavaScript.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from pyodide.ffi import JsProxy

from shared_schema import ot
from shared_schema.events import CELL_TYPES
from shared_schema.ipynb import inline_attachments
from shared_schema.state import Cell, Execution, NotebookState

from .dom import clear, h
from .editor import LANGUAGES, CellEditor
from .presence import Person
from .render import render_output, text_lines
from .status import STATUS_LABELS, execution_summary

if TYPE_CHECKING:
    from .view import NotebookView

#: Under a cell showing the outputs it was imported with.
IMPORTED_NOTE = "not run here: outputs from the imported file"

#: Outputs taller than this many lines start scrolled (a button shows them whole).
LONG_OUTPUT_LINES = 40


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


#: What a cell's template shows, by the keys ``CellView`` notes what it has shown under:
#: a new cell's first update writes only what differs from these.
_TEMPLATE_SHOWS: dict[str, Any] = {
    "status": "idle",
    "prompt": "[ ]:",
    "summary": "",
    "kernel": "",
    "stop-hidden": True,
    "cancel-hidden": True,
    "tools-hidden": True,
    "outputs-hidden": False,
    "collapsed": "false",
    "scrolled": False,
    "collapse-label": "collapse",
    "scroll-hidden": True,
    "scroll-label": "show all",
    "note-hidden": True,
    "note": "",
}


def cell_template(cell_type: str) -> JsProxy:
    """The DOM every cell of this type starts from (cloned: one call instead of a hundred)."""
    select = h("select", {"class": "cell-type", "title": "Cell type"})
    for name in CELL_TYPES:
        select.append(h("option", {"value": name, "selected": name == cell_type}, name))
    tools = h("div", {"class": "cell-tools"}, select)
    for label, title, name in _TOOLS:
        hidden = name in ("interrupt", "cancel")  # shown while the cell runs, or waits
        tools.append(
            h(
                "button",
                {
                    "class": f"tool {name}",
                    "title": title,
                    "type": "button",
                    "data-action": name,
                    "hidden": hidden,
                },
                label,
            )
        )
    shows = _TEMPLATE_SHOWS
    return h(
        "section",
        {"class": "cell", "data-cell-type": cell_type, "data-status": shows["status"]},
        h("div", {"class": "cell-gutter"}, h("span", {"class": "prompt"}, shows["prompt"])),
        h(
            "div",
            {"class": "cell-body"},
            h("div", {"class": "cell-people"}),
            tools,
            # The source as static text until the cell gets its editor.
            h(
                "div",
                {"class": "editor"},
                h("div", {"class": "source-static"}, h("div", {"class": "cm-content"})),
            ),
            h(
                "div",
                {"class": "markdown-rendered", "title": "Double-click to edit", "hidden": True},
            ),
            h(
                "div",
                {
                    "class": "cell-status",
                    "data-status": shows["status"],
                    "data-kernel": shows["kernel"],
                },
            ),
            h(
                "div",
                {"class": "output-tools", "hidden": shows["tools-hidden"]},
                h(
                    "button",
                    {
                        "class": "output-tool toggle-outputs",
                        "type": "button",
                        "data-action": "toggle-outputs",
                        "title": "Hide or show this cell's outputs",
                    },
                    shows["collapse-label"],
                ),
                h(
                    "button",
                    {
                        "class": "output-tool toggle-scroll",
                        "type": "button",
                        "data-action": "toggle-scroll",
                        "title": "Show long outputs whole, or in a scrolling box",
                        "hidden": shows["scroll-hidden"],
                    },
                    shows["scroll-label"],
                ),
            ),
            h(
                "button",
                {
                    "class": "outputs-collapsed",
                    "type": "button",
                    "data-action": "show-outputs",
                    "hidden": shows["note-hidden"],
                },
            ),
            h("div", {"class": "outputs", "data-collapsed": shows["collapsed"]}),
        ),
    )


class _Part:
    """A part of a cell's DOM, found the first time it is used.

    Every ``querySelector`` is a call into JavaScript, and most cells of a
    long notebook never need most of their parts: none is looked up ahead.
    """

    def __init__(self, selector: str) -> None:
        self.selector = selector
        self.name = ""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, view: CellView | None, owner: type | None = None) -> Any:
        if view is None:
            return self
        part = view.element.querySelector(self.selector)
        view.__dict__[self.name] = part  # found once: the instance attribute wins from now on
        return part


class CellView:
    """One cell on the page.

    Its CodeMirror editor is made only when needed (``ensure_editor``): when
    the cell nears the viewport, gets focus, or the pointer reaches its
    source. Until then the source shows as static text, kept equal to the
    model's, so a notebook of hundreds of cells opens without hundreds of editors.

    Every call into the DOM costs a crossing into JavaScript, and a long
    notebook makes hundreds of cells at once: parts are found when first
    used (``_Part``), and what the page shows is noted here (``_changed``)
    so that only what differs is written.
    """

    # Anchored paths, never a bare class: a markdown cell's rendered HTML (written by a
    # collaborator) sits inside the cell and may carry any of these classes itself.
    prompt = _Part(":scope > .cell-gutter > .prompt")
    type_select = _Part(":scope > .cell-body > .cell-tools > .cell-type")
    stop_button = _Part(":scope > .cell-body > .cell-tools > .tool.interrupt")
    cancel_button = _Part(":scope > .cell-body > .cell-tools > .tool.cancel")
    editor_host = _Part(":scope > .cell-body > .editor")
    #: A markdown cell shows its rendering unless someone is editing it here.
    rendered = _Part(":scope > .cell-body > .markdown-rendered")
    people = _Part(":scope > .cell-body > .cell-people")
    status = _Part(":scope > .cell-body > .cell-status")
    outputs = _Part(":scope > .cell-body > .outputs")
    #: Long outputs scroll inside a box; a collapsed cell hides them behind one line.
    collapse_button = _Part(":scope > .cell-body > .output-tools > .toggle-outputs")
    scroll_button = _Part(":scope > .cell-body > .output-tools > .toggle-scroll")
    collapsed_note = _Part(":scope > .cell-body > .outputs-collapsed")
    output_tools = _Part(":scope > .cell-body > .output-tools")
    #: The source as static text while there is no editor.
    _static = _Part(":scope > .cell-body > .editor > .source-static")
    _static_text = _Part(":scope > .cell-body > .editor > .source-static > .cm-content")

    def __init__(self, notebook: NotebookView, cell_id: str, cell_type: str, source: str) -> None:
        self.cell_id = cell_id
        self._notebook = notebook
        self.element = notebook.cell_template(cell_type).cloneNode(True)
        self.element.setAttribute("data-cell-id", cell_id)
        self._cell_type = cell_type
        if cell_type not in CELL_TYPES:  # the template selects none
            self.type_select.value = cell_type
        #: What this cell's DOM shows, where it differs from the template (``_TEMPLATE_SHOWS``).
        self._shows: dict[str, Any] = {}
        self.editing = False
        self._shown_rendered = False
        self._rendered_source: str | None = None
        self._collapsed = False
        self._scroll_whole = False
        self._output_lines = 0
        self.editor: CellEditor | None = None
        self._source = source
        if source:
            self._static_text.textContent = source
        self._editable = True
        self._cursors: list[tuple[str, str, str, int, int]] = []
        self._people_key: tuple[tuple[str, str], ...] = ()
        self._outputs: list[dict[str, Any]] | None = None
        self._run_key: tuple[Any, ...] | None | bool = False  # never rendered
        self._run: Execution | None = None

    # --- the editor, made when needed ----------------------------------------------------

    @property
    def live(self) -> bool:
        return self.editor is not None

    def ensure_editor(self) -> CellEditor:
        """This cell's CodeMirror editor, made now if it has none yet."""
        if self.editor is None:
            notebook, cell_id, actions = self._notebook, self.cell_id, self._notebook.actions
            self._static.remove()
            self.__dict__.pop("_static_text", None)
            notebook.unobserve(self)
            self.editor = CellEditor(
                notebook.cm,
                self.editor_host,
                actions.text(cell_id),
                on_edit=lambda ops: actions.edit(cell_id, ops),
                on_key=lambda name: notebook.editor_key(cell_id, name),
                on_focus=lambda focused: notebook.editor_focus(cell_id, focused),
                on_selection=lambda anchor, head: actions.moved(cell_id, (anchor, head)),
                language=LANGUAGES.get(self._cell_type, "python"),
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
            self._static_text.textContent = text

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

    def update(self, state: NotebookState, cell: Cell, run: Execution | None) -> None:
        cell_type, source = cell.cell_type, cell.source
        #: Outputs brought by an import show, marked, until the cell runs here.
        imported = cell.imported() if run is None else None
        if self._cell_type != cell_type:
            self._cell_type = cell_type
            self.element.setAttribute("data-cell-type", cell_type)
            self.type_select.value = cell_type
            if self.editor is not None:
                self.editor.set_language(LANGUAGES.get(cell_type, "python"))
        if self.text != source:  # the model reset this cell (or a remote edit): show the log's text
            self.set_text(source)
        markdown = cell_type == "markdown" and not self.editing
        if markdown or self._shown_rendered:
            self.show_markdown(markdown, inline_attachments(source, cell.attachments))
        self._run = run
        queued = run is not None and run.status in ("pending", "assigned")
        run_key: tuple[Any, ...] | None = None
        if imported is not None:
            run_key = ("imported", imported["execution_count"])
        elif run is not None:
            run_key = (
                run.id,
                run.status,
                run.execution_count,
                run.kernel_session,
                run.completed_at,
                run.reason,
                state.queue.index(run.id) if queued and run.id in state.queue else -1,
            )
        if run_key != self._run_key:
            self._run_key = run_key
            status = "idle" if run is None else STATUS_LABELS.get(run.status, run.status)
            if imported is not None:
                status = "imported"
            if self._changed("status", status):
                self.element.setAttribute("data-status", status)
                self.status.setAttribute("data-status", status)
            count = "" if run is None or run.execution_count is None else str(run.execution_count)
            if imported is not None and imported["execution_count"] is not None:
                count = str(imported["execution_count"])
            mark = (
                "*"
                if run is not None and run.status in ("pending", "assigned", "executing")
                else count
            )
            prompt = f"[{mark or ' '}]:"
            if self._changed("prompt", prompt):
                self.prompt.textContent = prompt
            self.show_summary(state, imported is not None)
            kernel = (run.kernel_session or "") if run is not None else ""
            if self._changed("kernel", kernel):
                self.status.setAttribute("data-kernel", kernel)
            stop_hidden = run is None or run.status != "executing"
            if self._changed("stop-hidden", stop_hidden):
                self.stop_button.hidden = stop_hidden
            if self._changed("cancel-hidden", not queued):
                self.cancel_button.hidden = not queued
        outputs = run.outputs if run is not None else cell.imported_outputs
        if not _same_outputs(outputs, self._outputs):
            first = self._outputs is None
            self._outputs = list(outputs)
            md = self._notebook.md
            elements = [render_output(output, md) for output in outputs]
            if not first:
                self.outputs.replaceChildren(*elements)
            elif elements:
                self.outputs.append(*elements)
            self._output_lines = sum(text_lines(output) for output in outputs)
            self._show_output_tools()

    def _changed(self, key: str, value: Any) -> bool:
        """True if the page does not show ``value`` as ``key`` yet (and from now on it does)."""
        if self._shows.get(key, _TEMPLATE_SHOWS[key]) == value:
            return False
        self._shows[key] = value
        return True

    def show_summary(self, state: NotebookState, imported: bool = False) -> None:
        """The line under the editor: state, how long it ran (or has run so far), which kernel."""
        summary = "" if self._run is None else execution_summary(self._run, state)
        if imported:
            summary = IMPORTED_NOTE
        if self._changed("summary", summary):
            self.status.textContent = summary

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
        changed = self._changed
        if changed("tools-hidden", count == 0):
            self.output_tools.hidden = count == 0
        if changed("outputs-hidden", collapsed):
            self.outputs.hidden = collapsed
        if changed("collapsed", "true" if collapsed else "false"):
            self.outputs.setAttribute("data-collapsed", "true" if collapsed else "false")
        scrolled = long and not self._scroll_whole
        if changed("scrolled", scrolled):
            self.outputs.classList.toggle("scrolled", scrolled)
        label = "expand" if collapsed else "collapse"
        if changed("collapse-label", label):
            self.collapse_button.textContent = label
        if changed("scroll-hidden", collapsed or not long):
            self.scroll_button.hidden = collapsed or not long
        label = "scroll" if self._scroll_whole else "show all"
        if changed("scroll-label", label):
            self.scroll_button.textContent = label
        if changed("note-hidden", not collapsed):
            self.collapsed_note.hidden = not collapsed
        noun = "output" if count == 1 else "outputs"
        note = f"… {count} {noun} hidden ({self._output_lines} lines): show" if collapsed else ""
        if changed("note", note):
            self.collapsed_note.textContent = note

    def show_markdown(self, rendered: bool, source: str) -> None:
        if rendered and source != self._rendered_source:
            self._rendered_source = source
            if source.strip():
                self.rendered.innerHTML = str(self._notebook.md.renderMarkdown(source))  # sanitized
            else:
                self.rendered.textContent = "Empty markdown cell: double-click to write."
        if rendered != self._shown_rendered:
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
    return b is not None and len(a) == len(b) and all(map(operator.is_, a, b))
