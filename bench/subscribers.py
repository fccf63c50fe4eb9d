"""Many SSE subscribers in one separate process, noting when each event arrives.

The process runs asyncio on raw sockets (``bench.sse``), so parsing 10,000
messages a second neither shares a GIL with the writer nor with the relay.
"""

from __future__ import annotations

import asyncio
import json
import resource
import time
from typing import Any

from bench.harness import HOST, SPAWN, result_of
from bench.sse import Stream


def _subscribers(
    ports: list[int], paths: list[str], ready: Any, stop: Any, received_total: Any, out: Any
) -> None:
    """In a subscriber process: hold one SSE stream per path (on ``ports[i]`` for
    ``paths[i]``) and note when each event arrives."""
    asyncio.run(_subscribe(ports, paths, ready, stop, received_total, out))


async def _subscribe(
    ports: list[int], paths: list[str], ready: Any, stop: Any, received_total: Any, out: Any
) -> None:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    opening = asyncio.Semaphore(100)

    async def open_one(port: int, path: str) -> Stream:
        async with opening:
            return await Stream.open(HOST, port, path)

    streams = await asyncio.gather(
        *(open_one(port, path) for port, path in zip(ports, paths, strict=True))
    )
    ready.set()
    arrivals: list[dict[str, float]] = [{} for _ in streams]
    tally = {"events": 0, "duplicates": 0, "out_of_order": 0, "resyncs": 0, "ended": 0}

    async def consume(index: int, stream: Stream) -> None:
        seen = arrivals[index]
        last_seq = 0
        while True:
            try:
                messages = await stream.read()
            except (EOFError, ConnectionError):
                tally["ended"] += 1
                return
            for message in messages:
                if message.event == "resync":
                    tally["resyncs"] += 1
                if message.event != "events":
                    continue
                for event in json.loads(message.data):
                    if event["id"] in seen:
                        tally["duplicates"] += 1
                        continue
                    if event["seq"] <= last_seq:
                        tally["out_of_order"] += 1
                    last_seq = event["seq"]
                    seen[event["id"]] = message.received
                    tally["events"] += 1

    async def publish_progress() -> None:
        while True:
            received_total.value = tally["events"]
            await asyncio.sleep(0.05)

    tasks = [asyncio.create_task(consume(i, s)) for i, s in enumerate(streams)]
    progress = asyncio.create_task(publish_progress())
    await asyncio.get_running_loop().run_in_executor(None, stop.wait)
    for task in [*tasks, progress]:
        task.cancel()
    for stream in streams:
        stream.close()
    after = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (after.ru_utime + after.ru_stime) - (usage.ru_utime + usage.ru_stime)
    out.put({"arrivals": arrivals, "tally": tally, "cpu_seconds": cpu})


class SubscriberProcess:
    """A separate process holding many SSE streams (see ``_subscribers``)."""

    def __init__(self, port: int | list[int], paths: list[str]) -> None:
        """``port``: one relay for every path, or one port per path (several relays)."""
        ports = port if isinstance(port, list) else [port] * len(paths)
        self._ready = SPAWN.Event()
        self._stop = SPAWN.Event()
        self.received = SPAWN.Value("q", 0, lock=False)
        self._out = SPAWN.Queue()
        self._proc = SPAWN.Process(
            target=_subscribers,
            args=(ports, paths, self._ready, self._stop, self.received, self._out),
        )

    def __enter__(self) -> SubscriberProcess:
        self._proc.start()
        deadline = time.monotonic() + 60
        while not self._ready.wait(0.2):
            if not self._proc.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the subscribers did not connect")
        return self

    def wait_for(self, events: int, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while self.received.value < events:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.02)
        return True

    def finish(self) -> dict[str, Any]:
        self._stop.set()
        return result_of(self._proc, self._out, timeout=60)

    def __exit__(self, *exc: object) -> None:
        if self._proc.is_alive():
            self._stop.set()
            self._proc.join(10)
