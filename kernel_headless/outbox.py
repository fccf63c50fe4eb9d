"""Turn a running cell's outputs into events, sent through the host bridge.

``EventSink`` is the kernel's ``OutputSink``: every call becomes one event
for the running execution, queued behind earlier pushes so the log keeps
the order the cell produced. Event ids are unique per worker (a random
prefix and a counter), so a restarted worker never reuses one.
"""

from __future__ import annotations

import secrets
from typing import Any

from .bridge import HostBridge


class EventIds:
    def __init__(self) -> None:
        self._prefix = "k" + secrets.token_hex(8)
        self._count = 0

    def next(self) -> str:
        self._count += 1
        return f"{self._prefix}-{self._count}"


def event(ids: EventIds, name: str, **args: Any) -> dict[str, Any]:
    """A pushable event: ``{"id", "name", "v", "args"}``."""
    return {"id": ids.next(), "name": name, "v": 1, "args": args}


class EventSink:
    """An ``OutputSink`` that pushes each output as an event of ``execution_id``."""

    def __init__(self, bridge: HostBridge, ids: EventIds, execution_id: str) -> None:
        self._bridge = bridge
        self._ids = ids
        self._execution_id = execution_id

    def _send(self, name: str, **args: Any) -> None:
        self._bridge.push_nowait([event(self._ids, name, execution_id=self._execution_id, **args)])

    def stream(self, name: str, text: str) -> None:
        self._send("streamAppended", stream=name, text=text)

    def output(self, output: dict) -> None:
        self._send("outputAdded", output=output)

    def update_display(self, display_id: str, data: dict, metadata: dict) -> None:
        self._send("displayUpdated", display_id=display_id, data=data, metadata=metadata)

    def clear(self, wait: bool) -> None:
        self._send("outputsCleared", wait=wait)
