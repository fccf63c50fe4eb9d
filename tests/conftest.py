"""Shared fixtures: an in-process client for most tests, real servers for the rest.

- ``client``: Starlette's TestClient over a relay on a temporary SQLite store.
- ``relay_process``: starts ``python -m anode serve`` as a real process on a
  free port (for kill -9, restarts and anything that needs a real socket).
- ``relay_thread``: a real uvicorn server in a thread, for tests that need a
  socket *and* a non-default ``RelayConfig`` (tiny queues, short leases).
- ``postgres``: the URL of a throw-away PostgreSQL database for one test
  (``tests/postgres_server.py``).
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from relay.app import create_app
from relay.config import RelayConfig
from tests.admin import AdminClient, SyncTokens
from tests.postgres_server import throwaway_database

REPO_ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def postgres() -> Iterator[str]:
    """A new, empty PostgreSQL database's URL, dropped after the test."""
    with throwaway_database() as url:
        yield url


@pytest.fixture
def config(tmp_path: Path) -> RelayConfig:
    """Auth on, as ``anode serve`` runs; no push rate limit (tests push as fast as they can)."""
    return RelayConfig(data_dir=tmp_path / "data", push_rate=0)


@pytest.fixture
def client(config: RelayConfig) -> Iterator[AdminClient]:
    """Sends the admin token that ``anode serve`` would print (none when auth is off)."""
    with AdminClient(config) as test_client:
        yield test_client


@pytest.fixture
def notebook(client: AdminClient) -> str:
    """A fresh notebook's id."""
    response = client.post("/api/notebooks", json={"title": "test"})
    assert response.status_code == 201, response.text
    return response.json()["id"]


# --- real processes --------------------------------------------------------------


@dataclass
class RelayProcess:
    data_dir: Path
    extra_args: list[str] = field(default_factory=list)
    proc: subprocess.Popen | None = None
    url: str = ""
    port: int = 0
    #: The admin token from the URL the relay printed (None under ``--no-auth``).
    token: str | None = None

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}

    def start(self, timeout: float = 20.0) -> RelayProcess:
        """Start (or restart, on the same port when it had one) and wait until healthy."""
        args = [
            sys.executable, "-m", "anode", "serve",
            "--host", "127.0.0.1", "--port", str(self.port), "--data", str(self.data_dir),
            *self.extra_args,
        ]  # fmt: skip
        self.proc = subprocess.Popen(
            args, cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )  # fmt: skip
        deadline = time.monotonic() + timeout
        assert self.proc.stdout is not None
        while not self.url:
            line = self.proc.stdout.readline()
            if not line and self.proc.poll() is not None:
                raise RuntimeError(f"relay exited with {self.proc.returncode}")
            match = re.search(r"http://127\.0\.0\.1:(\d+)/(?:\?token=(\S+))?", line)
            if match:
                self.port = int(match.group(1))
                self.url = f"http://127.0.0.1:{self.port}"
                self.token = match.group(2)
            if time.monotonic() > deadline:
                raise TimeoutError("relay did not print its URL")
        threading.Thread(target=self._drain, daemon=True).start()
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.url}/api/health", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                time.sleep(0.05)
        raise TimeoutError("relay did not become healthy")

    def _drain(self) -> None:
        proc = self.proc
        assert proc is not None and proc.stdout is not None
        for _ in proc.stdout:
            pass

    def kill(self) -> None:
        """``kill -9``: no shutdown code runs."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)
        self.url = ""

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.url = ""


def module_relay(name: str, *args: str) -> Any:
    """A test module's own relay: ``relay = module_relay("client-long", "--kernels", "none")``
    makes a module-scoped ``relay`` fixture, ``anode serve ARGS`` on a fresh data directory."""

    @pytest.fixture(scope="module")
    def relay(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RelayProcess]:
        running = RelayProcess(tmp_path_factory.mktemp(name) / "data", list(args)).start()
        yield running
        running.stop()

    return relay


@pytest.fixture
def relay_process(tmp_path: Path) -> Iterator[Callable[..., RelayProcess]]:
    """Factory: ``relay_process()`` starts a real relay; all are stopped at the end."""
    started: list[RelayProcess] = []

    def start(*extra_args: str, data_dir: Path | None = None) -> RelayProcess:
        relay = RelayProcess(data_dir or tmp_path / "data", list(extra_args))
        started.append(relay)
        return relay.start()

    yield start
    for relay in started:
        relay.stop()


@dataclass
class RelayThread:
    server: uvicorn.Server
    thread: threading.Thread
    url: str
    app: Any

    @property
    def token(self) -> str | None:
        """The admin token (None when the config turns auth off)."""
        tokens = self.app.state.services.tokens
        return None if tokens is None else SyncTokens(tokens).serve_token()

    @property
    def headers(self) -> dict[str, str]:
        token = self.token
        return {"Authorization": f"Bearer {token}"} if token else {}

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)


@pytest.fixture
def relay_thread(tmp_path: Path) -> Iterator[Callable[..., RelayThread]]:
    """Factory: ``relay_thread(subscriber_queue=4)`` serves a custom config on a real socket."""
    started: list[RelayThread] = []

    def start(**overrides: Any) -> RelayThread:
        config = replace(
            RelayConfig(data_dir=tmp_path / f"data{len(started)}", push_rate=0), **overrides
        )
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        app = create_app(config)
        server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
        thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
        thread.start()
        deadline = time.monotonic() + 10
        while not server.started:
            if time.monotonic() > deadline:
                raise TimeoutError("uvicorn did not start")
            time.sleep(0.02)
        running = RelayThread(server, thread, f"http://127.0.0.1:{port}", app)
        started.append(running)
        return running

    yield start
    for running in started:
        running.stop()
