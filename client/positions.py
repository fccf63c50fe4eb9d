"""Positions and changes between CodeMirror (UTF-16 units) and the log (code points).

The log counts characters as Python does (code points); CodeMirror, like all
of JavaScript, counts UTF-16 units. They differ only past U+FFFF (emoji,
some CJK), so every conversion has an ASCII fast path. This is the one
place the two meet: everything behind the editor speaks code points.

Pure Python, so it is tested in CPython as well as used in Pyodide.
"""

from __future__ import annotations

from collections.abc import Sequence

from shared_schema.ot import TextOps

#: One CodeMirror change against the old document: ``[from, to, inserted]``.
Change = tuple[int, int, str]


def utf16_length(text: str) -> int:
    """How many UTF-16 units ``text`` takes in JavaScript."""
    if text.isascii():
        return len(text)
    return len(text) + sum(1 for char in text if ord(char) > 0xFFFF)


def to_utf16(text: str, index: int) -> int:
    """The UTF-16 offset of code point ``index`` in ``text``."""
    if text.isascii():
        return index
    return utf16_length(text[:index])


def from_utf16(text: str, offset: int) -> int:
    """The code point index at UTF-16 ``offset`` in ``text`` (never inside a pair)."""
    if text.isascii():
        return offset
    units = 0
    for index, char in enumerate(text):
        if units >= offset:
            return index
        units += 2 if ord(char) > 0xFFFF else 1
    return len(text)


def changes_to_ops(text: str, changes: Sequence[Sequence[object]]) -> TextOps:
    """An editor's changes (sorted, UTF-16, against ``text``) as one ot op.

    CodeMirror reports a transaction's changes in document order, each
    against the document before the transaction, which is the shape an ot
    op walks in.
    """
    ops: TextOps = []
    pos = 0  # code points of ``text`` already walked
    for raw_from, raw_to, inserted in changes:
        start = from_utf16(text, int(raw_from))  # type: ignore[arg-type]
        end = from_utf16(text, int(raw_to))  # type: ignore[arg-type]
        if start > pos:
            ops.append(start - pos)
        if inserted:
            ops.append(str(inserted))
        if end > start:
            ops.append(start - end)
        pos = max(pos, end)
    if len(text) > pos:
        ops.append(len(text) - pos)
    return ops


def ops_to_changes(text: str, ops: TextOps) -> list[Change]:
    """An ot op (against ``text``) as CodeMirror changes, in UTF-16 of ``text``."""
    changes: list[Change] = []
    pos = 0
    for component in ops:
        if isinstance(component, str):
            at = to_utf16(text, pos)
            if changes and changes[-1][1] == at and changes[-1][0] == at:
                changes[-1] = (at, at, changes[-1][2] + component)
            else:
                changes.append((at, at, component))
        elif component > 0:
            pos += component
        else:
            start, end = to_utf16(text, pos), to_utf16(text, pos - component)
            if changes and changes[-1][0] == start and changes[-1][1] == start:
                changes[-1] = (start, end, changes[-1][2])  # insert-then-delete: one replace
            else:
                changes.append((start, end, ""))
            pos -= component
    return changes
