"""Talking to the relay: push what is pending, follow the log over SSE.

Two independent loops, both restartable at any moment:

* **push**: whenever woken, POST the pending events the relay has not yet
  acknowledged, oldest first, in one batch (at most 1,000). The events keep
  their ids, so a retry after a lost answer stores nothing twice; the
  answer's seqs go to the model (``NotebookModel.pushed``). A refused
  event (4xx) is handed back to the model, which drops it; a network error
  or 5xx waits (backoff) and tries again.
* **stream**: ``fetch`` of ``/stream?after=<our seq>``, read as it arrives
  (``client.sse`` parses it). Not ``EventSource``: only ``fetch`` can send
  our token in a header, and a token in a URL ends up in logs. ``events``
  messages go to the model in order; ``resync`` or a gap reconnects from
  our seq; an error or the end of the stream reconnects with backoff
  (0.25 s doubling to 5 s, with jitter), at once when the browser says it
  is online again. Every reconnect resumes from our last confirmed seq.
  A stream silent for longer than ``STALL`` (the relay pings far more
  often) counts as broken.
* **401**: nothing is dropped; both loops wait (long backoff) and
  ``Relay.on_unauthorized`` asks the person for a token.

A pushed event is not "done" when the POST answers: it stays pending until
the stream serves it back, so the model learns its place in the log.
"""

from __future__ import annotations

import asyncio
import codecs
import json
import logging
import random
import re
from collections.abc import Callable
from typing import Any

import js

from .browser import Listeners, NetworkError, fetch, js_object
from .model import Gap
from .relay import Relay
from .sse import Message, Parser

log = logging.getLogger("anode.client.sync")

MAX_BATCH = 1000
BACKOFF_FIRST = 0.25
BACKOFF_MAX = 5.0
#: Seconds without a byte (not even a ping) after which the stream counts as broken.
STALL = 60.0
#: Seconds between retries while the relay refuses our token.
UNAUTHORIZED_RETRY = 30.0

_CULPRIT = re.compile(r"^events\[(\d+)\]")


def backoff(attempt: int) -> float:
    """Seconds to wait before retry ``attempt`` (1, 2, …): doubling, capped, jittered."""
    delay = min(BACKOFF_MAX, BACKOFF_FIRST * 2 ** max(0, attempt - 1))
    return delay * (0.75 + random.random() / 2)


