"""Turn a running cell's outputs into events, sent through the host bridge.

``EventSink`` is the kernel's ``OutputSink``: every call becomes one event
for the running execution, queued behind earlier pushes so the log keeps
the order the cell produced. Event ids are unique per worker (a random
prefix and a counter), so a restarted worker never reuses one.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Callable
from typing import Any

from shared_schema import PushedEvent
from shared_schema import events as ev
from shared_schema.events import Event
from shared_schema.ids import EventId, ExecutionId

from .bridge import HostBridge


class EventIds:
    def __init__(self) -> None:
        self._prefix = "k" + secrets.token_hex(8)
        self._count = 0

    def next(self) -> str:
        self._count += 1
        return f"{self._prefix}-{self._count}"


def pushed(ids: EventIds, event: Event) -> dict[str, Any]:
    """``event`` as pushed, ``{"id", "name", "v", "args"}``, with the next id.

    Built from the schema's dataclass, so a renamed field or a new version is
    a failure in a CPython test, not a 400 from the relay.
    """
    return PushedEvent(EventId(ids.next()), event).to_json()


#: Events an ``EventSink`` holds at most before it sends them.
MAX_HELD = 100
#: A cell's outputs are held only in its first moments (a short cell's outputs
#: then go with its completion); later ones go at once. The same delay as the
#: ``StreamWriter``'s, which has already held text that long.
HOLD_SECONDS = 0.05


class EventSink:
    """An ``OutputSink`` that turns each output into an event of ``execution_id``.

    Outputs of the cell's first ``HOLD_SECONDS`` are held and go out
    together, one push each (so a push the relay refuses drops only that
    output), in one request:

    - as soon as the cell yields to the event loop (an ``await``): the first
      held event schedules a callback that sends;
    - on the kernel's flush tick (``send()``), which reaches a cell that
      computes without yielding;
    - with the first output after ``HOLD_SECONDS``, or the ``MAX_HELD``-th;
    - when the cell ends (``closed``): then the kernel ``take()``s them and
      sends them with the execution's ``executionCompleted``, so a short
      cell costs one request for its outputs and its completion together.

    Later outputs go at once.
    """

    def __init__(
        self,
        bridge: HostBridge,
        ids: EventIds,
        execution_id: ExecutionId,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._bridge = bridge
        self._ids = ids
        self.execution_id = execution_id
        self._clock = clock
        self._hold_until = clock() + HOLD_SECONDS
        self._held: list[dict[str, Any]] = []
        self._scheduled = False
        #: The cell has ended: what is held waits for ``take()``.
        self.closed = False

    def send(self) -> None:
        """Push what is held now."""
        if self._held:
            held, self._held = self._held, []
            self._bridge.push_many_nowait([[one] for one in held])

    def take(self) -> list[list[dict[str, Any]]]:
        """What is held, as pushes for the caller to send; the sink is closed from now on."""
        self.closed = True
        held, self._held = self._held, []
        return [[one] for one in held]

    def _send_soon(self) -> None:
        self._scheduled = False
        if not self.closed:
            self.send()

    def _send(self, event: Event) -> None:
        self._held.append(pushed(self._ids, event))
        if len(self._held) >= MAX_HELD or self._clock() >= self._hold_until:
            self.send()
        elif not self._scheduled:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:  # no loop (a test calling the sink directly): at once
                self.send()
                return
            self._scheduled = True
            loop.call_soon(self._send_soon)

    def event(self, event: Event) -> None:
        """Another event of this execution (what ``%pip`` installed), in order with its outputs."""
        self._send(event)

    def stream(self, name: str, text: str) -> None:
        self._send(ev.StreamAppended(execution_id=self.execution_id, stream=name, text=text))

    def output(self, output: dict) -> None:
        self._send(ev.OutputAdded(execution_id=self.execution_id, output=output))

    def update_display(self, display_id: str, data: dict, metadata: dict) -> None:
        update = ev.DisplayUpdated(
            execution_id=self.execution_id, display_id=display_id, data=data, metadata=metadata
        )
        self._send(update)

    def clear(self, wait: bool) -> None:
        self._send(ev.OutputsCleared(execution_id=self.execution_id, wait=wait))
