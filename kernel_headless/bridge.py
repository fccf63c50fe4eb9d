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
- ``{"type": "pushes", "pushes": [{"id", "events"}, ...]}`` — several pushes
  at once (a cell's last outputs, its completion, the next claim): the host
  sends them in one request, and on a 4xx retries them one by one, so only
  the refused one is dropped;
- ``{"type": "session", "session_id", "lease_seconds", "status": "idle"|"busy"}`` —
  heartbeat this session with this status;
- ``{"type": "busy", "execution_id", "after": seq}`` / ``{"type": "idle"}`` —
  watch the log past ``after`` for an interrupt of this execution;
- ``{"type": "interrupt_taken", "execution_id"}`` — the SIGINT arrived; stop
  repeating it;
- ``{"type": "restart"}`` — replace this worker with a fresh interpreter;
- ``{"type": "exit", "code": n}`` — the session ended; stop the host.

Host → kernel: ``{"type": "events", "body": "<a pull's JSON>", "last": seq}``,
``{"type": "pushed", "results": [{"id", "seqs"}, ...], "head"}`` (one per
request to the relay), ``{"type": "push_failed", "id", "status", "error"}``,
``{"type": "interrupt", "execution_id"}``, ``{"type": "shutdown"}``.

The bridge remembers where the relay stored each event the kernel pushed
(``own``: seq -> event), so the kernel can fold its own events without
waiting for the long poll to bring them back (see ``Kernel._fold_own``).
"""

from __future__ import annotations

import asyncio
import json
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

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
        #: Pushes whose answer someone will ask for (``answer``), and answers not asked for yet.
        self._kept: set[int] = set()
        self._answers: dict[int, PushResult | PushFailed] = {}
        #: Events of pushes not answered yet, by push id.
        self._sent: dict[int, list[dict[str, Any]]] = {}
        #: Events this kernel pushed, by the seq the relay stored them at.
        self.own: dict[int, dict[str, Any]] = {}
        #: Pull answers from the host's long poll, oldest first: (the last seq in it, its JSON).
        self.feed: deque[tuple[float, str]] = deque()
        self._wake: asyncio.Future[None] | None = None
        #: Set when the running execution is to stop; ``on_interrupt`` is called then too.
        self.interrupted = asyncio.Event()
        self.on_interrupt: Callable[[], object] | None = None
        self.shutdown_requested = asyncio.Event()
        #: The execution running now (interrupts for any other are stale).
        self.running: str | None = None

    # --- kernel -> host -----------------------------------------------------------

    def send(self, message: dict[str, Any]) -> None:
        self._post(json.dumps(message, separators=(",", ":"), ensure_ascii=False))

    def push_nowait(self, events: list[dict[str, Any]]) -> int:
        """Queue a push behind every earlier one; returns its id."""
        return self.push_many_nowait([events])[-1]

    def push_many_nowait(
        self, pushes: list[list[dict[str, Any]]], keep_last: bool = False
    ) -> list[int]:
        """Queue several pushes at once (the host sends them in one request); returns their ids.

        With ``keep_last``, the last push's answer is kept for ``answer()``.
        Needs no running event loop.
        """
        messages = []
        for events in pushes:
            self._next_id += 1
            self._sent[self._next_id] = events
            messages.append({"id": self._next_id, "events": events})
        if keep_last and messages:
            self._kept.add(messages[-1]["id"])
        if len(messages) == 1:
            self.send({"type": "push", **messages[0]})
        elif messages:
            self.send({"type": "pushes", "pushes": messages})
        return [message["id"] for message in messages]

    async def push(
        self, events: list[dict[str, Any]], before: list[list[dict[str, Any]]] | None = None
    ) -> PushResult:
        """Push and wait for the relay's answer (``PushFailed`` on a 4xx).

        ``before``: pushes to send first, in the same request; their answers are not awaited.
        """
        push_id = self.push_many_nowait([*(before or []), events], keep_last=True)[-1]
        return await self.answer(push_id)

    async def answer(self, push_id: int) -> PushResult:
        """The relay's answer to a push sent with ``keep_last`` (``PushFailed`` on a 4xx)."""
        self._kept.discard(push_id)
        answer = self._answers.pop(push_id, None)
        if answer is None:
            future: asyncio.Future[PushResult] = asyncio.get_running_loop().create_future()
            self._waiting[push_id] = future
            return await future
        if isinstance(answer, PushFailed):
            raise answer
        return answer

    async def wait_for_feed(self) -> None:
        """Until the feed holds a pull answer, or a shutdown was asked for."""
        if self.feed or self.shutdown_requested.is_set():
            return
        self._wake = asyncio.get_running_loop().create_future()
        try:
            await self._wake
        finally:
            self._wake = None

    def _wake_up(self) -> None:
        if self._wake is not None and not self._wake.done():
            self._wake.set_result(None)

    def busy(self, execution_id: str, after: int) -> None:
        """Ask the host to watch the log past ``after`` for an interrupt of this run."""
        self.running = execution_id
        self.interrupted.clear()
        self.send({"type": "busy", "execution_id": execution_id, "after": after})

    def interrupt(self) -> None:
        """Stop the running execution (the host's message, or a SIGINT that missed the cell)."""
        self.interrupted.set()
        if self.on_interrupt is not None:
            self.on_interrupt()

    def idle(self) -> None:
        self.running = None
        self.send({"type": "idle"})

    # --- host -> kernel -----------------------------------------------------------

    def receive(self, raw: str) -> None:
        message = json.loads(raw)
        kind = message.get("type")
        if kind == "events":
            self.feed.append((message.get("last", float("inf")), message["body"]))
            self._wake_up()
        elif kind == "pushed":
            head = message["head"]
            for result in message["results"]:
                push_id, seqs = result["id"], result["seqs"]
                events = self._sent.pop(push_id, None)
                if events is not None and len(events) == len(seqs):
                    self.own.update(zip(seqs, events, strict=False))
                self._answered(push_id, PushResult(seqs, head))
        elif kind == "push_failed":
            self._sent.pop(message["id"], None)
            self._answered(message["id"], PushFailed(message["status"], message.get("error") or {}))
        elif kind == "interrupt":
            if self.running is not None and message.get("execution_id") == self.running:
                self.interrupt()
        elif kind == "shutdown":
            self.shutdown_requested.set()
            self._wake_up()

    def _answered(self, push_id: int, answer: PushResult | PushFailed) -> None:
        future = self._waiting.pop(push_id, None)
        if future is not None:
            if not future.done():
                if isinstance(answer, PushFailed):
                    future.set_exception(answer)
                else:
                    future.set_result(answer)
        elif push_id in self._kept:
            self._kept.discard(push_id)
            self._answers[push_id] = answer
