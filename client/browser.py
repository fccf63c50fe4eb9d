"""The few browser APIs the client needs, wrapped so the rest reads as Python.

Only JSON strings and plain values cross into JavaScript here; every proxy
made for a callback is kept alive by the object that registered it.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import js
from pyodide.ffi import JsProxy, create_once_callable, create_proxy, to_js

from .links import page_link


class NetworkError(Exception):
    """The request never got an answer (offline, relay down, connection cut)."""


def js_object(value: dict[str, Any]) -> JsProxy:
    """A plain JavaScript object (not a Map) from a dict."""
    return to_js(value, dict_converter=js.Object.fromEntries)


#: One handler for every fetch's rejection, made on first use (a proxy per call would
#: leak; one made at import would end up in the page's Pyodide snapshot, which must
#: hold no JavaScript references).
_ignore_rejection: list[JsProxy] = []


def fetch(url: str, init: JsProxy) -> JsProxy:
    """``window.fetch``, its failure marked as handled.

    Awaiting the promise still raises in Python; but a task cancelled while it
    waits (going offline, a reconnect) leaves the promise to fail later with
    no one listening, which the page would report as an unhandled rejection.
    """
    if not _ignore_rejection:
        _ignore_rejection.append(create_proxy(lambda _error: None))
    promise = js.fetch(url, init)
    promise.catch(_ignore_rejection[0])  # ``catch`` is a Python keyword
    return promise


async def fetch_json(
    method: str, url: str, body: Any = None, *, headers: dict[str, str] | None = None
) -> tuple[int, Any]:
    """``(status, decoded JSON body or None)``; ``NetworkError`` when nothing answered."""
    return await json_answer(start_fetch(method, url, body, headers=headers))


def start_fetch(
    method: str, url: str, body: Any = None, *, headers: dict[str, str] | None = None
) -> JsProxy:
    """Send a JSON request now, before this returns; ``json_answer`` reads the answer.

    Awaiting a coroutine that calls ``fetch`` would send it a turn of the
    page's loop later, and a turn can wait for the next frame (~16 ms).
    """
    init: dict[str, Any] = {"method": method, "cache": "no-store"}
    sent = dict(headers or {})
    if body is not None:
        init["body"] = json.dumps(body)
        sent["content-type"] = "application/json"
    if sent:
        init["headers"] = sent
    return fetch(url, js_object(init))


async def json_answer(started: JsProxy) -> tuple[int, Any]:
    """``(status, decoded JSON body or None)`` of a ``start_fetch``; ``NetworkError`` when
    nothing answered."""
    try:
        response = await started
        text = await response.text()
    except Exception as error:  # a JsException: TypeError "Failed to fetch"
        raise NetworkError(str(error)) from None
    try:
        data = json.loads(text) if text else None
    except ValueError:
        data = None
    return int(response.status), data


class Listeners:
    """Event listeners added through one object, so they can all be removed."""

    def __init__(self) -> None:
        self._added: list[tuple[JsProxy, str, JsProxy]] = []

    def on(self, target: JsProxy, event: str, handler: Callable[[Any], Any]) -> None:
        proxy = create_proxy(handler)
        target.addEventListener(event, proxy)
        self._added.append((target, event, proxy))

    def clear(self) -> None:
        for target, event, proxy in self._added:
            target.removeEventListener(event, proxy)
            proxy.destroy()
        self._added = []


def query_param(name: str) -> str | None:
    """A parameter of the page's URL (``?notebook=ID``)."""
    params = js.URLSearchParams.new(js.location.search)
    # Missing is JavaScript null, which newer Pyodide hands over as ``jsnull``, not None.
    return str(params.get(name)) if params.has(name) else None


def site_root() -> str:
    """The page's folder: where the site's files are (``…/`` of ``…/index.html``)."""
    return str(js.URL.new(".", js.location.href).href)


def site_link(notebook_id: str | None = None) -> str:
    """A link to the home view or a notebook that keeps this page's ``?relay=``
    (``links.page_link``)."""
    return page_link(notebook_id, query_param("relay"))


def without_query_param(name: str) -> None:
    """Drop ``?name=`` from the address bar (and so from history), keeping the rest."""
    url = js.URL.new(js.location.href)
    if url.searchParams.has(name):
        url.searchParams.delete(name)
        js.history.replaceState(js.history.state, "", url.href)


def local_get(key: str) -> str | None:
    """localStorage, or None where storage is disabled."""
    try:
        value = js.localStorage.getItem(key)
    except Exception:
        return None
    return value if isinstance(value, str) else None


def local_set(key: str, value: str | None) -> None:
    try:
        if value is None:
            js.localStorage.removeItem(key)
        else:
            js.localStorage.setItem(key, value)
    except Exception:  # storage disabled or full: the value lives as long as the page
        pass


def is_online() -> bool:
    return bool(js.navigator.onLine)


def save_file(name: str, text: str, media_type: str) -> None:
    """Offer ``text`` as a download named ``name`` (a Blob behind a clicked link)."""
    blob = js.Blob.new(to_js([text]), js_object({"type": media_type}))
    url = js.URL.createObjectURL(blob)
    link = js.document.createElement("a")
    link.href = url
    link.download = name
    link.hidden = True
    js.document.body.append(link)
    link.click()
    link.remove()
    js.setTimeout(create_once_callable(lambda: js.URL.revokeObjectURL(url)), 10_000)
