"""The relay as a real process, measured from /proc, and the HTTP calls the benchmarks make."""

from __future__ import annotations

import json
import math
import multiprocessing as mp
import os
import queue
import re
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx

from bench.workload import Event

REPO_ROOT = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"
JSON = {"content-type": "application/json"}
#: Worker processes start fresh (no fork of a process that holds threads and sockets).
SPAWN = mp.get_context("spawn")
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


class Relay:
    """``anode serve`` on a free port; started, measured from /proc, and stopped."""

    def __init__(self, data_dir: Path, auth: bool = False, store: str | None = None) -> None:
        self.data_dir = data_dir
        #: A PostgreSQL URL (``--store``); None: SQLite under ``data_dir``.
        self.store = store
        #: With auth, requests carry the admin token the relay printed (``token``);
        #: without, the relay runs ``--no-auth`` and measures everything else.
        self.auth = auth
        self.token: str | None = None
        self.proc: subprocess.Popen[bytes] | None = None
        self.url = ""
        self.port = 0
        self._starts = 0

    def start(self, timeout: float = 30.0) -> Relay:
        python = REPO_ROOT / ".venv" / "bin" / "python"
        self._starts += 1
        log = self.data_dir.parent / f"{self.data_dir.name}-{self._starts}.log"
        self._log = log.open("wb")
        args = [str(python if python.exists() else sys.executable), "-m", "anode", "serve",
                "--host", HOST, "--port", "0", "--data", str(self.data_dir),
                *(["--push-rate", "0"] if self.auth else ["--no-auth"]),
                *(["--store", self.store] if self.store else [])]  # fmt: skip
        self.proc = subprocess.Popen(
            args, cwd=REPO_ROOT, stdout=self._log, stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )  # fmt: skip
        deadline = time.monotonic() + timeout
        while not self.url:
            match = re.search(rb"http://127\.0\.0\.1:(\d+)/(?:\?token=(\S+))?", log.read_bytes())
            if match:
                self.port = int(match.group(1))
                self.token = match.group(2).decode() if match.group(2) else None
                self.url = f"http://{HOST}:{self.port}"
            elif self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the relay did not start; see {log}")
            else:
                time.sleep(0.02)
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.url}/api/health", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                time.sleep(0.02)
        raise RuntimeError(f"the relay did not become healthy; see {log}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None
        self.url = ""
        self._log.close()

    def _status(self, key: str) -> float:
        assert self.proc is not None
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024  # kB -> MB
        return math.nan

    def rss_mb(self) -> float:
        return self._status("VmRSS")

    def peak_rss_mb(self) -> float:
        return self._status("VmHWM")

    def cpu_seconds(self) -> float:
        """User + system time of the relay's process."""
        assert self.proc is not None
        return process_cpu_seconds(self.proc.pid)


def process_cpu_seconds(pid: int) -> float:
    """User + system time of a whole process (every thread), from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS


class CpuMeter:
    """Samples the relay's CPU time so a phase can report how busy the relay was."""

    def __init__(self, relay: Relay, every: float = 0.1) -> None:
        self._relay = relay
        self._every = every
        self._samples: list[tuple[float, float]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> CpuMeter:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.is_set():
            self._samples.append((time.time(), self._relay.cpu_seconds()))
            self._stop.wait(self._every)

    def busy(self, start: float, end: float) -> float:
        """Percent of one core the relay used between two ``time.time()`` moments."""
        inside = [s for s in self._samples if start <= s[0] <= end]
        if len(inside) < 2:
            return math.nan
        (t0, c0), (t1, c1) = inside[0], inside[-1]
        return 100 * (c1 - c0) / (t1 - t0)


def http_client(url: str, timeout: float = 60.0, token: str | None = None) -> httpx.Client:
    """A keep-alive client that, like every browser, sends with ``TCP_NODELAY``."""
    transport = httpx.HTTPTransport(socket_options=[(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)])
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.Client(base_url=url, timeout=timeout, transport=transport, headers=headers)


def create_notebook(client: httpx.Client, title: str, notebook_id: str | None = None) -> str:
    body: dict[str, Any] = {"title": title}
    if notebook_id:
        body["id"] = notebook_id
    response = client.post("/api/notebooks", json=body)
    response.raise_for_status()
    return response.json()["id"]


def push(client: httpx.Client, notebook: str, events: list[Event]) -> dict[str, Any]:
    response = client.post(
        f"/api/notebooks/{notebook}/events", content=json.dumps({"events": events}), headers=JSON
    )
    response.raise_for_status()
    return response.json()


def result_of(proc: Any, out: Any, timeout: float) -> Any:
    """What a worker process put on ``out``; an error, not a hang, if it died first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            result = out.get(timeout=0.2)
        except queue.Empty:
            if not proc.is_alive():
                raise RuntimeError(f"a benchmark worker exited with code {proc.exitcode}") from None
            continue
        proc.join(10)
        return result
    proc.terminate()
    raise RuntimeError(f"a benchmark worker gave no result in {timeout:.0f} s")
