"""Ephemeral signals: who is here, where their cursor is, which kernels beat.

Kept in memory with a time-to-live and never stored. Each signal is keyed by
the poster's ``client_id`` (a browser tab or a kernel session); posting again
replaces it, posting ``{"gone": true}`` or letting it expire removes it, and
every change is fanned out on the notebook's stream as ``event: presence``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

Publish = Callable[[str, dict[str, Any]], None]


@dataclass(slots=True)
class Entry:
    client_id: str
    actor: str
    kind: str
    state: dict[str, Any]
    expires_at: float  # time.monotonic()
    ttl: float

    def public(self) -> dict[str, Any]:
        return {
            "client_id": self.client_id,
            "actor": self.actor,
            "kind": self.kind,
            "state": self.state,
            "ttl": self.ttl,
        }


class NotYours(Exception):
    """The entry belongs to another credential: only its poster changes or removes it."""


class TooManyEntries(Exception):
    """The credential already holds ``max_per_actor`` entries in this notebook."""


@dataclass
class PresenceBoard:
    publish: Publish
    clock: Callable[[], float] = time.monotonic
    #: Live entries one actor may hold in one notebook (0: no limit).
    max_per_actor: int = 0
    _entries: dict[str, dict[str, Entry]] = field(default_factory=dict)

    def post(self, notebook: str, entry: Entry) -> None:
        """Add or replace ``entry``; ``NotYours`` or ``TooManyEntries`` change nothing."""
        entries = self._entries.setdefault(notebook, {})
        now = self.clock()
        known = entries.get(entry.client_id)
        if known is not None and known.expires_at > now and known.actor != entry.actor:
            raise NotYours(entry.client_id)
        if known is None and self.max_per_actor:
            held = sum(1 for e in entries.values() if e.actor == entry.actor and e.expires_at > now)
            if held >= self.max_per_actor:
                raise TooManyEntries(entry.actor)
        entries[entry.client_id] = entry
        self.publish(notebook, entry.public())

    def leave(self, notebook: str, client_id: str, actor: str) -> None:
        entries = self._entries.get(notebook, {})
        known = entries.get(client_id)
        if known is None:
            return
        if known.actor != actor and known.expires_at > self.clock():
            raise NotYours(client_id)
        del entries[client_id]
        self.publish(notebook, {"client_id": client_id, "actor": known.actor, "gone": True})

    def apply(self, notebook: str, entry: Entry | None, client_id: str, actor: str) -> None:
        """Take a post (or, with ``entry`` None, a leave) that another relay accepted."""
        entries = self._entries.setdefault(notebook, {})
        if entry is None:
            if entries.pop(client_id, None) is not None:
                self.publish(notebook, {"client_id": client_id, "actor": actor, "gone": True})
            return
        entry.expires_at = self.clock() + entry.ttl
        entries[client_id] = entry
        self.publish(notebook, entry.public())

    def current(self, notebook: str) -> list[dict[str, Any]]:
        now = self.clock()
        return [e.public() for e in self._entries.get(notebook, {}).values() if e.expires_at > now]

    def sweep(self) -> None:
        """Drop expired entries and tell subscribers they are gone."""
        now = self.clock()
        for notebook, entries in list(self._entries.items()):
            for client_id, entry in list(entries.items()):
                if entry.expires_at <= now:
                    del entries[client_id]
                    self.publish(
                        notebook, {"client_id": client_id, "actor": entry.actor, "gone": True}
                    )
            if not entries:
                del self._entries[notebook]


def encode(signal: dict[str, Any]) -> str:
    return json.dumps(signal, separators=(",", ":"), ensure_ascii=False)
