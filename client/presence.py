"""Who else is in the notebook, and where: the ephemeral presence channel.

Each tab posts ``{"client_id", "kind": "user", "state": {"name", "cell",
"cursor"}}`` to ``/presence`` when its cell or cursor moves (at most every
100 ms) and every 10 s as a heartbeat (the relay forgets it after 30 s of
silence), and says ``gone`` when the page goes away. Everyone's signals
come back over the notebook's SSE stream (``client.sync``).

A person's name is theirs to pick (the header's name field, ``rename``),
kept in ``localStorage`` for every notebook; until then it is "Guest xxxx".
Nothing here is stored or trusted: names are shown as text only, colours
are computed here from the sender's client id (never taken from the
signal), and cursor positions are clamped to the text we have. A position
counts code points of the sender's text, which may hold edits we have not
seen yet: close enough for a caret, and corrected by the next signal.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import js

from .model import new_id
from .relay import NetworkError, Relay

log = logging.getLogger("anode.client.presence")

TTL = 30.0
HEARTBEAT = 10.0
DEBOUNCE = 0.1
NAME_KEY = "anode-name"


@dataclass
class Person:
    client_id: str
    name: str
    cell: str | None
    cursor: tuple[int, int] | None

    @property
    def hue(self) -> int:
        return int(hashlib.sha1(self.client_id.encode()).hexdigest()[:4], 16) % 360

    @property
    def color(self) -> str:
        return f"hsl({self.hue}, 70%, 42%)"

    @property
    def tint(self) -> str:
        return f"hsla({self.hue}, 70%, 55%, 0.25)"


def local_name() -> str:
    """This browser's display name: kept in localStorage, made up the first time."""
    try:
        name = js.localStorage.getItem(NAME_KEY)
        if isinstance(name, str) and name:
            return name
        name = f"Guest {new_id()[:4]}"
        js.localStorage.setItem(NAME_KEY, name)
        return name
    except Exception:  # storage disabled
        return "Guest"


def clean_name(name: str) -> str:
    """A display name as others will see it: one line, single spaces, at most 64 characters."""
    return " ".join(name.split())[:64]


def _person(signal: dict[str, Any]) -> Person | None:
    state = signal.get("state")
    if signal.get("kind") != "user" or not isinstance(state, dict):
        return None
    name = state.get("name")
    cell = state.get("cell")
    cursor = state.get("cursor")
    ok_cursor = (
        isinstance(cursor, list)
        and len(cursor) == 2
        and all(type(v) is int and v >= 0 for v in cursor)
    )
    return Person(
        client_id=str(signal.get("client_id", "")),
        name=name[:64] if isinstance(name, str) and name else "someone",
        cell=cell if isinstance(cell, str) else None,
        cursor=(cursor[0], cursor[1]) if ok_cursor else None,
    )


class Presence:
    """Our own signal out, everyone else's in."""

    def __init__(self, relay: Relay, notebook_id: str, on_change: Callable[[], None]) -> None:
        self._relay = relay
        self._path = f"/api/notebooks/{js.encodeURIComponent(notebook_id)}/presence"
        self._on_change = on_change
        self.client_id = new_id()
        self.name = local_name()
        self.others: dict[str, Person] = {}
        self._state: dict[str, Any] = {"name": self.name, "cell": None, "cursor": None}
        self._dirty = asyncio.Event()
        self._task: asyncio.Task | None = None

    def start(self) -> None:
        self._task = asyncio.ensure_future(self._post_loop())
        self._dirty.set()

    def rename(self, name: str) -> str:
        """Show others ``name`` from now on (kept in this browser for every notebook); returns
        the name in use, unchanged if ``name`` is blank."""
        name = clean_name(name)
        if name and name != self.name:
            self.name = name
            try:
                js.localStorage.setItem(NAME_KEY, name)
            except Exception:  # storage disabled: the name lasts as long as the page
                pass
            self._state = {**self._state, "name": name}
            self._dirty.set()
        return self.name

    def move(self, cell: str | None, cursor: tuple[int, int] | None) -> None:
        """Our cell or cursor moved."""
        state = {"name": self.name, "cell": cell, "cursor": list(cursor) if cursor else None}
        if state != self._state:
            self._state = state
            self._dirty.set()

    def receive(self, signal: dict[str, Any]) -> None:
        client_id = str(signal.get("client_id", ""))
        if client_id == self.client_id:
            return
        if signal.get("gone"):
            changed = self.others.pop(client_id, None) is not None
        else:
            person = _person(signal)
            if person is None:
                return
            changed = self.others.get(client_id) != person
            self.others[client_id] = person
        if changed:
            self._on_change()

    def leave(self) -> None:
        """The page is going away: say so at once (a keepalive request outlives the page)."""
        self._relay.send_on_leave(self._path, {"client_id": self.client_id, "gone": True})
        if self._task is not None:
            self._task.cancel()

    async def _post_loop(self) -> None:
        while True:
            try:
                await asyncio.wait_for(self._dirty.wait(), HEARTBEAT)
            except TimeoutError:
                pass
            self._dirty.clear()
            body = {"client_id": self.client_id, "kind": "user", "state": self._state, "ttl": TTL}
            try:
                await self._relay.request("POST", self._path, body)
            except NetworkError:
                pass  # offline: the next heartbeat tries again
            await asyncio.sleep(DEBOUNCE)

    def cursors_in(self, cell_id: str) -> list[Person]:
        return [p for p in self.others.values() if p.cell == cell_id]
