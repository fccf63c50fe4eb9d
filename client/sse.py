"""Server-Sent Events, parsed from text as it arrives (pure Python; tested in CPython).

The client reads the relay's stream with ``fetch`` rather than
``EventSource``, because only ``fetch`` can send ``Authorization`` (an
``EventSource`` would need the token in the stream's URL, where logs and
proxies keep it). This is the parsing half of the WHATWG "event stream"
format: lines end in LF, CRLF or CR; ``event:``, ``data:`` (joined with
LF), ``id:`` and ``retry:`` fields; a blank line dispatches; a line starting
with ``:`` is a comment (the relay's keep-alive pings).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

_LINE = re.compile(r"\r\n|\r|\n")


@dataclass(frozen=True, slots=True)
class Message:
    event: str
    data: str
    #: The last ``id:`` of the stream so far (``EventSource.lastEventId``).
    id: str | None
    #: This message's own ``id:`` field, or None: which messages name a resume point.
    own_id: str | None = field(default=None, compare=False)


class Parser:
    """Feed it text chunks; it returns the messages each chunk completes."""

    def __init__(self) -> None:
        #: The unfinished line, as the chunks that brought it: a line of megabytes that
        #: arrives in kilobytes is joined and split once, when it ends, not once a chunk.
        self._partial: list[str] = []
        self._event = ""
        self._data: list[str] = []
        self._own_id: str | None = None
        #: The last ``id:`` seen (what ``Last-Event-ID`` would carry).
        self.last_id: str | None = None
        #: The last ``retry:`` the server asked for, in milliseconds.
        self.retry_ms: int | None = None

    def feed(self, text: str) -> list[Message]:
        held_cr = bool(self._partial) and self._partial[-1].endswith("\r")
        self._partial.append(text)
        if "\n" not in text and "\r" not in text and not held_cr:
            return []  # the line goes on
        buffer = "".join(self._partial)
        # A CR at the very end may be the first half of a CRLF: keep it for the next chunk.
        end = len(buffer) - 1 if buffer.endswith("\r") else len(buffer)
        lines = _LINE.split(buffer[:end])
        rest = lines.pop() + buffer[end:]
        self._partial = [rest] if rest else []
        messages = []
        for line in lines:
            message = self._line(line)
            if message is not None:
                messages.append(message)
        return messages

    def _line(self, line: str) -> Message | None:
        if line == "":
            return self._dispatch()
        if line.startswith(":"):
            return None
        name, colon, value = line.partition(":")
        if colon and value.startswith(" "):
            value = value[1:]
        if name == "event":
            self._event = value
        elif name == "data":
            self._data.append(value)
        elif name == "id" and "\0" not in value:
            self.last_id = self._own_id = value
        elif name == "retry" and value.isdigit():
            self.retry_ms = int(value)
        return None

    def _dispatch(self) -> Message | None:
        event, data, own_id = self._event or "message", self._data, self._own_id
        self._event, self._data, self._own_id = "", [], None
        if not data:
            return None
        return Message(event=event, data="\n".join(data), id=self.last_id, own_id=own_id)
