"""The home view: the relay's notebooks, and a form to start a new one.

A new notebook gets one empty code cell from its creator, pushed before the
page opens it, so the first thing a person sees is a cell to type in.

With no relay (a static site built without one) or with the relay out of
reach, the list shows the notebooks this browser holds in IndexedDB, and
with no relay "New notebook" makes a local one: it lives in this browser
only, and its code runs in this tab (``client.tab_kernel``). Opened later with a
relay (``?relay=URL``), such a notebook has a "Put on the relay" button.

"Import .ipynb" (or a file dropped on the page) makes a notebook of a
Jupyter file: on the relay, or, with none in reach, in this browser.
"""

from __future__ import annotations

import asyncio
import datetime
import json
import logging
from typing import Any

import js
from pyodide.ffi import JsProxy

from shared_schema.envelope import PushedEvent
from shared_schema.errors import SchemaError
from shared_schema.events import CellCreated
from shared_schema.ids import CellId, EventId
from shared_schema.ipynb import read_notebook

from .browser import Listeners, site_link
from .dom import clear, h
from .model import NotebookModel, Saved, new_id
from .relay import NetworkError, Relay
from .store import Store, StoreError

log = logging.getLogger("anode.client.home")


def _when(ts: Any) -> str:
    try:
        return datetime.datetime.fromtimestamp(float(ts)).strftime("%Y-%m-%d %H:%M")
    except (TypeError, ValueError, OverflowError, OSError):
        return ""


