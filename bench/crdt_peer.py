"""The peer for sustained edits: pycrdt-websocket, the sync server of JupyterLab's collaboration.

``PeerServer`` runs ``pycrdt.websocket.WebsocketServer`` behind the
``websockets`` library (on uvloop, like the relay) in a process of its own.
Compression is off: no client here offers it, and it would only cost the
server more. Writers send real Yjs updates (``pycrdt``, one small insert
each, as a person's keystrokes make them) at a paced rate; subscribers
count the updates the server broadcasts. Both speak WebSocket over raw
asyncio streams, so the clients' processes spend their time on the server's
output and not on a client library.

``sustained_rate`` raises the offered rate step by step and keeps the
highest one every subscriber received whole, within ``GRACE`` of the last
send: the server's most, not a rate it falls behind at.
"""

from __future__ import annotations

import asyncio
import base64
import os
import struct
import time
from typing import Any

from bench.harness import HOST, SPAWN, process_cpu_seconds

#: How long after its last send a step's updates may still arrive to count as kept up with.
GRACE = 0.5
#: The room every client joins (pycrdt-websocket names rooms by path).
ROOM = "/bench"


# --- the server -------------------------------------------------------------------------


def _serve(port: Any, ready: Any) -> None:
    import uvloop

    uvloop.run(_serve_async(port, ready))


async def _serve_async(port: Any, ready: Any) -> None:
    from pycrdt import Channel
    from pycrdt.websocket import WebsocketServer
    from websockets.asyncio.server import ServerConnection, serve
    from websockets.exceptions import ConnectionClosed

    class Connection(Channel):
        """A ``websockets`` connection as the channel pycrdt-websocket serves."""

        def __init__(self, websocket: ServerConnection) -> None:
            self._websocket = websocket
            self._path = websocket.request.path if websocket.request else ROOM

        @property
        def path(self) -> str:
            return self._path

        def __aiter__(self) -> Connection:
            return self

        async def __anext__(self) -> bytes:
            try:
                return await self.recv()
            except ConnectionClosed:
                raise StopAsyncIteration from None

        async def send(self, message: bytes) -> None:
            await self._websocket.send(message)

        async def recv(self) -> bytes:
            message = await self._websocket.recv()
            return message if isinstance(message, bytes) else message.encode()

    async with WebsocketServer(auto_clean_rooms=False) as server:

        async def handler(websocket: ServerConnection) -> None:
            await server.serve(Connection(websocket))

        async with serve(handler, HOST, 0, compression=None, max_size=None) as listening:
            port.value = listening.sockets[0].getsockname()[1]
            ready.set()
            await asyncio.Future()


class PeerServer:
    """pycrdt-websocket on a free port, in a process of its own."""

    def __init__(self) -> None:
        self._port = SPAWN.Value("i", 0)
        self._ready = SPAWN.Event()
        self._proc = SPAWN.Process(target=_serve, args=(self._port, self._ready), daemon=True)
        self.port = 0

    def __enter__(self) -> PeerServer:
        self._proc.start()
        if not self._ready.wait(30):
            raise RuntimeError("pycrdt-websocket did not start")
        self.port = self._port.value
        return self

    def __exit__(self, *exc: object) -> None:
        self._proc.terminate()
        self._proc.join(10)

    def cpu_seconds(self) -> float:
        assert self._proc.pid is not None
        return process_cpu_seconds(self._proc.pid)


# --- WebSocket on raw streams --------------------------------------------------------------


async def _connect(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection(HOST, port)
    key = base64.b64encode(os.urandom(16)).decode()
    writer.write(
        f"GET {ROOM} HTTP/1.1\r\nHost: {HOST}:{port}\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
        "Sec-WebSocket-Version: 13\r\n\r\n".encode()
    )
    head = await reader.readuntil(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 101"):
        raise ConnectionError(f"no WebSocket: {head[:80]!r}")
    return reader, writer


def _frame(payload: bytes, opcode: int = 0x2) -> bytes:
    """A client's frame (binary by default). The mask is all zeros (any key is valid), so
    the payload goes as it is."""
    size = len(payload)
    if size < 126:
        head = struct.pack("!BB", 0x80 | opcode, 0x80 | size)
    elif size < 65536:
        head = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, size)
    else:
        head = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, size)
    return head + b"\0\0\0\0" + payload


async def _close(writer: asyncio.StreamWriter) -> None:
    """Say goodbye as WebSocket asks (pycrdt-websocket's room fails on a connection that
    just drops)."""
    writer.write(_frame(struct.pack("!H", 1000), opcode=0x8))
    await writer.drain()
    await asyncio.sleep(0.05)
    writer.close()


class _Frames:
    """Counts the Yjs updates in a server's (unmasked) frames, fed bytes as they come."""

    def __init__(self) -> None:
        self._buffer = b""
        self.updates = 0

    def feed(self, data: bytes) -> None:
        buffer = self._buffer + data
        at, end = 0, len(buffer)
        while end - at >= 2:
            size = buffer[at + 1] & 0x7F
            start = at + 2
            if size == 126:
                if end - at < 4:
                    break
                size = int.from_bytes(buffer[at + 2 : at + 4], "big")
                start = at + 4
            elif size == 127:
                if end - at < 10:
                    break
                size = int.from_bytes(buffer[at + 2 : at + 10], "big")
                start = at + 10
            if end < start + size:
                break
            if buffer[start : start + 2] == b"\x00\x02":  # sync message, update
                self.updates += 1
            at = start + size
        self._buffer = buffer[at:]


