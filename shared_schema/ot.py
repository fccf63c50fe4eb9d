"""Operational transform for plain text, in the ot.js ``TextOperation`` form.

An op is a list that walks the *whole* base document from start to end:

* a positive int ``n`` keeps the next ``n`` characters,
* a negative int ``-n`` deletes the next ``n`` characters,
* a non-empty str inserts that text.

Lengths count Unicode code points (Python ``len``), the same in CPython and
in Pyodide. An editor that counts UTF-16 units (CodeMirror) converts at its
own boundary; everything behind it speaks code points.

The normal form is the one ot.js keeps: no zeros or empty strings, adjacent
components of one kind merged, and where an insert meets a delete the insert
comes first. A trailing retain is kept, so ``base_length`` is always readable
from the op alone.

The relay, the browser and the kernel all run this file, so it is pure
standard-library Python with no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

__all__ = [
    "OTError",
    "TextOps",
    "apply",
    "base_length",
    "compose",
    "diff",
    "is_noop",
    "normalize",
    "target_length",
    "transform",
    "transform_index",
    "validate",
]

TextOps = list[int | str]

# Lone surrogates cannot be encoded as UTF-8, so a text holding one could be
# neither stored nor sent on; they never come from a real keyboard.
_SURROGATE = re.compile("[\ud800-\udfff]")

# What a _Reader is looking at.
_END, _RETAIN, _DELETE, _INSERT = 0, 1, 2, 3


class OTError(ValueError):
    """A malformed op, or an op that does not fit the text it is used on."""


def validate(ops: object, *, max_components: int = 100_000) -> TextOps:
    """Check an op from an untrusted source and return it normalized.

    Stricter than ``normalize``: zeros and empty strings are rejected rather
    than dropped, since no honest client sends them.
    """
    if not isinstance(ops, list):
        raise OTError(f"ops must be a list, not {type(ops).__name__}")
    if len(ops) > max_components:
        raise OTError(f"ops has {len(ops)} components; the limit is {max_components}")
    for i, component in enumerate(ops):
        if isinstance(component, str):
            if not component:
                raise OTError(f"ops[{i}] is an empty insert")
            if _SURROGATE.search(component):
                raise OTError(f"ops[{i}] holds a lone surrogate")
        elif type(component) is int:
            if component == 0:
                raise OTError(f"ops[{i}] is zero")
        else:
            raise OTError(f"ops[{i}] must be an int or a str, not {type(component).__name__}")
    return normalize(ops)


def normalize(ops: Iterable[int | str]) -> TextOps:
    """The normal form of ``ops``: same effect, one way to write it.

    Dropping zeros and merging neighbours lets ops be compared with ``==``.
    """
    out = _Builder()
    for i, component in enumerate(_sequence(ops)):
        if isinstance(component, str):
            out.insert(component)
        elif type(component) is int:
            if component > 0:
                out.retain(component)
            else:
                out.delete(-component)
        else:
            raise OTError(f"ops[{i}] must be an int or a str, not {type(component).__name__}")
    return out.result()


def normalize_newlines(text: str) -> str:
    """``text`` with every ``\r\n`` and lone ``\r`` made ``\n``: a cell's one line ending."""
    return text.replace("\r\n", "\n").replace("\r", "\n") if "\r" in text else text


def newlines_in_inserts(ops: TextOps) -> TextOps:
    """``ops`` with its inserted text's line endings normalized (retains and deletes untouched)."""
    if not any(isinstance(c, str) and "\r" in c for c in ops):
        return ops
    return [normalize_newlines(c) if isinstance(c, str) else c for c in ops]


def base_length(ops: Iterable[int | str]) -> int:
    """Length of the text ``ops`` applies to."""
    return sum(abs(c) for c in _checked(ops) if not isinstance(c, str))


def target_length(ops: Iterable[int | str]) -> int:
    """Length of the text ``ops`` produces."""
    return sum(len(c) if isinstance(c, str) else c for c in _checked(ops) if not _is_delete(c))


def is_noop(ops: Iterable[int | str]) -> bool:
    """True if ``ops`` changes nothing (only retains), so it need not be sent."""
    return all((c == "") if isinstance(c, str) else c >= 0 for c in _checked(ops))


