"""Outputs as DOM: text as text, images as images, anything active in a sandbox.

HTML and SVG (and so anything that may carry a script) go into an
``<iframe sandbox="allow-scripts" src="client/frame.html">``. Without
``allow-same-origin`` the frame has an opaque origin: its scripts run, but
cannot reach this page's DOM, IndexedDB, cookies, storage or token, so one
collaborator's output cannot read another's notebook or credentials.

Not ``srcdoc``: a ``srcdoc`` frame inherits the page's Content-Security-Policy,
which allows no inline script. ``frame.html`` has its own policy (inline
scripts yes, network no); when it loads it posts ``anodeFrameReady``, and
``FrameSizer`` answers with the output's document, which the frame writes
into itself. The frame then reports its height the same way. Every message
is checked to come from one of our own frames.
"""

from __future__ import annotations

import json
import re
from typing import Any

import js
from pyodide.ffi import JsProxy

from . import ansi
from .browser import Listeners, js_object
from .dom import h, text_element

#: MIME types in the order we prefer to show them.
_RICH_ORDER = (
    "text/html",
    "image/svg+xml",
    "image/png",
    "image/jpeg",
    "image/gif",
    "application/json",
    "text/markdown",
    "text/latex",
    "text/plain",
)

#: The tallest a sandboxed frame grows before it scrolls inside.
MAX_FRAME_HEIGHT = 800

# Runs inside the frame: tell the parent how tall the content is. The frame
# cannot read anything of ours, so "*" as target origin gives nothing away.
_FRAME_SIZER = """<script>(function(){
function post(){parent.postMessage({anodeFrameHeight: document.documentElement.scrollHeight}, "*");}
window.addEventListener("load", post);
if (window.ResizeObserver) new ResizeObserver(post).observe(document.documentElement);
post();})();</script>"""

_FRAME_HEAD = (
    '<!doctype html><html><head><meta charset="utf-8">'
    "<style>html,body{margin:0;padding:0;font:14px/1.4 system-ui,sans-serif;"
    "overflow-wrap:anywhere}</style></head><body>"
)


def coloured(tag_class: str, text: str, attrs: dict[str, str] | None = None) -> JsProxy:
    """A ``<pre>`` of text whose terminal colours (ANSI SGR codes) become ``<span
    class="ansi-…">``."""
    if "\x1b" not in text:  # most outputs: one text node, no parsing, no span
        pre = text_element("pre", tag_class, text)
    else:
        pre = text_element("pre", tag_class, "")
        pre.append(
            *(
                text_element("span", classes, chunk) if classes else chunk
                for chunk, classes in ansi.runs(text)
            )
        )
    for name, value in (attrs or {}).items():
        pre.setAttribute(name, value)
    return pre


def text_lines(output: dict[str, Any]) -> int:
    """About how many lines an output takes (for deciding that outputs are long)."""
    kind = output.get("output_type")
    if kind == "stream":
        return _text_of(output.get("text", "")).count("\n") + 1
    if kind == "error":
        return sum(_text_of(line).count("\n") + 1 for line in output.get("traceback") or []) or 1
    data = output.get("data") or {}
    if "text/html" in data or "image/svg+xml" in data:
        return 10
    if any(mime in data for mime in ("image/png", "image/jpeg", "image/gif")):
        return 20
    if "application/json" in data:
        return json.dumps(data["application/json"], indent=2).count("\n") + 1
    return _text_of(data.get("text/plain", "")).count("\n") + 1


def _text_of(value: Any) -> str:
    """nbformat allows multi-line strings as lists of lines."""
    return "".join(value) if isinstance(value, list) else str(value)


def frame_document(body_html: str) -> str:
    """The document a sandboxed output frame writes into itself."""
    return f"{_FRAME_HEAD}{body_html}{_FRAME_SIZER}</body></html>"


#: The sandbox page, relative to the page (so a site under a sub-path works too).
FRAME_PAGE = "./client/frame.html"


def sandboxed_frame(body_html: str) -> JsProxy:
    frame = h("iframe", {"class": "output-frame", "sandbox": "allow-scripts", "loading": "lazy"})
    frame.setAttribute("referrerpolicy", "no-referrer")
    frame.anodeHtml = frame_document(body_html)  # handed over when the frame says it is ready
    frame.src = FRAME_PAGE
    return frame


def render_output(output: dict[str, Any], md: Any = None) -> JsProxy:
    """One nbformat output as an element (``md``, vendor/bundles/markdown.js, renders markdown and
    LaTeX)."""
    kind = output.get("output_type")
    if kind == "stream":
        name = output.get("name", "stdout")
        return coloured(f"output stream {name}", _text_of(output.get("text", "")))
    if kind == "error":
        traceback = "\n".join(_text_of(line) for line in output.get("traceback") or [])
        text = traceback or f"{output.get('ename', 'Error')}: {output.get('evalue', '')}"
        return coloured("output error", text)
    if kind in ("display_data", "execute_result"):
        data = output.get("data") or {}
        # The common ``42``: the class set with the rest.
        if kind == "execute_result" and _plain_only(data):
            return coloured(
                "output text execute-result",
                _text_of(data["text/plain"]),
                {"data-mime": "text/plain"},
            )
        element = render_bundle(data, output.get("metadata") or {}, md)
        if kind == "execute_result":
            element.classList.add("execute-result")
        return element
    return h("pre", {"class": "output unknown"}, json.dumps(output)[:2000])