# --- the clients ----------------------------------------------------------------------------


def _updates(count: int) -> list[bytes]:
    """``count`` Yjs update messages of one person typing words into a text."""
    from pycrdt import Doc, Text, create_update_message

    doc = Doc()
    text = doc.get("source", type=Text)
    made: list[bytes] = []
    doc.observe(lambda event: made.append(create_update_message(event.update)))
    words = ("x", " = ", "print(", "1", ")\n", "for i in range(3):", "\n    ")
    length = 0
    for index in range(count):
        word = words[index % len(words)]
        text.insert(length, word)
        length += len(word)
    return made


def _subscribe(port: int, count: int, ready: Any, stop: Any, least: Any) -> None:
    asyncio.run(_subscribe_async(port, count, ready, stop, least))


async def _subscribe_async(port: int, count: int, ready: Any, stop: Any, least: Any) -> None:
    """Hold ``count`` connections; keep ``least`` at the fewest updates any of them got."""
    connections = [await _connect(port) for _ in range(count)]
    tallies = [_Frames() for _ in connections]

    async def read(reader: asyncio.StreamReader, tally: _Frames) -> None:
        while data := await reader.read(1 << 16):
            tally.feed(data)

    tasks = [
        asyncio.create_task(read(reader, tally))
        for (reader, _), tally in zip(connections, tallies, strict=True)
    ]
    ready.set()
    while not stop.is_set():
        least.value = min(tally.updates for tally in tallies)
        await asyncio.sleep(0.005)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*(_close(writer) for _, writer in connections))


def _write(port: int, writers: int, rate: float, seconds: float, out: Any) -> None:
    asyncio.run(_write_async(port, writers, rate, seconds, out))


async def _write_async(port: int, writers: int, rate: float, seconds: float, out: Any) -> None:
    """``writers`` connections sending ``rate`` updates a second between them."""
    each = max(1, round(rate * seconds / writers))
    batches = [_updates(each) for _ in range(writers)]
    connections = [await _connect(port) for _ in range(writers)]

    async def drain(reader: asyncio.StreamReader) -> None:  # the server echoes to everyone
        while await reader.read(1 << 16):
            pass

    drains = [asyncio.create_task(drain(reader)) for reader, _ in connections]
    start = time.perf_counter()

    async def send(updates: list[bytes], writer: asyncio.StreamWriter) -> None:
        sent = 0
        while sent < len(updates):
            due = min(len(updates), int((time.perf_counter() - start) * rate / writers) + 1)
            while sent < due:
                writer.write(_frame(updates[sent]))
                sent += 1
            await writer.drain()
            await asyncio.sleep(0.001)

    await asyncio.gather(
        *(send(updates, w) for updates, (_, w) in zip(batches, connections, strict=True))
    )
    ended = time.perf_counter()
    offset = time.time() - ended
    out.put({"sent": each * writers, "start": start + offset, "end": ended + offset})
    await asyncio.sleep(GRACE * 2)  # let the server finish with these connections' echoes
    for task in drains:
        task.cancel()
    await asyncio.gather(*(_close(writer) for _, writer in connections))


def sustained_rate(
    server: PeerServer, rates: tuple[float, ...], seconds: float, subscribers: int, writers: int
) -> list[dict[str, Any]]:
    """One step per offered rate (updates/s, all writers together) while every step keeps
    up; each step's figures."""
    ready, stop, least = SPAWN.Event(), SPAWN.Event(), SPAWN.Value("q", 0, lock=False)
    listeners = SPAWN.Process(
        target=_subscribe, args=(server.port, subscribers, ready, stop, least)
    )
    listeners.start()
    steps: list[dict[str, Any]] = []
    try:
        if not ready.wait(30):
            raise RuntimeError("the pycrdt subscribers did not connect")
        expected = 0
        for rate in rates:
            out = SPAWN.Queue()
            cpu = server.cpu_seconds()
            proc = SPAWN.Process(target=_write, args=(server.port, writers, rate, seconds, out))
            proc.start()
            sent = out.get(timeout=seconds + 60)
            expected += sent["sent"]
            deadline = sent["end"] + GRACE
            while least.value < expected and time.time() < deadline:
                time.sleep(0.005)
            kept_up = least.value >= expected
            steps.append(
                {
                    "offered": rate,
                    "sent_rate": sent["sent"] / (sent["end"] - sent["start"]),
                    "kept_up": kept_up,
                    "cpu": 100 * (server.cpu_seconds() - cpu) / (time.time() - sent["start"]),
                }
            )
            proc.join(30)
            if not kept_up:
                break
            while least.value < expected:  # the next step starts with nothing in flight
                time.sleep(0.01)
    finally:
        stop.set()
        listeners.join(10)
    return steps