def apply(text: str, ops: Iterable[int | str]) -> str:
    """The text after ``ops``; ``OTError`` unless ``ops`` spans exactly ``text``.

    One pass, without normalizing first: zeros and split neighbours change
    nothing here, and folding a long log applies every edit once more.
    """
    pieces: list[str] = []
    pos = 0
    for i, component in enumerate(_sequence(ops)):
        if isinstance(component, str):
            pieces.append(component)
        elif type(component) is int:
            if component > 0:
                pieces.append(text[pos : pos + component])
                pos += component
            else:
                pos -= component
        else:
            raise OTError(f"ops[{i}] must be an int or a str, not {type(component).__name__}")
    if pos != len(text):
        raise OTError(f"op's base length {pos} does not match the text's length {len(text)}")
    return "".join(pieces)


def compose(a: Iterable[int | str], b: Iterable[int | str]) -> TextOps:
    """One op with the effect of ``a`` then ``b``.

    How a client folds many keystrokes into the single edit it keeps buffered.
    """
    a, b = normalize(a), normalize(b)
    if target_length(a) != base_length(b):
        raise OTError(
            f"cannot compose: first op's target length {target_length(a)} "
            f"!= second op's base length {base_length(b)}"
        )
    ra, rb = _Reader(a), _Reader(b)
    out = _Builder()
    while True:
        if ra.kind == _DELETE:  # gone before b sees it
            out.delete(ra.skip(ra.remaining))
            continue
        if rb.kind == _INSERT:  # new in b, a never saw it
            out.insert(rb.take_text(rb.remaining))
            continue
        if ra.kind == _END:  # lengths matched, so b is at its end too
            return out.result()
        kind_a, kind_b = ra.kind, rb.kind
        n = min(ra.remaining, rb.remaining)
        piece = ra.take_text(n) if kind_a == _INSERT else ra.skip(n)
        rb.skip(n)
        if kind_b == _RETAIN:
            if isinstance(piece, str):
                out.insert(piece)
            else:
                out.retain(n)
        elif kind_a == _RETAIN:  # b deletes text a kept; b deleting a's insert leaves nothing
            out.delete(n)


def transform(a: Iterable[int | str], b: Iterable[int | str]) -> tuple[TextOps, TextOps]:
    """Rebase two concurrent ops over each other.

    Returns ``(a', b')`` with ``apply(apply(s, a), b') == apply(apply(s, b), a')``.
    When both insert at one position, ``a``'s text goes first: pass the op
    that is already in the log as ``a`` and every party breaks ties alike.
    """
    a, b = normalize(a), normalize(b)
    if base_length(a) != base_length(b):
        raise OTError(
            f"cannot transform ops with different base lengths "
            f"{base_length(a)} and {base_length(b)}"
        )
    ra, rb = _Reader(a), _Reader(b)
    a2, b2 = _Builder(), _Builder()
    while True:
        if ra.kind == _INSERT:
            text = ra.take_text(ra.remaining)
            a2.insert(text)
            b2.retain(len(text))
            continue
        if rb.kind == _INSERT:
            text = rb.take_text(rb.remaining)
            a2.retain(len(text))
            b2.insert(text)
            continue
        if ra.kind == _END:  # equal base lengths, so b is at its end too
            return a2.result(), b2.result()
        kind_a, kind_b = ra.kind, rb.kind
        n = min(ra.remaining, rb.remaining)
        ra.skip(n)
        rb.skip(n)
        if kind_a == _RETAIN and kind_b == _RETAIN:
            a2.retain(n)
            b2.retain(n)
        elif kind_a == _DELETE and kind_b == _RETAIN:
            a2.delete(n)
        elif kind_a == _RETAIN and kind_b == _DELETE:
            b2.delete(n)
        # both delete the same text: neither needs to any more


def diff(old: str, new: str) -> TextOps:
    """An op turning ``old`` into ``new``: keep the common prefix and suffix.

    For a change whose keystrokes are unknown, such as a whole text pasted in
    by a program; not a minimal edit script, but exact for one contiguous change.
    """
    limit = min(len(old), len(new))
    prefix = 0
    while prefix < limit and old[prefix] == new[prefix]:
        prefix += 1
    suffix = 0
    while suffix < limit - prefix and old[-1 - suffix] == new[-1 - suffix]:
        suffix += 1
    out = _Builder()
    out.retain(prefix)
    out.insert(new[prefix : len(new) - suffix])
    out.delete(len(old) - prefix - suffix)
    out.retain(suffix)
    return out.result()


