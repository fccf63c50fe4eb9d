"""One cell's CodeMirror editor, kept equal to its ``CellEditBuffer`` text.

Local typing: CodeMirror reports each update's changes (UTF-16, against the
text before); they become one ot op in code points and go to the model.
Remote edits: the op the model rebased for us is turned back into
CodeMirror changes and dispatched as "remote" (not reported back, not in
the undo history). The cursor is moved with ``ot.transform_index`` so that
someone else typing at your cursor does not push it along.

The language only decides highlighting (and indentation, list continuation):
code cells are Python, markdown cells markdown (fenced code highlighted by its
info string), raw cells plain text.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any, Literal

from pyodide.ffi import JsProxy, create_proxy

from shared_schema import ot

from .browser import js_object
from .positions import changes_to_ops, from_utf16, ops_to_changes, to_utf16

log = logging.getLogger("anode.client.editor")

#: What an editor's text is highlighted as (client/js/editor.mjs's names).
EditorLanguage = Literal["python", "markdown", "text"]

#: A cell type's editor language (``shared_schema.events.CELL_TYPES``).
LANGUAGES: dict[str, EditorLanguage] = {"code": "python", "markdown": "markdown", "raw": "text"}


class CellEditor:
    """A CodeMirror view in ``parent`` that reports ops and takes remote ones."""

    def __init__(
        self,
        cm: Any,
        parent: JsProxy,
        text: str,
        *,
        on_edit: Callable[[ot.TextOps], None],
        on_key: Callable[[str], bool],
        on_focus: Callable[[bool], None],
        on_selection: Callable[[int, int], None] = lambda anchor, head: None,
        language: EditorLanguage = "python",
    ) -> None:
        self._cm = cm
        self._language = language
        self._text = text
        self._on_edit = on_edit
        self._on_selection = on_selection
        self._cursors: list[tuple[str, str, str, int, int]] = []
        self._proxies = [
            create_proxy(self._changed),
            create_proxy(lambda name: bool(on_key(str(name)))),
            create_proxy(lambda focused: on_focus(bool(focused))),
            create_proxy(self._selected),
        ]
        change, key, focus, selection = self._proxies
        handlers = {"change": change, "key": key, "focus": focus, "selection": selection}
        self.view = cm.createEditor(parent, text, js_object(handlers), language)

    @property
    def text(self) -> str:
        """What the editor shows, in code points (mirrors CodeMirror's document)."""
        return self._text

    def _changed(self, payload: str) -> None:
        data = json.loads(str(payload))
        ops = changes_to_ops(self._text, data["changes"])
        self._text = ot.apply(self._text, ops)
        self._on_edit(ops)
        self._report_selection(data["sel"])

    def _selected(self, payload: str) -> None:
        self._report_selection(json.loads(str(payload)))

    def _report_selection(self, selection: list[int]) -> None:
        anchor, head = (from_utf16(self._text, int(offset)) for offset in selection)
        self._on_selection(anchor, head)

    def selection(self) -> tuple[int, int]:
        """The main selection (anchor, head), in code points."""
        anchor, head = json.loads(str(self._cm.selection(self.view)))
        return from_utf16(self._text, anchor), from_utf16(self._text, head)

    def set_cursors(self, cursors: list[tuple[str, str, str, int, int]]) -> None:
        """Show others' carets: ``(name, color, tint, anchor, head)`` in code points."""
        if cursors == self._cursors:
            return
        self._cursors = cursors
        length = len(self._text)
        payload = [
            {
                "name": name,
                "color": color,
                "tint": tint,
                "anchor": to_utf16(self._text, min(anchor, length)),
                "head": to_utf16(self._text, min(head, length)),
            }
            for name, color, tint, anchor, head in cursors
        ]
        self._cm.setRemoteCursors(self.view, json.dumps(payload))

    def apply_remote(self, ops: ot.TextOps) -> None:
        """Apply someone else's edit (already rebased over ours) without moving our cursor."""
        anchor16, head16 = json.loads(str(self._cm.selection(self.view)))
        old = self._text
        new = ot.apply(old, ops)
        anchor = ot.transform_index(from_utf16(old, anchor16), ops)
        head = ot.transform_index(from_utf16(old, head16), ops)
        changes = [list(change) for change in ops_to_changes(old, ops)]
        selection = [to_utf16(new, anchor), to_utf16(new, head)]
        self._text = new
        self._cm.applyRemote(self.view, json.dumps({"changes": changes, "sel": selection}))

    def set_text(self, text: str) -> None:
        """Show ``text`` whole (after the model reset the cell to the log's text)."""
        if text != self._text:
            self._text = text
            self._cm.setText(self.view, text)

    @property
    def language(self) -> EditorLanguage:
        return self._language

    def set_language(self, language: EditorLanguage) -> None:
        """Highlight as ``language`` from now on (a cell changed type); text and cursor stay."""
        if language != self._language:
            self._language = language
            self._cm.setLanguage(self.view, language)

    def set_editable(self, editable: bool) -> None:
        """A viewer's editors take no typing (the text still follows the log)."""
        self._cm.setEditable(self.view, editable)

    def focus(self, where: str = "") -> None:
        self._cm.focus(self.view, where)

    def blur(self) -> None:
        self._cm.blur(self.view)

    def destroy(self) -> None:
        self._cm.destroy(self.view)
        for proxy in self._proxies:
            proxy.destroy()