def _plain_only(data: dict[str, Any]) -> bool:
    """True if text/plain is the richest type in ``data`` that ``render_bundle`` would show."""
    return "text/plain" in data and not any(mime in data for mime in _RICH_ORDER[:-1])


def render_bundle(
    data: dict[str, Any], metadata: dict[str, Any] | None = None, md: Any = None
) -> JsProxy:
    """The richest MIME type of a bundle we know how to show safely."""
    metadata = metadata or {}
    for mime in _RICH_ORDER:
        if mime not in data:
            continue
        value = data[mime]
        # nbformat puts per-type metadata under the type (``{"image/png": {"width": 40}}``).
        meta = metadata.get(mime) if isinstance(metadata.get(mime), dict) else metadata
        if mime == "text/html":
            return h("div", {"class": "output html"}, sandboxed_frame(_text_of(value)))
        if mime == "image/svg+xml":
            return h("div", {"class": "output svg"}, sandboxed_frame(_text_of(value)))
        if mime in ("image/png", "image/jpeg", "image/gif"):
            encoded = re.sub(r"\s+", "", _text_of(value))
            size = {
                key: str(int(meta[key]))
                for key in ("width", "height")
                if isinstance(meta.get(key), (int, float))
            }
            image = h(
                "img", {"src": f"data:{mime};base64,{encoded}", "alt": "output image", **size}
            )
            return h("div", {"class": "output image", "data-mime": mime}, image)
        if mime == "application/json":
            budget = [JSON_NODES]
            tree = json_tree(
                value, str(meta.get("root", "root")), bool(meta.get("expanded")), 0, budget
            )
            return h("div", {"class": "output json"}, tree)
        if mime in ("text/markdown", "text/latex") and md is not None:
            element = h("div", {"class": f"output {mime.removeprefix('text/')}", "data-mime": mime})
            render = md.renderMarkdown if mime == "text/markdown" else md.renderLatex
            element.innerHTML = str(render(_text_of(value)))  # sanitized by DOMPurify
            return element
        return coloured("output text", _text_of(value), {"data-mime": mime})
    return h("pre", {"class": "output text"}, ", ".join(sorted(data)) or "(empty output)")


#: A JSON output shows at most this many values (the rest says how many it left out).
JSON_NODES = 2000


def _json_leaf(value: Any) -> JsProxy:
    kind = (
        "null"
        if value is None
        else "bool"
        if isinstance(value, bool)
        else "number"
        if isinstance(value, (int, float))
        else "string"
        if isinstance(value, str)
        else "other"
    )
    return h("span", {"class": f"json-{kind}"}, json.dumps(value, ensure_ascii=False))


def json_tree(value: Any, key: str, expanded: bool, depth: int, budget: list[int]) -> JsProxy:
    """A JSON value as nested ``<details>``: objects and arrays fold; the first level starts
    open."""
    budget[0] -= 1
    label = h("span", {"class": "json-key"}, f"{key}: ")
    if not isinstance(value, (dict, list)):
        return h("div", {"class": "json-item"}, label, _json_leaf(value))
    items = list(value.items()) if isinstance(value, dict) else list(enumerate(value))
    brackets = "{}" if isinstance(value, dict) else "[]"
    noun = "key" if isinstance(value, dict) else "item"
    summary = h(
        "summary",
        None,
        label,
        h(
            "span",
            {"class": "json-count"},
            f"{brackets[0]}…{brackets[1]} {len(items)} {noun}{'' if len(items) == 1 else 's'}",
        ),
    )
    node = h("details", {"class": "json-node", "open": expanded or depth == 0}, summary)
    for index, (child_key, child) in enumerate(items):
        if budget[0] <= 0:
            node.append(h("div", {"class": "json-item json-more"}, f"… {len(items) - index} more"))
            break
        node.append(json_tree(child, str(child_key), expanded, depth + 1, budget))
    return node


def _same_object(a: Any, b: Any) -> bool:
    return bool(getattr(js.Object, "is")(a, b))


def _our_frame(source: Any) -> JsProxy | None:
    """The output frame whose window sent a message, or None."""
    if source is None:
        return None
    for frame in js.document.querySelectorAll("iframe.output-frame"):
        if _same_object(frame.contentWindow, source):
            return frame
    return None


class FrameSizer:
    """Fills sandboxed frames when they are ready, and sizes them from their reports."""

    def __init__(self) -> None:
        self._listeners = Listeners()
        self._listeners.on(js.window, "message", self._message)

    def _message(self, event: Any) -> None:
        frame = _our_frame(event.source)
        if frame is None:
            return
        data = event.data
        if getattr(data, "anodeFrameReady", False):
            html = getattr(frame, "anodeHtml", None)
            if isinstance(html, str):
                frame.anodeHtml = None  # once: a script in the frame may say "ready" again
                event.source.postMessage(js_object({"anodeFrameHtml": html}), "*")
            return
        try:
            height = float(data.anodeFrameHeight)
        except (AttributeError, TypeError, ValueError):
            return
        if height >= 0:  # not NaN
            frame.style.height = f"{min(int(height) + 2, MAX_FRAME_HEIGHT)}px"

    def close(self) -> None:
        self._listeners.clear()
