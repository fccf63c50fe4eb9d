"""Building DOM elements from Python: ``h("div", {"class": "cell"}, child, "text")``."""

from __future__ import annotations

from typing import Any

import js
from pyodide.ffi import JsProxy

#: The page's document, looked up on first use (every ``js.document`` is a call into
#: JavaScript), not at import: the Pyodide snapshot imports this module in a worker,
#: which has no document, and a snapshot must hold no JavaScript object.
_document: list[JsProxy] = []


def document() -> JsProxy:
    if not _document:
        _document.append(js.document)
    return _document[0]


def h(tag: str, attrs: dict[str, Any] | None = None, *children: Any) -> JsProxy:
    """An element with attributes (``None``/``False`` values are left out) and children."""
    element = document().createElement(tag)
    for name, value in (attrs or {}).items():
        if value is None or value is False:
            continue
        element.setAttribute(name, "" if value is True else str(value))
    for child in children:
        if child is None:
            continue
        element.append(child if not isinstance(child, (str, int, float)) else str(child))
    return element


def text_element(tag: str, class_name: str, text: str) -> JsProxy:
    """``<tag class=…>text</tag>`` in three calls into JavaScript (outputs are built by the
    hundred)."""
    element = document().createElement(tag)
    element.className = class_name
    if text:
        element.textContent = text
    return element


def set_text(element: JsProxy, text: str) -> None:
    """Replace an element's content with text (never parsed as HTML)."""
    if element.textContent != text:
        element.textContent = text


def clear(element: JsProxy) -> None:
    element.replaceChildren()
