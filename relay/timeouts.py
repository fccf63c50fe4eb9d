"""Deadlines for slow clients: a request's head and its body must arrive in time.

Without them a client that sends half a request holds a connection (and,
past the head, a task) for as long as it likes: a thousand such clients
hold a thousand sockets. uvicorn times out idle keep-alive connections
only, so the head's deadline lives in its HTTP protocol class and the
body's in a pure-ASGI middleware. Long polls and streams are not affected:
their deadline ends once the request has arrived.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from .errors import ApiError

_TIMEOUT_BODY = json.dumps(
    {"error": "request_timeout", "detail": "the request head did not arrive in time"}
).encode()
_TIMEOUT_RESPONSE = (
    b"HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\nconnection: close\r\n"
    b"content-length: %d\r\n\r\n%s" % (len(_TIMEOUT_BODY), _TIMEOUT_BODY)
)


class RequestTimeout(ApiError):
    status = 408
    code = "request_timeout"
    headers = {"Connection": "close"}  # the rest of the body may never come: do not wait for it


def protocol_with_head_deadline(seconds: float) -> type[HttpToolsProtocol]:
    """uvicorn's HTTP protocol, closing a connection whose request head takes over ``seconds``.

    The clock starts when the connection opens (or a request on it begins)
    and stops when the head is complete; a connection that sends nothing
    at all is closed the same way.
    """

    class HeadDeadlineProtocol(HttpToolsProtocol):
        _head_timer: asyncio.TimerHandle | None = None

        def connection_made(self, transport: Any) -> None:
            super().connection_made(transport)
            self._arm()

        def on_message_begin(self) -> None:
            super().on_message_begin()
            if self._head_timer is None:
                self._arm()

        def on_headers_complete(self) -> None:
            self._disarm()
            super().on_headers_complete()

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            super().connection_lost(exc)

        def _arm(self) -> None:
            self._head_timer = self.loop.call_later(seconds, self._head_too_slow)

        def _disarm(self) -> None:
            if self._head_timer is not None:
                self._head_timer.cancel()
                self._head_timer = None

        def _head_too_slow(self) -> None:
            self._head_timer = None
            if not self.transport.is_closing() and (
                self.cycle is None or self.cycle.response_complete
            ):
                self.transport.write(_TIMEOUT_RESPONSE)
                self.transport.close()

    return HeadDeadlineProtocol


class BodyDeadline:
    """Pure ASGI middleware: a request's body must have arrived ``seconds`` after it began.

    A handler that reads past the deadline gets ``RequestTimeout`` (a 408
    with the usual JSON error) instead of waiting on a client that stalls.
    """

    def __init__(self, app: ASGIApp, seconds: float) -> None:
        self.app = app
        self.seconds = seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        deadline = asyncio.get_running_loop().time() + self.seconds
        complete = False

        async def receive_in_time() -> Message:
            nonlocal complete
            if complete:
                return await receive()
            try:
                # In this task (``asyncio.wait_for`` would make one per message).
                async with asyncio.timeout_at(deadline):
                    message = await receive()
            except TimeoutError:
                raise RequestTimeout(
                    f"the request body did not arrive within {self.seconds:g} seconds"
                ) from None
            complete = message["type"] != "http.request" or not message.get("more_body", False)
            return message

        await self.app(scope, receive_in_time, send)