def transform_index(index: int, ops: Iterable[int | str], *, own: bool = False) -> int:
    """Where a cursor at ``index`` ends up after ``ops``.

    Text inserted before the cursor pushes it right; text deleted around it
    pulls it to the start of the deletion. Text inserted exactly at the
    cursor pushes it right only when ``own`` is true: your own typing moves
    your cursor along, someone else's typing at your cursor does not.
    """
    if type(index) is not int:
        raise OTError(f"a cursor must be an int, not {type(index).__name__}")
    ops = normalize(ops)
    if not 0 <= index <= base_length(ops):
        raise OTError(f"index {index} is outside the op's base text (length {base_length(ops)})")
    moved = index
    pos = 0  # position in the base text
    for component in ops:
        if pos > index:
            break
        if isinstance(component, str):
            if pos < index or own:
                moved += len(component)
        elif component > 0:
            pos += component
        else:
            moved -= min(-component, index - pos)
            pos -= component
    return moved


def _sequence(ops: Iterable[int | str]) -> Sequence[int | str]:
    """``ops`` if it is a list or tuple: a string, a dict or a set iterates, but is no op."""
    if not isinstance(ops, (list, tuple)):
        raise OTError(f"ops must be a list, not {type(ops).__name__}")
    return ops


def _checked(ops: Iterable[int | str]) -> Iterable[int | str]:
    for i, component in enumerate(_sequence(ops)):
        if not isinstance(component, str) and type(component) is not int:
            raise OTError(f"ops[{i}] must be an int or a str, not {type(component).__name__}")
        yield component


def _is_delete(component: int | str) -> bool:
    return not isinstance(component, str) and component < 0


class _Builder:
    """Appends components and keeps the result in normal form.

    Inserts are gathered as pieces and joined once, so building an op from
    many one-character inserts stays linear.
    """

    __slots__ = ("_ops", "_retain", "_inserts", "_delete")

    def __init__(self) -> None:
        self._ops: TextOps = []
        self._retain = 0
        self._inserts: list[str] = []
        self._delete = 0

    def retain(self, n: int) -> None:
        if n > 0:
            self._flush_change()
            self._retain += n

    def insert(self, text: str) -> None:
        if text:
            self._flush_retain()
            self._inserts.append(text)

    def delete(self, n: int) -> None:
        if n > 0:
            self._flush_retain()
            self._delete += n

    def result(self) -> TextOps:
        self._flush_retain()
        self._flush_change()
        return self._ops

    def _flush_retain(self) -> None:
        if self._retain:
            self._ops.append(self._retain)
            self._retain = 0

    def _flush_change(self) -> None:
        # Insert before delete: the ot.js convention, and it makes the form unique.
        if self._inserts:
            self._ops.append("".join(self._inserts))
            self._inserts = []
        if self._delete:
            self._ops.append(-self._delete)
            self._delete = 0


class _Reader:
    """Walks a normalized op, handing out its components in pieces."""

    __slots__ = ("_ops", "_index", "_offset", "_text", "kind", "remaining")

    def __init__(self, ops: TextOps) -> None:
        self._ops = ops
        self._index = 0
        self._offset = 0
        self._text = ""  # the current component, when it is an insert
        self.kind = _END
        self.remaining = 0
        self._load()

    def take_text(self, n: int) -> str:
        """The next ``n`` characters of the current component, an insert (n <= remaining)."""
        piece = self._text[self._offset : self._offset + n]
        self.skip(n)
        return piece

    def skip(self, n: int) -> int:
        """Move past ``n`` units of the current component (n <= remaining); returns ``n``."""
        self._offset += n
        self.remaining -= n
        if self.remaining == 0:
            self._index += 1
            self._offset = 0
            self._load()
        return n

    def _load(self) -> None:
        if self._index >= len(self._ops):
            self.kind, self.remaining = _END, 0
            return
        component = self._ops[self._index]
        if isinstance(component, str):
            self.kind, self.remaining, self._text = _INSERT, len(component), component
        elif component > 0:
            self.kind, self.remaining = _RETAIN, component
        else:
            self.kind, self.remaining = _DELETE, -component
