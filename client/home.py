"""The home view: the relay's notebooks, and a form to start a new one.

A new notebook gets one empty code cell from its creator, pushed before the
page opens it, so the first thing a person sees is a cell to type in.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
from typing import Any

import js
from pyodide.ffi import JsProxy

from .browser import Listeners, NetworkError, fetch_json
from .dom import clear, h
from .model import new_id

log = logging.getLogger("anode.client.home")


def notebook_url(notebook_id: str) -> str:
    return f"?notebook={js.encodeURIComponent(notebook_id)}"


def _when(ts: Any) -> str:
    try:
        return datetime.datetime.fromtimestamp(float(ts)).strftime("%Y-%m-%d %H:%M")
    except (TypeError, ValueError, OverflowError, OSError):
        return ""


class HomeView:
    """Lists notebooks and creates them."""

    def __init__(self, root: JsProxy, api: str) -> None:
        self._api = api
        self._listeners = Listeners()
        self.title = h("input", {"class": "new-title", "placeholder": "Untitled notebook", "aria-label": "New notebook title"})
        self.create = h("button", {"class": "create", "type": "submit"}, "New notebook")
        form = h("form", {"class": "new-notebook"}, self.title, self.create)
        self.message = h("p", {"class": "message"})
        self.list = h("ul", {"class": "notebooks"})
        clear(root)
        root.append(
            h("header", {"class": "bar"}, h("a", {"class": "home", "href": "?"}, "Anode")),
            h("main", {"class": "home-page"}, h("h1", None, "Notebooks"), form, self.message, self.list),
        )
        self._listeners.on(form, "submit", self._submit)
        js.document.title = "Anode"

    async def load(self) -> None:
        try:
            status, body = await fetch_json("GET", f"{self._api}/notebooks")
        except NetworkError:
            self.message.textContent = "The relay is unreachable: notebooks opened before still work offline."
            return
        if status != 200:
            self.message.textContent = f"The relay answered {status}."
            return
        clear(self.list)
        notebooks = body.get("notebooks", [])
        if not notebooks:
            self.message.textContent = "No notebooks yet: start one above."
        for item in notebooks:
            cells = item.get("cells", 0)
            meta = f"{cells} cell{'s' if cells != 1 else ''} · {_when(item.get('updated_at'))}"
            self.list.append(
                h("li", {"class": "notebook"},
                  h("a", {"href": notebook_url(item["id"])}, item.get("title") or "Untitled"),
                  h("span", {"class": "meta"}, meta))
            )  # fmt: skip

    def _submit(self, event: Any) -> None:
        event.preventDefault()
        asyncio.ensure_future(self._create(str(self.title.value).strip() or "Untitled"))

    async def _create(self, title: str) -> None:
        self.create.disabled = True
        try:
            status, body = await fetch_json("POST", f"{self._api}/notebooks", {"title": title})
            if status != 201:
                raise NetworkError(f"HTTP {status}: {body}")
            first_cell = {"id": new_id(), "name": "cellCreated", "v": 1,
                          "args": {"cell_id": new_id(), "cell_type": "code", "after": None}}  # fmt: skip
            await fetch_json("POST", f"{self._api}/notebooks/{body['id']}/events", {"events": [first_cell]})
        except NetworkError as error:
            self.message.textContent = f"Could not create the notebook: {error}"
            self.create.disabled = False
            return
        js.location.assign(notebook_url(body["id"]))

    def close(self) -> None:
        self._listeners.clear()
