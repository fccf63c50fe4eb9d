"""The kernel's side of the host bridge: JSON strings in, JSON strings out.

The kernel's Python runs in a worker (a Node ``worker_thread`` or a browser
Web Worker). The host's main thread owns the network: it long-polls the
relay and feeds the events in, pushes what the kernel sends out in order,
heartbeats, and interrupts the worker through a SharedArrayBuffer when an
interrupt for the running cell shows up in the log. It stays responsive
while a cell spins in ``while True: pass``, which the worker cannot.

Messages, kernel → host:

- ``{"type": "push", "id": n, "events": [...]}`` — pushed in send order,
  retried until the relay answers; answered by ``pushed`` (or ``push_failed``
  for a 4xx), fire-and-forget callers ignore the answer;
- ``{"type": "session", "session_id", "lease_seconds", "status": "idle"|"busy"}`` —
  heartbeat this session with this status;
- ``{"type": "busy", "execution_id", "after": seq}`` / ``{"type": "idle"}`` —
  watch the log past ``after`` for an interrupt of this execution;
- ``{"type": "interrupt_taken", "execution_id"}`` — the SIGINT arrived; stop
  repeating it;
- ``{"type": "restart"}`` — replace this worker with a fresh interpreter;
- ``{"type": "exit", "code": n}`` — the session ended; stop the host.

Host → kernel: ``{"type": "events", "body": "<a pull's JSON>"}``,
``{"type": "pushed", "id", "seqs", "head"}``, ``{"type": "push_failed", "id",
"status", "error"}``, ``{"type": "interrupt", "execution_id"}``, ``{"type": "shutdown"}``.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any, Callable

Post = Callable[[str], None]


class PushFailed(Exception):
    """The relay refused a push (a 4xx): retrying would not help."""

    def __init__(self, status: int, error: dict[str, Any]) -> None:
        super().__init__(f"{status} {error.get('error')}: {error.get('detail')}")
        self.status = status
        self.error = error


@dataclass(frozen=True, slots=True)
class PushResult:
    seqs: list[int]
    head: int


class HostBridge:
    """Send to the host with ``post``; the host calls ``receive`` with each message."""

    def __init__(self, post: Post) -> None:
        self._post = post
        self._next_id = 0
        self._waiting: dict[int, asyncio.Future[PushResult]] = {}
        self.feed: asyncio.Queue[str] = asyncio.Queue()
        self.interrupted = asyncio.Event()
        self.shutdown_requested = asyncio.Event()
        #: The execution running now (interrupts for any other are stale).
        self.running: str | None = None

    # --- kernel -> host -----------------------------------------------------------

    def send(self, message: dict[str, Any]) -> None:
        self._post(json.dumps(message, separators=(",", ":"), ensure_ascii=False))

    def push_nowait(self, events: list[dict[str, Any]]) -> int:
        """Queue a push behind every earlier one; returns its id."""
        self._next_id += 1
        self.send({"type": "push", "id": self._next_id, "events": events})
        return self._next_id

    async def push(self, events: list[dict[str, Any]]) -> PushResult:
        """Push and wait for the relay's answer (``PushFailed`` on a 4xx)."""
        future: asyncio.Future[PushResult] = asyncio.get_running_loop().create_future()
        push_id = self.push_nowait(events)
        self._waiting[push_id] = future
        return await future

    def busy(self, execution_id: str, after: int) -> None:
        """Ask the host to watch the log past ``after`` for an interrupt of this run."""
        self.running = execution_id
        self.interrupted.clear()
        self.send({"type": "busy", "execution_id": execution_id, "after": after})

    def idle(self) -> None:
        self.running = None
        self.send({"type": "idle"})

    # --- host -> kernel -----------------------------------------------------------

    def receive(self, raw: str) -> None:
        message = json.loads(raw)
        kind = message.get("type")
        if kind == "events":
            self.feed.put_nowait(message["body"])
        elif kind == "pushed":
            future = self._waiting.pop(message["id"], None)
            if future is not None and not future.done():
                future.set_result(PushResult(message["seqs"], message["head"]))
        elif kind == "push_failed":
            future = self._waiting.pop(message["id"], None)
            if future is not None and not future.done():
                future.set_exception(PushFailed(message["status"], message.get("error") or {}))
        elif kind == "interrupt":
            if self.running is not None and message.get("execution_id") == self.running:
                self.interrupted.set()
        elif kind == "shutdown":
            self.shutdown_requested.set()
