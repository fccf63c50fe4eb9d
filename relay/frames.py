"""Server-Sent Events framing: pure formatting, no I/O.

The relay encodes each message once, as bytes, and hands every subscriber
the same bytes; ``sse_starlette`` sends ``bytes`` through unchanged. The
format is the one ``sse_starlette.ServerSentEvent`` writes, with the same
``\\r\\n`` line ends as its pings.
"""

from __future__ import annotations

import re

_LINE_BREAK = re.compile(r"\r\n|\r|\n")


def frame(event: str, data: str, id: str | None = None) -> bytes:
    """One SSE message. A line break in ``data`` starts another ``data:`` line."""
    head = f"id: {id}\r\nevent: {event}\r\n" if id is not None else f"event: {event}\r\n"
    if "\n" in data or "\r" in data:  # never for JSON the relay wrote, which escapes them
        body = "".join(f"data: {line}\r\n" for line in _LINE_BREAK.split(data))
    else:
        body = f"data: {data}\r\n"
    return (head + body + "\r\n").encode()