class HomeView:
    """Lists notebooks and creates them."""

    def __init__(self, root: JsProxy, relay: Relay | None) -> None:
        self._relay = relay
        self._listeners = Listeners()
        self.title = h(
            "input",
            {
                "class": "new-title",
                "placeholder": "Untitled notebook",
                "aria-label": "New notebook title",
            },
        )
        self.create = h("button", {"class": "create", "type": "submit"}, "New notebook")
        self.file_input = h(
            "input",
            {
                "type": "file",
                "class": "import-file",
                "accept": ".ipynb,application/x-ipynb+json,application/json",
                "hidden": True,
            },
        )
        self.import_button = h(
            "button",
            {
                "class": "import",
                "type": "button",
                "title": "Open a Jupyter notebook (.ipynb) as a new notebook; or drop one here",
            },
            "Import .ipynb",
        )
        form = h(
            "form",
            {"class": "new-notebook"},
            self.title,
            self.create,
            self.import_button,
            self.file_input,
        )
        self.message = h("p", {"class": "message"})
        self.list = h("ul", {"class": "notebooks"})
        self.local = h("ul", {"class": "notebooks local-notebooks"})
        self.local_heading = h("h2", {"class": "local-heading", "hidden": True}, "In this browser")
        notice = None
        if relay is None:
            notice = h(
                "p", {"class": "message no-relay"},
                "No relay: notebooks are kept in this browser only, and their code runs in this "
                "tab. To share them, open this site with a relay (anode serve; ?relay=URL).",
            )  # fmt: skip
        clear(root)
        self.page = h(
            "main",
            {"class": "home-page"},
            h("h1", None, "Notebooks"),
            notice,
            form,
            self.message,
            self.list,
            self.local_heading,
            self.local,
        )
        root.append(
            h("header", {"class": "bar"}, h("a", {"class": "home", "href": site_link()}, "Anode")),
            self.page,
        )
        self._listeners.on(form, "submit", self._submit)
        self._listeners.on(self.import_button, "click", lambda _e: self.file_input.click())
        self._listeners.on(self.file_input, "change", self._picked)
        self._listeners.on(self.page, "dragover", self._drag_over)
        self._listeners.on(self.page, "dragleave", self._drag_leave)
        self._listeners.on(self.page, "drop", self._dropped)
        js.document.title = "Anode"

    async def load(self) -> None:
        listed = await self._load_relay() if self._relay is not None else set()
        await self._load_local(listed)

    async def _load_relay(self) -> set[str]:
        assert self._relay is not None
        try:
            status, body = await self._relay.request("GET", "/api/notebooks")
        except NetworkError:
            self.message.textContent = (
                "The relay is unreachable: notebooks opened before still work offline."
            )
            return set()
        if status != 200:
            self.message.textContent = (
                f"The relay answered {status}: {(body or {}).get('detail', '')}"
            )
            return set()
        clear(self.list)
        notebooks = body.get("notebooks", [])
        if not notebooks:
            self.message.textContent = "No notebooks yet: start one above."
        for item in notebooks:
            cells = item.get("cells", 0)
            meta = f"{cells} cell{'s' if cells != 1 else ''} · {_when(item.get('updated_at'))}"
            self.list.append(
                h("li", {"class": "notebook"},
                  h("a", {"href": site_link(item["id"])}, item.get("title") or "Untitled"),
                  h("span", {"class": "meta"}, meta))
            )  # fmt: skip
        return {item["id"] for item in notebooks}

    async def _load_local(self, listed: set[str]) -> None:
        """The notebooks IndexedDB holds that the relay did not list."""
        try:
            store = await Store.open()
            ids = [notebook for notebook in await store.notebooks() if notebook not in listed]
            for notebook in ids:
                saved = await store.load(notebook)
                state = NotebookModel.restore(notebook, saved).state()
                count = len(state.visible_cells())
                item = h(
                    "li",
                    {"class": "notebook"},
                    h("a", {"href": site_link(notebook)}, state.title or "Untitled"),
                    h(
                        "span",
                        {"class": "meta"},
                        f"{count} cell{'s' if count != 1 else ''} · kept here",
                    ),
                )
                if self._relay is not None and not (saved.snapshot or saved.confirmed):
                    item.append(self._publish_button(notebook, state.title))
                self.local.append(item)
        except StoreError as error:
            log.warning("cannot list the notebooks in IndexedDB: %s", error)
            return
        self.local_heading.hidden = not ids
        if self._relay is None and not ids:
            self.message.textContent = "No notebooks in this browser yet: start one above."

    def _publish_button(self, notebook: str, title: str) -> JsProxy:
        """For a notebook no relay has seen (made here without one): put it on this relay.

        Everything such a notebook holds is pending, as if made offline; once
        the relay knows its id, opening it pushes it all, as any reconnect does.
        """
        button = h(
            "button",
            {
                "class": "publish",
                "type": "button",
                "title": "Create this notebook on the relay and send it everything kept here",
            },
            "Put on the relay",
        )

        async def publish() -> None:
            assert self._relay is not None
            button.disabled = True
            try:
                status, body = await self._relay.request(
                    "POST", "/api/notebooks", {"id": notebook, "title": title or "Untitled"}
                )
            except NetworkError as error:
                status, body = 0, {"detail": str(error)}
            if status not in (201, 409):  # 409: put there already (from another tab, say)
                why = (body or {}).get("detail") or f"HTTP {status}"
                self.message.textContent = f"Could not put the notebook on the relay: {why}"
                button.disabled = False
                return
            js.location.assign(site_link(notebook))

        self._listeners.on(button, "click", lambda _event: asyncio.ensure_future(publish()))
        return button

    def _submit(self, event: Any) -> None:
        event.preventDefault()
        asyncio.ensure_future(self._create(str(self.title.value).strip() or "Untitled"))

    async def _create(self, title: str) -> None:
        self.create.disabled = True
        try:
            notebook = await (
                self._create_local(title) if self._relay is None else self._create_on_relay(title)
            )
        except (NetworkError, StoreError) as error:
            self.message.textContent = f"Could not create the notebook: {error}"
            self.create.disabled = False
            return
        js.location.assign(site_link(notebook))

    async def _create_on_relay(self, title: str) -> str:
        assert self._relay is not None
        status, body = await self._relay.request("POST", "/api/notebooks", {"title": title})
        if status != 201:
            raise NetworkError(f"HTTP {status}: {(body or {}).get('detail', body)}")
        first_cell = PushedEvent(EventId(new_id()), CellCreated(cell_id=CellId(new_id()))).to_json()
        await self._relay.request(
            "POST", f"/api/notebooks/{body['id']}/events", {"events": [first_cell]}
        )
        return str(body["id"])

    @staticmethod
    async def _create_local(title: str) -> str:
        """A notebook in IndexedDB only: its events stay pending, as if made offline."""
        notebook = f"local-{new_id()[:12]}"
        model = NotebookModel.restore(notebook, Saved())
        model.set_title(title)
        model.create_cell(None, "code")
        store = await Store.open()
        await store.commit(notebook, model.take_changes())
        return notebook

    # --- .ipynb import -----------------------------------------------------------------

    def _picked(self, _event: Any) -> None:
        files = self.file_input.files
        if files.length:
            asyncio.ensure_future(self._import(files.item(0)))
        self.file_input.value = ""  # the same file picked again is a new import

    def _drag_over(self, event: Any) -> None:
        event.preventDefault()  # this page takes the drop
        self.page.classList.add("dropping")

    def _drag_leave(self, _event: Any) -> None:
        self.page.classList.remove("dropping")

    def _dropped(self, event: Any) -> None:
        event.preventDefault()
        self.page.classList.remove("dropping")
        files = event.dataTransfer.files if event.dataTransfer else None
        if files is not None and files.length:
            asyncio.ensure_future(self._import(files.item(0)))

    async def _import(self, file: Any) -> None:
        """Import one ``.ipynb``: through the relay (which upgrades old formats), or, with
        no relay in reach, into this browser as a local notebook."""
        name = str(file.name)
        self.import_button.disabled = True
        self.message.textContent = f"Importing {name}…"
        try:
            document = json.loads(str(await file.text()))
        except ValueError as error:
            self.message.textContent = f"{name} is not a notebook: it is not JSON ({error})"
            self.import_button.disabled = False
            return
        try:
            notebook = await self._import_on_relay(document) if self._relay else None
            if notebook is None:
                notebook = await self._import_local(document)
        except (ImportRefused, StoreError) as error:
            self.message.textContent = f"Could not import {name}: {error}"
            self.import_button.disabled = False
            return
        js.location.assign(site_link(notebook))

    async def _import_on_relay(self, document: Any) -> str | None:
        """The new notebook's id; None when the relay cannot be reached."""
        assert self._relay is not None
        try:
            status, body = await self._relay.request("POST", "/api/notebooks/import", document)
        except NetworkError:
            return None
        if status != 201:
            raise ImportRefused((body or {}).get("detail") or f"the relay answered {status}")
        return str(body["id"])

    @staticmethod
    async def _import_local(document: Any) -> str:
        try:
            plan = read_notebook(document)
        except SchemaError as error:
            raise ImportRefused(str(error)) from None
        notebook = f"local-{new_id()[:12]}"
        model = NotebookModel.restore(notebook, Saved())
        model.import_plan(plan)
        store = await Store.open()
        await store.commit(notebook, model.take_changes())
        return notebook

    def close(self) -> None:
        self._listeners.clear()


class ImportRefused(Exception):
    """An ``.ipynb`` that cannot become a notebook, and why (one line)."""
