"""A lean Server-Sent Events client on raw asyncio sockets, for many streams per process.

httpx would do, but a benchmark process holding 1,000 streams, or parsing
10,000 messages a second, should spend its time on the relay's output and
not on its own HTTP machinery. HTTP/1.1 chunked framing and SSE parsing
are split from the I/O (``Dechunker``, ``SSEParser``, which is the client's
own parser) so each is a few lines of pure code.
"""

from __future__ import annotations

import asyncio
import codecs
import time
from dataclasses import dataclass

from client.sse import Parser


@dataclass(slots=True)
class Message:
    event: str
    data: str
    id: str | None
    received: float  # time.time() when the bytes that completed it were read


class Dechunker:
    """Undo ``Transfer-Encoding: chunked``, feeding bytes as they arrive."""

    def __init__(self) -> None:
        self._buffer = b""
        self._left = 0  # bytes of the current chunk's data still to come
        self._skip = 0  # bytes of the CRLF after a chunk's data still to skip
        self.done = False

    def feed(self, data: bytes) -> bytes:
        buffer = self._buffer + data
        out = []
        while buffer and not self.done:
            if self._skip:
                taken = min(self._skip, len(buffer))
                buffer = buffer[taken:]
                self._skip -= taken
            elif self._left:
                piece = buffer[: self._left]
                out.append(piece)
                buffer = buffer[len(piece) :]
                self._left -= len(piece)
                if not self._left:
                    self._skip = 2
            else:
                end = buffer.find(b"\r\n")
                if end < 0:
                    break
                size = int(buffer[:end].split(b";")[0], 16)
                buffer = buffer[end + 2 :]
                if size == 0:
                    self.done = True
                self._left = size
        self._buffer = buffer
        return b"".join(out)


class SSEParser:
    """Bytes in, messages out: the browser client's parser (``client.sse``, the one SSE
    parser of the project) behind an incremental UTF-8 decoder; pings are dropped."""

    def __init__(self) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")()
        self._parser = Parser()

    def feed(self, data: bytes, received: float) -> list[Message]:
        return [
            Message(message.event, message.data, message.own_id, received)
            for message in self._parser.feed(self._decoder.decode(data))
        ]


class Stream:
    """One open ``text/event-stream`` response."""

    def __init__(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, chunked: bool
    ) -> None:
        self._reader = reader
        self._writer = writer
        self._dechunker = Dechunker() if chunked else None
        self._parser = SSEParser()

    @classmethod
    async def open(cls, host: str, port: int, path: str) -> Stream:
        reader, writer = await asyncio.open_connection(host, port)
        writer.write(
            f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nAccept: text/event-stream\r\n"
            "Cache-Control: no-cache\r\n\r\n".encode()
        )
        head = await reader.readuntil(b"\r\n\r\n")
        status_line, *header_lines = head.decode("latin-1").split("\r\n")
        if status_line.split(" ")[1] != "200":
            writer.close()
            raise ConnectionError(f"GET {path}: {status_line}")
        headers = dict(line.lower().split(": ", 1) for line in header_lines if ": " in line)
        return cls(reader, writer, headers.get("transfer-encoding") == "chunked")

    async def read(self) -> list[Message]:
        """The messages completed by the next read; ``EOFError`` when the stream ends."""
        data = await self._reader.read(65_536)
        received = time.time()
        if not data:
            raise EOFError
        if self._dechunker is not None:
            data = self._dechunker.feed(data)
        return self._parser.feed(data, received)

    def close(self) -> None:
        self._writer.close()
