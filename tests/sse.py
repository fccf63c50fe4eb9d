"""A small Server-Sent Events reader for tests: real sockets, parsed by hand.

``messages(response)`` turns an ``httpx.stream(...)`` response into
``Message(event, id, data)`` tuples, following the ``text/event-stream``
rules browsers use: ``event:``/``id:``/``data:`` fields, a blank line ends a
message, ``:`` starts a comment (the relay's pings), several ``data:`` lines
join with ``\\n``. ``Message.id`` is the ``id:`` field of that message
(``None`` when it has none); unlike ``EventSource.lastEventId`` it does not
carry over, so a test can see which messages name a resume point.

``Subscription`` reads one stream on a thread into a queue, so a test can
hold several subscribers at once, stop reading one of them, and close any of
them from the test's thread.
"""

from __future__ import annotations

import json
import queue
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import Any, NamedTuple

import httpx

from client.sse import Parser


class Message(NamedTuple):
    event: str
    id: str | None
    data: str

    def json(self) -> Any:
        return json.loads(self.data)


def messages(response: httpx.Response) -> Iterator[Message]:
    """Yield each message of an SSE response, in order, until the stream ends.

    Parsed by the browser client's own parser (``client.sse``), the one SSE
    parser of the project.
    """
    parser = Parser()
    for text in response.iter_text():
        for message in parser.feed(text):
            yield Message(message.event, message.own_id, message.data)


@contextmanager
def read_stream(
    url: str, *, last_event_id: str | None = None, timeout: float = 10.0
) -> Iterator[Iterator[Message]]:
    """``with read_stream(url) as stream: for message in stream: ...`` on the calling thread."""
    headers = {"Accept": "text/event-stream"}
    if last_event_id is not None:
        headers["Last-Event-ID"] = last_event_id
    with httpx.stream("GET", url, headers=headers, timeout=httpx.Timeout(timeout)) as response:
        if response.status_code != 200:
            raise AssertionError(
                f"stream answered {response.status_code}: {response.read().decode()}"
            )
        yield messages(response)


def stream_url(base: str, notebook: str, after: int | None = None) -> str:
    url = f"{base}/api/notebooks/{notebook}/stream"
    return url if after is None else f"{url}?after={after}"


class Closed(NamedTuple):
    """Put on a subscription's queue when its stream ends (``error`` if it broke)."""

    error: str | None


class Subscription:
    """One SSE subscriber reading on its own thread.

    The constructor returns once the response headers arrived. The relay
    subscribes the stream just before it sends the backlog, so once the first
    message has been read, anything published from then on reaches it.
    """

    def __init__(
        self,
        base: str,
        notebook: str,
        *,
        after: int | None = None,
        last_event_id: str | None = None,
        paused: bool = False,
        socket_options: list[tuple[int, int, int]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        headers = {"Accept": "text/event-stream", **(headers or {})}
        if last_event_id is not None:
            headers["Last-Event-ID"] = last_event_id
        transport = httpx.HTTPTransport(socket_options=socket_options) if socket_options else None
        self._client = httpx.Client(timeout=httpx.Timeout(10.0, read=None), transport=transport)
        self._request = self._client.build_request(
            "GET", stream_url(base, notebook, after), headers=headers
        )
        self.queue: queue.Queue[Message | Closed] = queue.Queue()
        self._reading = threading.Event()
        if not paused:
            self._reading.set()
        self._closing = False
        self.response = self._client.send(self._request, stream=True)
        if self.response.status_code != 200:
            body = self.response.read().decode()
            self.response.close()
            self._client.close()
            raise AssertionError(f"stream answered {self.response.status_code}: {body}")
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        error = None
        try:
            self._reading.wait()
            for message in messages(self.response):
                self.queue.put(message)
                self._reading.wait()
        except (httpx.HTTPError, OSError) as exc:
            if not self._closing:
                error = repr(exc)
        self.queue.put(Closed(error))

    # --- control ----------------------------------------------------------------

    def pause(self) -> None:
        """Stop reading after the message in hand: the socket's buffers fill up."""
        self._reading.clear()

    def resume(self) -> None:
        self._reading.set()

    def close(self) -> None:
        """Close from any thread; a read blocked in ``recv`` wakes up at once."""
        self._closing = True
        self._reading.set()
        stream = self.response.extensions.get("network_stream")
        sock = stream.get_extra_info("socket") if stream is not None else None
        if isinstance(sock, socket.socket):
            with suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        self._thread.join(5)
        with suppress(Exception):
            self.response.close()
        self._client.close()

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # --- reading ----------------------------------------------------------------

    def next(self, timeout: float = 10.0) -> Message | Closed:
        try:
            return self.queue.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"no SSE message within {timeout} s") from None

    def next_of(self, event: str, timeout: float = 10.0) -> Message:
        """The next message of type ``event``, skipping others."""
        deadline = time.monotonic() + timeout
        while True:
            message = self.next(max(0.0, deadline - time.monotonic()))
            if isinstance(message, Closed):
                raise AssertionError(
                    f"the stream ended ({message.error}) before an {event!r} message"
                )
            if message.event == event:
                return message

    def events_until(
        self, seq: int, timeout: float = 10.0
    ) -> tuple[list[dict[str, Any]], list[Message]]:
        """Read until an ``events`` message reaches ``seq``.

        Returns the stored events received and every ``events`` message (to
        check SSE ids); presence messages are skipped.
        """
        deadline = time.monotonic() + timeout
        received: list[dict[str, Any]] = []
        batches: list[Message] = []
        while not received or received[-1]["seq"] < seq:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                last = received[-1]["seq"] if received else None
                raise AssertionError(f"stream reached seq {last}, not {seq}, within {timeout} s")
            message = self.next(remaining)
            if isinstance(message, Closed):
                raise AssertionError(f"the stream ended ({message.error}) before seq {seq}")
            if message.event == "events":
                batches.append(message)
                received.extend(message.json())
        return received, batches
