"""Push writers: one process and one keep-alive raw socket each, so the relay is what is measured.

The writers used to be threads of one process with an ``httpx`` client each.
httpx spends about 400 µs of CPU per request, and the threads share one GIL,
so four of them topped out near 1,300 pushes/s with the relay's core at 60%:
the benchmark measured its own client. Here each writer is a process that
writes the request's bytes to a socket and reads back one ``Content-Length``
answer (the relay never answers a push in chunks), at about a tenth of the cost.
"""

from __future__ import annotations

import json
import os
import queue
import resource
import socket
import time
from typing import Any
from urllib.parse import urlsplit

from bench.harness import SPAWN
from bench.workload import Typist


class RawClient:
    """HTTP/1.1 POSTs over one kept-alive socket; enough HTTP for the relay's JSON answers."""

    def __init__(self, url: str, token: str | None = None, timeout: float = 60.0) -> None:
        parts = urlsplit(url)
        self._sock = socket.create_connection((parts.hostname, parts.port), timeout=timeout)
        self._sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        auth = f"Authorization: Bearer {token}\r\n" if token else ""
        self._head = f"Host: {parts.netloc}\r\n{auth}Content-Type: application/json\r\n"
        self._buffer = b""

    def close(self) -> None:
        self._sock.close()

    def post(self, path: str, body: bytes) -> tuple[int, bytes]:
        """(status, body) of ``POST path``."""
        head = f"POST {path} HTTP/1.1\r\n{self._head}Content-Length: {len(body)}\r\n\r\n"
        self._sock.sendall(head.encode() + body)
        while (end := self._buffer.find(b"\r\n\r\n")) < 0:
            self._read()
        lines = self._buffer[:end].split(b"\r\n")
        status = int(lines[0].split(b" ", 2)[1])
        length = next(
            int(line.split(b":", 1)[1])
            for line in lines
            if line.lower().startswith(b"content-length:")
        )
        while len(self._buffer) < end + 4 + length:
            self._read()
        answer = self._buffer[end + 4 : end + 4 + length]
        self._buffer = self._buffer[end + 4 + length :]
        return status, answer

    def post_json(self, path: str, value: Any) -> Any:
        status, answer = self.post(path, json.dumps(value).encode())
        if status >= 400:
            raise RuntimeError(f"POST {path}: {status} {answer[:200]!r}")
        return json.loads(answer)

    def _read(self) -> None:
        data = self._sock.recv(65536)
        if not data:
            raise ConnectionError("the relay closed the connection")
        self._buffer += data


def push_writers(
    url: str | list[str],
    notebook: str,
    batch: int,
    writers: int,
    seconds: float,
    warmup: float,
    token: str | None = None,
) -> dict[str, Any]:
    """``writers`` processes push to one notebook, each in its own cells (writer i through
    ``url[i % len(url)]`` when given several relays); their figures summed."""
    urls = url if isinstance(url, list) else [url]
    barrier = SPAWN.Barrier(writers)
    out = SPAWN.Queue()
    procs = [
        SPAWN.Process(
            target=_writer,
            args=(i, urls[i % len(urls)], notebook, batch, seconds, warmup, token, barrier, out),
        )
        for i in range(writers)
    ]
    for proc in procs:
        proc.start()
    results = _results(procs, out, timeout=seconds + warmup + 60)
    first = min(r["first"] for r in results)
    last = max(r["last"] for r in results)
    offset = time.time() - time.perf_counter()
    return {
        "acked": sum(r["acked"] for r in results),
        "pushes": sum(len(r["latencies"]) for r in results),
        "seconds": last - first,
        "latencies": [x for r in results for x in r["latencies"]],
        "window": (first + offset, last + offset),
        # Percent of one core, all writers together.
        "cpu_percent": 100 * sum(r["cpu_seconds"] for r in results) / (seconds + warmup),
    }


def _results(procs: list[Any], out: Any, timeout: float) -> list[dict[str, Any]]:
    """One result from each writer; an error, not a hang, if one died first."""
    deadline = time.monotonic() + timeout
    results: list[dict[str, Any]] = []
    while len(results) < len(procs):
        try:
            results.append(out.get(timeout=0.2))
        except queue.Empty:
            if dead := [proc for proc in procs if proc.exitcode not in (None, 0)]:
                raise RuntimeError(f"a push writer exited with code {dead[0].exitcode}") from None
            if time.monotonic() > deadline:
                raise RuntimeError(f"the push writers gave no result in {timeout:.0f} s") from None
    for proc in procs:
        proc.join()
    return results


def _writer(
    index: int,
    url: str,
    notebook: str,
    batch: int,
    seconds: float,
    warmup: float,
    token: str | None,
    barrier: Any,
    out: Any,
) -> None:
    typist = Typist(f"w{index}p{os.getpid()}", seed=index, new_cell_every=100)
    path = f"/api/notebooks/{notebook}/events"
    latencies: list[float] = []
    acked = 0
    first = last = 0.0
    client = RawClient(url, token)
    client.post_json(path, {"events": [typist.create_cell() for _ in range(4)]})
    barrier.wait()
    usage = resource.getrusage(resource.RUSAGE_SELF)
    start = time.perf_counter()
    measure_from, end = start + warmup, start + warmup + seconds
    while True:
        body = json.dumps({"events": typist.batch(batch)}).encode()
        sent = time.perf_counter()
        status, answer = client.post(path, body)
        done = time.perf_counter()
        if status != 200:
            raise RuntimeError(f"push refused: {status} {answer[:200]!r}")
        if sent >= measure_from:
            first = first or sent
            last = done
            latencies.append(done - sent)
            acked += len(json.loads(answer)["seqs"])
        if done >= end:
            break
    after = resource.getrusage(resource.RUSAGE_SELF)
    client.close()
    cpu = (after.ru_utime + after.ru_stime) - (usage.ru_utime + usage.ru_stime)
    out.put(
        {"latencies": latencies, "acked": acked, "first": first, "last": last, "cpu_seconds": cpu}
    )
