"""A long-poll subscriber in a thread: every event of one notebook, and when it arrived.

The kernel benchmark pushes a request and then waits for what the kernel
wrote back. ``LogFollower`` long-polls ``GET /events?after=N&wait=S`` (the
call a kernel's host makes) in a background thread, stamps each answer with
``time.time()`` as it is read, and wakes whoever waits for an event. The
relay answers a long poll as soon as anything past ``N`` exists, so an
arrival time is when a subscriber could first have seen the event.

Events are found by a key: the event's name and the execution it is about
(``args.execution_id``), or for session events the session
(``args.session_id``). The first arrival of each key is kept.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from typing import Any

from bench.harness import http_client

Key = tuple[str, str]


@dataclass(frozen=True, slots=True)
class Arrival:
    event: dict[str, Any]  # as served: seq, id, name, v, args, actor, ts
    received: float  # time.time() when the answer that held it was read

    @property
    def ts(self) -> float:
        """When the relay stored it (``time.time()`` in the relay, the same clock here)."""
        return float(self.event["ts"])


def key_of(event: dict[str, Any]) -> Key:
    args = event["args"]
    return event["name"], str(args.get("execution_id") or args.get("session_id") or "")


class LogFollower:
    """Follow one notebook's log from ``after``; use as a context manager."""

    def __init__(self, url: str, notebook: str, after: int = 0, wait: float = 1.0) -> None:
        self._url = url
        self._path = f"/api/notebooks/{notebook}/events"
        self._after = after
        self._wait = wait
        self.arrivals: list[Arrival] = []
        self._first: dict[Key, Arrival] = {}
        self._changed = threading.Condition()
        self._stop = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="log-follower", daemon=True)

    def __enter__(self) -> LogFollower:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(self._wait + 5)

    def _run(self) -> None:
        params = {"after": self._after, "limit": 10_000, "wait": self._wait}
        try:
            with http_client(self._url, self._wait + 30) as client:
                while not self._stop.is_set():
                    response = client.get(self._path, params=params)
                    received = time.time()
                    response.raise_for_status()
                    events = json.loads(response.content)["events"]
                    if not events:
                        continue
                    params["after"] = events[-1]["seq"]
                    with self._changed:
                        for event in events:
                            arrival = Arrival(event, received)
                            self.arrivals.append(arrival)
                            self._first.setdefault(key_of(event), arrival)
                        self._changed.notify_all()
        except BaseException as error:  # noqa: BLE001 - handed to the waiting thread
            with self._changed:
                self._error = error
                self._changed.notify_all()

    def wait_for(self, name: str, about: str, timeout: float = 30.0) -> Arrival:
        """The first ``name`` event about execution (or session) ``about``, once it arrived."""
        deadline = time.monotonic() + timeout
        key = (name, about)
        with self._changed:
            while key not in self._first:
                if self._error is not None:
                    raise RuntimeError(f"the log follower failed: {self._error!r}")
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"no {name} about {about} in {timeout:.0f} s")
                self._changed.wait(left)
            return self._first[key]

    def snapshot(self) -> list[Arrival]:
        """Every event so far, in log order."""
        with self._changed:
            return list(self.arrivals)

    def about(self, execution_id: str) -> list[Arrival]:
        """Every event so far whose ``args.execution_id`` is ``execution_id``, in log order."""
        with self._changed:
            return [a for a in self.arrivals if a.event["args"].get("execution_id") == execution_id]

    @property
    def head(self) -> int:
        with self._changed:
            return self.arrivals[-1].event["seq"] if self.arrivals else self._after
