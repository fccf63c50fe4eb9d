"""Fan-out inside one relay process: SSE subscribers and long-poll waiters.

Every subscriber has its own bounded queue, so a slow reader never blocks
the writer or the other readers: when its queue is full it is marked as
overflowed, stops receiving, and its stream tells the client to resync from
its last seq. Waiters (long polls) wait on a per-notebook ``asyncio.Event``
that is set and replaced on every append.

One message object goes to every subscriber, and it keeps its SSE frame once
encoded (``frame()``), so fanning out to N subscribers encodes it once, not N
times.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

from .frames import frame
from .storage import StoredRow


@dataclass(slots=True, eq=False)
class EventBatch:
    """Stored events, in seq order, with their served JSON bodies."""

    seqs: tuple[int, ...]
    bodies: tuple[str, ...]

    kind: Literal["events"] = "events"
    _frame: bytes | None = field(default=None, init=False, repr=False)

    @classmethod
    def of(cls, rows: Sequence[StoredRow]) -> EventBatch:
        """The batch of stored rows (in seq order), as storage hands them out."""
        return cls(tuple(row.seq for row in rows), tuple(row.body for row in rows))

    @property
    def last_seq(self) -> int:
        return self.seqs[-1]

    def after(self, seq: int) -> EventBatch | None:
        """The part of this batch past ``seq`` (None when nothing is left)."""
        if self.seqs[0] > seq:
            return self
        keep = [i for i, s in enumerate(self.seqs) if s > seq]
        if not keep:
            return None
        return EventBatch(tuple(self.seqs[i] for i in keep), tuple(self.bodies[i] for i in keep))

    def data(self) -> str:
        return "[" + ",".join(self.bodies) + "]"

    def frame(self) -> bytes:
        """``event: events``, its SSE id the last seq (``Last-Event-ID`` resumes there)."""
        if self._frame is None:
            self._frame = frame("events", self.data(), str(self.last_seq))
        return self._frame


@dataclass(slots=True, eq=False)
class Signal:
    """An ephemeral message (presence, cursor, heartbeat) as JSON."""

    data: str
    kind: Literal["presence"] = "presence"
    _frame: bytes | None = field(default=None, init=False, repr=False)

    def frame(self) -> bytes:
        """``event: presence``, without an id: a signal is never replayed."""
        if self._frame is None:
            self._frame = frame("presence", self.data)
        return self._frame


Message = EventBatch | Signal

#: Put in a queue only to wake its reader.
_WAKE = Signal("")


@dataclass(eq=False)
class Subscriber:
    notebook: str
    queue: asyncio.Queue[Message]
    overflowed: bool = False
    #: Set by ``end()``: the stream stops at its next message (a revoked token).
    ended: bool = False

    async def get(self) -> Message:
        return await self.queue.get()

    def end(self) -> None:
        """Wake the stream so that it sees ``ended`` and stops."""
        self.ended = True
        try:
            self.queue.put_nowait(_WAKE)
        except asyncio.QueueFull:
            self.overflowed = True  # it stops either way


@dataclass
class Hub:
    queue_size: int = 1_000
    _subscribers: dict[str, set[Subscriber]] = field(default_factory=dict)
    _changed: dict[str, asyncio.Event] = field(default_factory=dict)

    def subscribe(self, notebook: str) -> Subscriber:
        subscriber = Subscriber(notebook, asyncio.Queue(self.queue_size))
        self._subscribers.setdefault(notebook, set()).add(subscriber)
        return subscriber

    def unsubscribe(self, subscriber: Subscriber) -> None:
        group = self._subscribers.get(subscriber.notebook)
        if group is not None:
            group.discard(subscriber)
            if not group:
                del self._subscribers[subscriber.notebook]

    def subscriber_count(self, notebook: str | None = None) -> int:
        if notebook is not None:
            return len(self._subscribers.get(notebook, ()))
        return sum(len(group) for group in self._subscribers.values())

    def publish(self, notebook: str, message: Message) -> None:
        for subscriber in self._subscribers.get(notebook, ()):
            if subscriber.overflowed:
                continue
            try:
                subscriber.queue.put_nowait(message)
            except asyncio.QueueFull:
                subscriber.overflowed = True
        if isinstance(message, EventBatch):
            changed = self._changed.pop(notebook, None)
            if changed is not None:
                changed.set()

    def change_signal(self, notebook: str) -> asyncio.Event:
        """An event set at the next append to ``notebook``: take it, then check, then wait."""
        signal = self._changed.get(notebook)
        if signal is None:
            signal = self._changed[notebook] = asyncio.Event()
        return signal