class Sync:
    """Keeps one notebook's local log and the relay's in step."""

    def __init__(
        self,
        relay: Relay,
        notebook_id: str,
        *,
        pending: Callable[[], list[dict[str, Any]]],
        head: Callable[[], int],
        on_events: Callable[[list[dict[str, Any]]], None],
        on_rejected: Callable[[str, dict[str, Any]], None],
        on_pushed: Callable[[dict[str, int]], None],
        on_presence: Callable[[dict[str, Any]], None],
        on_status: Callable[[], None],
    ) -> None:
        self._relay = relay
        self._api = f"/api/notebooks/{js.encodeURIComponent(notebook_id)}"
        self._pending = pending
        self._head = head
        self._on_events = on_events
        self._on_rejected = on_rejected
        self._on_pushed = on_pushed
        self._on_presence = on_presence
        self._on_status = on_status
        #: The stream is open: we see the log live.
        self.connected = False
        #: The last push reached the relay (or none has failed yet).
        self.push_ok = True
        self.last_error = ""
        #: When a push was last answered (the event loop's clock): sync is keeping up.
        self.last_push = 0.0
        self._acked: set[str] = set()
        self._wake = asyncio.Event()
        self._abort: Any = None  # the open stream's AbortController
        self._stream_task: asyncio.Task | None = None
        self._generation = 0  # which connection a stream task belongs to
        self._window_listeners = Listeners()
        self._stream_attempt = 0
        self._reconnect_task: asyncio.Task | None = None
        self._push_task: asyncio.Task | None = None
        #: A push sent by ``kick`` and not yet read by the push loop: (batch, request).
        self._sent: tuple[list[dict[str, Any]], Any] | None = None
        #: The push loop is reading an answer, or backing off: ``kick`` sends nothing.
        self._pushing = False
        self._closed = False

    @property
    def online(self) -> bool:
        return self.connected and self.push_ok

    def start(self) -> None:
        self._window_listeners.on(js.window, "online", lambda _e: self._browser_online())
        self._window_listeners.on(
            js.window, "offline", lambda _e: self._lost("the browser is offline")
        )
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
        """There may be something new to push: with none in flight, it is sent now, before
        this returns (a keystroke's push does not wait for the loop's next turn, which can
        be the next frame)."""
        if not self._pushing and self._sent is None and not self._closed:
            self._sent = self._send_next()
        self._wake.set()

    # --- push ---------------------------------------------------------------------

    def _send_next(self) -> tuple[list[dict[str, Any]], Any] | None:
        """The next batch and its request, sent; None when there is nothing to push."""
        pending = self._pending()
        self._acked &= {event["id"] for event in pending}  # forget the confirmed
        batch = [e for e in pending if e["id"] not in self._acked][:MAX_BATCH]
        if not batch:
            return None
        try:
            return batch, self._relay.send("POST", f"{self._api}/events", {"events": batch})
        except Exception as error:  # fetch refused to start (a malformed URL, say)
            return batch, error

    async def _push_loop(self) -> None:
        attempt = 0
        while not self._closed:
            if self._sent is None:
                await self._wake.wait()
            self._wake.clear()
            sent, self._sent = self._sent, None
            if sent is None:
                sent = self._send_next()
                if sent is None:
                    continue
            self._pushing = True
            try:
                attempt = await self._finish_push(*sent, attempt)
            finally:
                self._pushing = False

    async def _finish_push(self, batch: list[dict[str, Any]], sent: Any, attempt: int) -> int:
        """Read a push's answer and act on it; returns the count of failed attempts in a row
        (backing off, while it sleeps, keeps any other push from starting)."""
        try:
            if isinstance(sent, Exception):
                raise NetworkError(str(sent))
            status, body = await self._relay.answer(sent)
        except NetworkError as error:
            status, body = 0, {"error": "network", "detail": str(error)}
        if status == 200:
            self.last_push = asyncio.get_event_loop().time()
            self._acked.update(event["id"] for event in batch)
            self._set_push_ok(True)
            self._pushed(batch, body)
            if len(batch) == MAX_BATCH:
                self._wake.set()
            return 0
        if status == 401:  # keep everything; the person is asked for a token
            self._set_push_ok(False, (body or {}).get("detail") or "the relay needs a token")
            await asyncio.sleep(UNAUTHORIZED_RETRY)
            self._wake.set()
            return attempt
        if 400 <= status < 500 and status not in (404, 408, 429):
            self._reject(batch, body or {})
            self._wake.set()
            return attempt
        # Offline, relay down, overloaded, or the notebook is unknown to this
        # relay: keep everything and try again later.
        attempt += 1
        self._set_push_ok(False, (body or {}).get("detail") or f"HTTP {status}")
        await asyncio.sleep(backoff(attempt))
        self._wake.set()
        return attempt

    def _pushed(self, batch: list[dict[str, Any]], body: Any) -> None:
        seqs = body.get("seqs") if isinstance(body, dict) else None
        if not isinstance(seqs, list) or len(seqs) != len(batch):
            return
        try:
            self._on_pushed({event["id"]: int(seq) for event, seq in zip(batch, seqs, strict=True)})
        except Exception:  # a bug of ours must not stop the pushing
            log.exception("could not take in a push's answer")

    def _reject(self, batch: list[dict[str, Any]], body: dict[str, Any]) -> None:
        """Drop the event the relay named; with no culprit named, the whole batch."""
        match = _CULPRIT.match(str(body.get("path") or ""))
        culprits = (
            [batch[int(match.group(1))]] if match and int(match.group(1)) < len(batch) else batch
        )
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
        self._generation += 1
        self._abort = js.AbortController.new()
        self._stream_task = asyncio.ensure_future(self._read_stream(self._generation, self._abort))

    def _close_source(self) -> None:
        self._generation += 1  # whatever the old task hears next, it is no longer ours
        if self._abort is not None:
            self._abort.abort()
            self._abort = None
        self._stream_task = None

    async def _read_stream(self, generation: int, abort: Any) -> None:
        """One connection: open, then hand over messages until it ends or breaks."""
        url = self._relay.url(f"{self._api}/stream?after={self._head()}")
        init = {
            "method": "GET",
            "cache": "no-store",
            "headers": self._relay.headers(accept="text/event-stream"),
            "signal": abort.signal,
        }
        why = "the relay is unreachable"
        try:
            response = await fetch(url, js_object(init))
            status = int(response.status)
            if generation != self._generation:
                return
            if status == 401:
                self._relay.unauthorized(await _json_or_none(response))
                self._lost("the relay needs a token", delay=UNAUTHORIZED_RETRY)
                return
            if status != 200:
                body = await _json_or_none(response)
                self._lost((body or {}).get("detail") or f"the stream answered HTTP {status}")
                return
            self._opened()
            reader = response.body.getReader()
            decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
            parser = Parser()
            while True:
                # Awaited in this task under a deadline (``asyncio.wait_for`` would wrap it in
                # a task of its own: two more turns of the loop per chunk, each of which can
                # wait for the next frame).
                async with asyncio.timeout(STALL):
                    chunk = await reader.read()
                if generation != self._generation:
                    reader.cancel()
                    return
                if chunk.done:
                    why = "the relay closed the stream"
                    break
                for message in parser.feed(decoder.decode(chunk.value.to_bytes())):
                    self._dispatch(message)
                    if generation != self._generation:
                        return  # a message made us reconnect
        except TimeoutError:
            why = "the stream went silent"
            abort.abort()
        except Exception as error:  # a JsException: network error, or our own abort
            log.debug("stream ended: %s", error)
        if generation == self._generation:
            self._lost(why)

    def _dispatch(self, message: Message) -> None:
        if message.event == "events":
            self._events_message(message.data)
        elif message.event == "presence":
            self._presence_message(message.data)
        elif message.event == "resync":
            self._reconnect_now()

    def _opened(self) -> None:
        self._stream_attempt = 0
        self.connected = True
        self.push_ok = True
        self.last_error = ""
        self._on_status()
        self.kick()

    def _events_message(self, data: str) -> None:
        try:
            self._on_events(json.loads(data))
        except Gap as gap:
            log.warning("%s: reconnecting from our seq", gap)
            self._reconnect_now()
        except Exception:  # a bug of ours must not take the stream down with it
            log.exception("could not take in events from the stream")

    def _presence_message(self, data: str) -> None:
        try:
            self._on_presence(json.loads(data))
        except ValueError:
            pass

    def _lost(self, why: str, delay: float | None = None) -> None:
        """The stream broke (or the browser went offline): close it and retry later."""
        if self._closed:
            return
        self._close_source()
        if self.connected or self.last_error != why:
            self.connected = False
            self.last_error = why
            self._on_status()
        self._schedule_reconnect(delay)

    def _schedule_reconnect(self, delay: float | None = None) -> None:
        if self._reconnect_task is not None and not self._reconnect_task.done():
            return
        self._stream_attempt += 1
        wait = backoff(self._stream_attempt) if delay is None else delay
        self._reconnect_task = asyncio.ensure_future(self._reconnect_after(wait))

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


async def _json_or_none(response: Any) -> Any:
    try:
        return json.loads(str(await response.text()))
    except Exception:
        return None
