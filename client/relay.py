"""The relay this page talks to: where it is, and requests that carry our token.

Where: ``?relay=URL`` in the page's address, else ``relay`` in the site's
``config.json`` (written by ``anode build-site``; a relay serving the page
says ``""``), else the page's own origin. A ``config.json`` that says
``"relay": null`` means no relay at all: the page is a local notebook,
kept in IndexedDB only, and cannot run code.

Every request goes through ``Relay.request``, which adds
``Authorization: Bearer <token>`` when we hold a token (``client.auth``
keeps it) and tells ``on_unauthorized`` about every 401, so one place can
ask the person for a token.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import js
from pyodide.ffi import JsProxy

from .browser import (
    NetworkError,
    fetch,
    fetch_json,
    js_object,
    json_answer,
    query_param,
    start_fetch,
)

__all__ = ["NetworkError", "Relay", "find_relay"]


class Relay:
    """One relay: its base URL (``""`` for the page's own origin) and our credential for it."""

    def __init__(self, base_url: str, token: str | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.token = token
        #: Called with the error detail whenever the relay answers 401.
        self.on_unauthorized: Callable[[str], None] = lambda _detail: None

    @property
    def origin(self) -> str:
        """The relay's address as a person would read it (also the key its token is kept under)."""
        return self.base_url or str(js.location.origin)

    @property
    def same_origin(self) -> bool:
        return not self.base_url or self.base_url == str(js.location.origin)

    def url(self, path: str) -> str:
        """``path`` (``/api/...``) on this relay."""
        return f"{self.base_url}{path}"

    def headers(self, **extra: str) -> dict[str, str]:
        headers = dict(extra)
        if self.token:
            headers["authorization"] = f"Bearer {self.token}"
        return headers

    async def request(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        """``(status, decoded JSON or None)``; ``NetworkError`` when nothing answered."""
        return await self.answer(self.send(method, path, body))

    def send(self, method: str, path: str, body: Any = None) -> JsProxy:
        """Send a request now (``answer`` reads it): for a push that must not wait a turn."""
        return start_fetch(method, self.url(path), body, headers=self.headers())

    async def answer(self, sent: JsProxy) -> tuple[int, Any]:
        status, data = await json_answer(sent)
        if status == 401:
            self.unauthorized(data)
        return status, data

    def unauthorized(self, data: Any) -> None:
        detail = data.get("detail") if isinstance(data, dict) else None
        self.on_unauthorized(str(detail or "the relay needs a token"))

    def send_on_leave(self, path: str, body: Any) -> None:
        """POST that outlives the page (a keepalive fetch: unlike a beacon, it carries our
        token)."""
        init = {
            "method": "POST",
            "keepalive": True,
            "body": json.dumps(body),
            "headers": self.headers(**{"content-type": "application/json"}),
        }
        try:
            fetch(self.url(path), js_object(init))  # offline it fails, quietly: the page is going
        except Exception:  # the page is going away: nothing to tell anyone
            pass


async def find_relay() -> str | None:
    """The relay's base URL (``""``: this origin), or None for a site with no relay."""
    from_url = query_param("relay")
    if from_url is not None:
        return from_url.rstrip("/")
    try:
        status, config = await fetch_json("GET", "./config.json")
    except NetworkError:
        return ""
    if status != 200 or not isinstance(config, dict) or "relay" not in config:
        return ""  # no config: the relay is this origin
    relay = config["relay"]
    return relay.rstrip("/") if isinstance(relay, str) else None
