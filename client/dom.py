"""Building DOM elements from Python: ``h("div", {"class": "cell"}, child, "text")``."""

from __future__ import annotations

from typing import Any

import js
from pyodide.ffi import JsProxy



def h(tag: str, attrs: dict[str, Any] | None = None, *children: Any) -> JsProxy:
    """An element with attributes (``None``/``False`` values are left out) and children."""
    element = js.document.createElement(tag)
    for name, value in (attrs or {}).items():
        if value is None or value is False:
            continue
        element.setAttribute(name, "" if value is True else str(value))
    for child in children:
        if child is None:
            continue
        element.append(child if not isinstance(child, (str, int, float)) else str(child))
    return element


def set_text(element: JsProxy, text: str) -> None:
    """Replace an element's content with text (never parsed as HTML)."""
    if element.textContent != text:
        element.textContent = text


def clear(element: JsProxy) -> None:
    element.replaceChildren()
