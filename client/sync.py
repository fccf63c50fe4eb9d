"""Talking to the relay: push what is pending, follow the log over SSE.

Two independent loops, both restartable at any moment:

* **push**: whenever woken, POST the pending events the relay has not yet
  acknowledged, oldest first, in one batch (at most 1,000). The events keep
  their ids, so a retry after a lost answer stores nothing twice. A refused
  event (4xx) is handed back to the model, which drops it; a network error
  or 5xx waits (backoff) and tries again.
* **stream**: an ``EventSource`` on ``/stream?after=<our seq>``. ``events``
  messages go to the model in order; ``resync`` or a gap reconnects from
  our seq; an error closes it and reconnects with backoff (0.25 s doubling
  to 5 s, with jitter), at once when the browser says it is online again.

A pushed event is not "done" when the POST answers: it stays pending until
the stream serves it back, so the model learns its place in the log.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import re
from collections.abc import Callable
from typing import Any

import js

from .browser import Listeners, NetworkError, fetch_json
from .model import Gap

log = logging.getLogger("anode.client.sync")

MAX_BATCH = 1000
BACKOFF_FIRST = 0.25
BACKOFF_MAX = 5.0

_CULPRIT = re.compile(r"^events\[(\d+)\]")


def backoff(attempt: int) -> float:
    """Seconds to wait before retry ``attempt`` (1, 2, …): doubling, capped, jittered."""
    delay = min(BACKOFF_MAX, BACKOFF_FIRST * 2 ** max(0, attempt - 1))
    return delay * (0.75 + random.random() / 2)


class Sync:
    """Keeps one notebook's local log and the relay's in step."""

    def __init__(
        self,
        base_url: str,
        notebook_id: str,
        *,
        pending: Callable[[], list[dict[str, Any]]],
        head: Callable[[], int],
        on_events: Callable[[list[dict[str, Any]]], None],
        on_rejected: Callable[[str, dict[str, Any]], None],
        on_presence: Callable[[dict[str, Any]], None],
        on_status: Callable[[], None],
    ) -> None:
        self._api = f"{base_url}/api/notebooks/{notebook_id}"
        self._pending = pending
        self._head = head
        self._on_events = on_events
        self._on_rejected = on_rejected
        self._on_presence = on_presence
        self._on_status = on_status
        #: The stream is open: we see the log live.
        self.connected = False
        #: The last push reached the relay (or none has failed yet).
        self.push_ok = True
        self.last_error = ""
        self._acked: set[str] = set()
        self._wake = asyncio.Event()
        self._source: Any = None
        self._source_listeners = Listeners()
        self._window_listeners = Listeners()
        self._stream_attempt = 0
        self._reconnect_task: asyncio.Task | None = None
        self._push_task: asyncio.Task | None = None
        self._closed = False

    @property
    def online(self) -> bool:
        return self.connected and self.push_ok

    def start(self) -> None:
        self._window_listeners.on(js.window, "online", lambda _e: self._browser_online())
        self._window_listeners.on(js.window, "offline", lambda _e: self._lost("the browser is offline"))
        self._push_task = asyncio.ensure_future(self._push_loop())
        self._connect()
        self.kick()

    def close(self) -> None:
        self._closed = True
        self._window_listeners.clear()
        self._close_source()
        if self._push_task is not None:
            self._push_task.cancel()
        if self._reconnect_task is not None:
            self._reconnect_task.cancel()

    def kick(self) -> None:
        """There may be something new to push."""
        self._wake.set()

    # --- push ---------------------------------------------------------------------

    async def _push_loop(self) -> None:
        attempt = 0
        while not self._closed:
            await self._wake.wait()
            self._wake.clear()
            pending = self._pending()
            self._acked &= {event["id"] for event in pending}  # forget the confirmed
            batch = [e for e in pending if e["id"] not in self._acked][:MAX_BATCH]
            if not batch:
                continue
            try:
                status, body = await fetch_json("POST", f"{self._api}/events", {"events": batch})
            except NetworkError as error:
                status, body = 0, {"error": "network", "detail": str(error)}
            if status == 200:
                attempt = 0
                self._acked.update(event["id"] for event in batch)
                self._set_push_ok(True)
                if len(batch) == MAX_BATCH:
                    self._wake.set()
                continue
            if 400 <= status < 500 and status not in (404, 408, 429):
                self._reject(batch, body or {})
                self._wake.set()
                continue
            # Offline, relay down, overloaded, or the notebook is unknown to this
            # relay: keep everything and try again later.
            attempt += 1
            self._set_push_ok(False, (body or {}).get("detail") or f"HTTP {status}")
            await asyncio.sleep(backoff(attempt))
            self._wake.set()

    def _reject(self, batch: list[dict[str, Any]], body: dict[str, Any]) -> None:
        """Drop the event the relay named; with no culprit named, the whole batch."""
        match = _CULPRIT.match(str(body.get("path") or ""))
        culprits = [batch[int(match.group(1))]] if match and int(match.group(1)) < len(batch) else batch
        for event in culprits:
            log.error("the relay refused event %s (%s): %s", event["name"], event["id"], body)
            self._on_rejected(event["id"], body)

    def _set_push_ok(self, ok: bool, why: str = "") -> None:
        if ok != self.push_ok or why != self.last_error:
            self.push_ok = ok
            self.last_error = why
            self._on_status()

    # --- stream -------------------------------------------------------------------

    def _connect(self) -> None:
        if self._closed:
            return
        self._close_source()
        source = js.EventSource.new(f"{self._api}/stream?after={self._head()}")
        self._source = source
        listeners = self._source_listeners
        listeners.on(source, "open", lambda _e: self._opened())
        listeners.on(source, "error", lambda _e: self._lost("the relay is unreachable"))
        listeners.on(source, "events", self._events_message)
        listeners.on(source, "presence", self._presence_message)
        listeners.on(source, "resync", lambda _e: self._reconnect_now())

    def _close_source(self) -> None:
        if self._source is not None:
            self._source.close()
            self._source = None
        self._source_listeners.clear()

    def _opened(self) -> None:
        self._stream_attempt = 0
        self.connected = True
        self.push_ok = True
        self.last_error = ""
        self._on_status()
        self.kick()

    def _events_message(self, message: Any) -> None:
        try:
            self._on_events(json.loads(str(message.data)))
        except Gap as gap:
            log.warning("%s: reconnecting from our seq", gap)
            self._reconnect_now()
        except Exception:  # a bug of ours must not take the stream down with it
            log.exception("could not take in events from the stream")

    def _presence_message(self, message: Any) -> None:
        try:
            self._on_presence(json.loads(str(message.data)))
        except ValueError:
            pass

    def _lost(self, why: str) -> None:
        """The stream broke (or the browser went offline): close it and retry later."""
        if self._closed:
            return
        self._close_source()
        if self.connected or self.last_error != why:
            self.connected = False
            self.last_error = why
            self._on_status()
        self._schedule_reconnect()

    def _schedule_reconnect(self) -> None:
        if self._reconnect_task is not None and not self._reconnect_task.done():
            return
        self._stream_attempt += 1
        self._reconnect_task = asyncio.ensure_future(self._reconnect_after(backoff(self._stream_attempt)))

    async def _reconnect_after(self, delay: float) -> None:
        await asyncio.sleep(delay)
        self._connect()

    def _reconnect_now(self) -> None:
        if self._reconnect_task is not None:
            self._reconnect_task.cancel()
            self._reconnect_task = None
        self._connect()

    def _browser_online(self) -> None:
        if not self.connected:
            self._stream_attempt = 0
            self._reconnect_now()
        self.kick()
