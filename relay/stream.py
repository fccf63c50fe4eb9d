"""The live stream: ``GET /api/notebooks/{nb}/stream`` as Server-Sent Events.

Messages:

- ``event: events`` — a JSON array of stored events; the SSE ``id`` is the
  last seq in it, so a reconnecting ``EventSource`` resumes with
  ``Last-Event-ID``;
- ``event: presence`` — one ephemeral signal (no ``id``: it is not replayed);
- ``event: resync`` — this subscriber fell too far behind; the stream ends
  and the client reconnects from ``{"after": N}``.

The subscriber joins the hub *before* reading the backlog, so nothing
published in between is missed; seqs already sent are skipped. It joins
inside the message generator, whose ``finally`` leaves: a response that
never streams (``HEAD``, a client gone before the body) never joins.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

from sse_starlette import EventSourceResponse
from starlette.requests import Request
from starlette.responses import Response

from .auth import require
from .errors import BadRequest
from .frames import frame
from .hub import EventBatch, Signal, Subscriber
from .notebooks import OpenNotebook
from .params import int_param
from .services import Services

_BACKLOG_PAGE = 1_000


async def stream(request: Request) -> Response:
    svc = request.app.state.services
    notebook_id = request.path_params["notebook"]
    grant = require(request, "read", notebook_id)
    opened = await svc.notebooks.open(notebook_id)
    after = _resume_point(request)
    svc.streams.check(grant.token_id)  # 429 now, while there is still a status to send

    async def messages() -> AsyncIterator[bytes]:
        subscriber = svc.hub.subscribe(notebook_id)
        svc.streams.enter(grant.token_id)
        try:
            with svc.revocations.watch(grant, subscriber.end):
                async for message in _follow(svc, notebook_id, opened, subscriber, after):
                    yield message
        finally:
            svc.hub.unsubscribe(subscriber)
            svc.streams.leave(grant.token_id)

    return EventSourceResponse(
        messages(),
        ping=svc.config.sse_ping_seconds,
        headers={"Cache-Control": "no-store"},
    )


async def _follow(
    svc: Services, notebook_id: str, opened: OpenNotebook, subscriber: Subscriber, after: int
) -> AsyncIterator[bytes]:
    """The stream's frames: the backlog past ``after``, who is here, then what comes.

    Ends when the subscriber is ended (its token was revoked or expired: the
    client reconnects into a 401) or told to resync.
    """
    sent = after
    while sent < opened.state.seq and not subscriber.ended:
        rows, _ = await svc.notebooks.pull(notebook_id, sent, _BACKLOG_PAGE)
        if not rows:
            break
        batch = EventBatch.of(rows)
        yield batch.frame()
        sent = batch.last_seq
    for signal in svc.presence.current(notebook_id):
        yield frame("presence", json.dumps(signal, separators=(",", ":")))
    while True:
        message = await subscriber.get()
        if subscriber.ended:
            return
        if subscriber.overflowed:
            yield frame("resync", json.dumps({"after": sent}))
            return
        if isinstance(message, Signal):
            yield message.frame()
            continue
        fresh = message.after(sent)
        if fresh is None:
            continue
        if fresh.seqs[0] != sent + 1:  # a gap: fill it from storage first
            rows, _ = await svc.notebooks.pull(notebook_id, sent, fresh.seqs[0] - sent - 1)
            if rows:
                gap = EventBatch.of(rows)
                yield gap.frame()
        yield fresh.frame()  # encoded once for all subscribers (``EventBatch.frame``)
        sent = fresh.last_seq


def _resume_point(request: Request) -> int:
    """``after`` from the query, else ``Last-Event-ID``, else 0 (the whole log)."""
    if request.query_params.get("after", "") != "":
        after = int_param(request, "after", 0, 0, 2**53)
        last_event_id = request.headers.get("last-event-id", "")
        if _is_seq(last_event_id):  # a reconnect: the browser knows better than the URL
            return max(after, int(last_event_id))
        return after
    resume = request.headers.get("last-event-id")
    if resume is None or resume == "":
        return 0
    if not _is_seq(resume):
        raise BadRequest(
            "Last-Event-ID must be a seq (a whole number)", code="invalid_last_event_id"
        )
    return int(resume)


def _is_seq(value: str) -> bool:
    """ASCII digits only: ``str.isdigit`` also accepts ``²``, which ``int()`` refuses."""
    return 0 < len(value) <= 16 and value.isascii() and value.isdigit()
