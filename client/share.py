"""The share dialog: make an editor or viewer link to this notebook, copy it, revoke old ones.

Only an ``owner`` or ``admin`` sees the Share button (``client.auth``). A
link is the page's own address with ``?notebook=ID&token=…`` (and
``&relay=…`` when this page was told its relay the same way): whoever opens
it gets the token, kept by ``client.auth`` and cleared from their address
bar. Tokens are made and revoked by the relay
(``POST /api/notebooks/{nb}/tokens``, ``DELETE /api/tokens/{id}``).
"""

from __future__ import annotations

import asyncio
import datetime
import logging
from typing import Any

import js

from .browser import Listeners, query_param
from .dom import clear, h
from .links import share_link
from .relay import NetworkError, Relay

log = logging.getLogger("anode.client.share")

#: (label, seconds or None) offered for a link's lifetime.
LIFETIMES = (("7 days", 7 * 86400), ("1 day", 86400), ("30 days", 30 * 86400), ("never", None))
SHARED_ROLES = (("editor", "can edit and run"), ("viewer", "can only read"))


def _when(ts: Any) -> str:
    if ts is None:
        return "never"
    try:
        return datetime.datetime.fromtimestamp(float(ts)).strftime("%Y-%m-%d %H:%M")
    except (TypeError, ValueError, OverflowError, OSError):
        return "?"


class ShareDialog:
    """A modal ``<dialog>``; ``open()`` shows it and refreshes the list of links."""

    def __init__(self, relay: Relay, notebook_id: str) -> None:
        self._relay = relay
        self._notebook_id = notebook_id
        self._path = f"/api/notebooks/{js.encodeURIComponent(notebook_id)}/tokens"
        self._listeners = Listeners()
        self.role = h("select", {"class": "share-role", "aria-label": "Role"})
        for name, meaning in SHARED_ROLES:
            self.role.append(h("option", {"value": name}, f"{name} ({meaning})"))
        self.lifetime = h("select", {"class": "share-lifetime", "aria-label": "Expires after"})
        for index, (label, _) in enumerate(LIFETIMES):
            self.lifetime.append(h("option", {"value": str(index)}, label))
        self.create = h("button", {"class": "share-create", "type": "button"}, "Create link")
        self.link = h(
            "input",
            {
                "class": "share-link",
                "readonly": True,
                "aria-label": "Share link",
                "placeholder": "a new link appears here",
            },
        )
        self.copy = h("button", {"class": "share-copy", "type": "button", "disabled": True}, "Copy")
        self.message = h("p", {"class": "message share-message", "role": "status"})
        self.links = h("ul", {"class": "share-links"})
        close = h("button", {"class": "share-close", "type": "button"}, "Close")
        self.dialog = h(
            "dialog",
            {"class": "share-dialog"},
            h("h2", None, "Share this notebook"),
            h(
                "p",
                None,
                "Anyone with the link can open this notebook with the role you pick, until it "
                "expires or you revoke it.",
            ),
            h("div", {"class": "share-new"}, self.role, self.lifetime, self.create),
            h("div", {"class": "share-result"}, self.link, self.copy),
            self.message,
            h("h3", None, "Links made so far"),
            self.links,
            h("div", {"class": "dialog-buttons"}, close),
        )
        js.document.body.append(self.dialog)
        self._listeners.on(self.create, "click", lambda _e: asyncio.ensure_future(self._create()))
        self._listeners.on(self.copy, "click", lambda _e: asyncio.ensure_future(self._copy()))
        self._listeners.on(close, "click", lambda _e: self.dialog.close())

    def open(self) -> None:
        if not self.dialog.open:
            self.dialog.showModal()
        asyncio.ensure_future(self._refresh())

    async def _create(self) -> None:
        role = str(self.role.value)
        label, seconds = LIFETIMES[int(self.lifetime.value)]
        body = {"role": role, "expires_in": seconds, "label": f"{role} link ({label})"}
        self.create.disabled = True
        try:
            status, answer = await self._relay.request("POST", self._path, body)
        except NetworkError as error:
            status, answer = 0, {"detail": f"the relay is unreachable ({error})"}
        finally:
            self.create.disabled = False
        if status != 201 or not isinstance(answer, dict) or "token" not in answer:
            self.message.textContent = (
                f"Could not make a link: {(answer or {}).get('detail', status)}"
            )
            return
        page = f"{js.location.origin}{js.location.pathname}"
        self.link.value = share_link(
            page, self._notebook_id, str(answer["token"]), query_param("relay")
        )
        self.copy.disabled = False
        self.link.select()
        self.message.textContent = f"A {role} link, valid for {label}."
        await self._refresh()

    async def _copy(self) -> None:
        text = str(self.link.value)
        try:
            await js.navigator.clipboard.writeText(text)
        except Exception:  # no clipboard API (plain http, or denied): the old way
            self.link.select()
            js.document.execCommand("copy")
        self.message.textContent = "Copied to the clipboard."

    async def _refresh(self) -> None:
        try:
            status, body = await self._relay.request("GET", self._path)
        except NetworkError:
            return
        if status != 200 or not isinstance(body, dict):
            return
        clear(self.links)
        for token in body.get("tokens", []):
            if token.get("revoked_at") is not None:
                continue
            revoke = h(
                "button",
                {"class": "share-revoke", "type": "button", "data-token-id": token.get("id")},
                "Revoke",
            )
            token_id = token.get("id")
            self._listeners.on(
                revoke,
                "click",
                lambda _e, token_id=token_id: asyncio.ensure_future(self._revoke(token_id)),
            )
            self.links.append(
                h(
                    "li",
                    {"class": "share-token", "data-role": token.get("role")},
                    h("span", {"class": "share-token-role"}, token.get("role", "?")),
                    h(
                        "span",
                        {"class": "meta"},
                        f"{token.get('label') or ''} · expires {_when(token.get('expires_at'))}",
                    ),
                    revoke,
                )
            )

    async def _revoke(self, token_id: str) -> None:
        try:
            status, body = await self._relay.request(
                "DELETE", f"/api/tokens/{js.encodeURIComponent(token_id)}"
            )
        except NetworkError as error:
            self.message.textContent = f"Could not revoke: {error}"
            return
        if status >= 300:
            self.message.textContent = f"Could not revoke: {(body or {}).get('detail', status)}"
        await self._refresh()
