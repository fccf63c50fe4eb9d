"""Kernel leases against a real relay: heartbeats keep a session, silence expires it.

The relay is the one party that decides a kernel is gone: when a live
session's heartbeats (``POST /presence`` with ``kind: "kernel"``) stop for
longer than its ``lease_seconds``, it writes ``kernelSessionExpired`` as
``actor: "relay"``; the fold then re-queues what the session had claimed but
not started, and fails what it was running with a ``KernelLost`` error.
A relay restart must not expire healthy kernels, nor forget silent ones.
"""

from __future__ import annotations

import threading
import time
import uuid
from typing import Any

import httpx
import pytest

pytestmark = pytest.mark.slow

HEARTBEAT_EVERY = 0.3


def _event(name: str, **args: Any) -> dict[str, Any]:
    return {"id": uuid.uuid4().hex, "name": name, "v": 1, "args": args}


def _create_notebook(url: str) -> str:
    response = httpx.post(f"{url}/api/notebooks", json={"title": "leases"})
    assert response.status_code == 201, response.text
    return response.json()["id"]


def _push(url: str, notebook: str, *events: dict[str, Any]) -> list[int]:
    response = httpx.post(f"{url}/api/notebooks/{notebook}/events", json={"events": list(events)})
    assert response.status_code == 200, response.text
    return response.json()["seqs"]


def _heartbeat(url: str, notebook: str, session_id: str) -> None:
    body = {
        "client_id": session_id,
        "kind": "kernel",
        "state": {"session_id": session_id},
        "ttl": 2,
    }
    response = httpx.post(f"{url}/api/notebooks/{notebook}/presence", json=body, timeout=2)
    assert response.status_code == 200, response.text


def _log(url: str, notebook: str) -> list[dict[str, Any]]:
    response = httpx.get(f"{url}/api/notebooks/{notebook}/events", params={"limit": 10_000})
    assert response.status_code == 200, response.text
    return response.json()["events"]


def _expiries(url: str, notebook: str) -> list[dict[str, Any]]:
    return [e for e in _log(url, notebook) if e["name"] == "kernelSessionExpired"]


def _wait_for_event(url: str, notebook: str, name: str, timeout: float) -> dict[str, Any]:
    """Long-poll the log until an event called ``name`` lands; return it."""
    deadline = time.monotonic() + timeout
    after = 0
    with httpx.Client(base_url=url, timeout=timeout + 5) as client:
        while (remaining := deadline - time.monotonic()) > 0:
            response = client.get(
                f"/api/notebooks/{notebook}/events",
                params={"after": after, "wait": min(remaining, 5)},
            )
            assert response.status_code == 200, response.text
            for event in response.json()["events"]:
                if event["name"] == name:
                    return event
                after = event["seq"]
    raise AssertionError(f"no {name} within {timeout} s")


def _snapshot(url: str, notebook: str) -> dict[str, Any]:
    response = httpx.get(f"{url}/api/notebooks/{notebook}/snapshot")
    assert response.status_code == 200, response.text
    return response.json()["state"]


def _execution(state: dict[str, Any], cell_id: str) -> dict[str, Any]:
    return next(cell["execution"] for cell in state["cells"] if cell["id"] == cell_id)


def _session(state: dict[str, Any], session_id: str) -> dict[str, Any]:
    return next(k for k in state["kernels"] if k["id"] == session_id)


class Heartbeats:
    """A kernel's heartbeat loop on a thread; it keeps trying while the relay is down."""

    def __init__(self, url: str, notebook: str, session_id: str) -> None:
        self.url, self.notebook, self.session_id = url, notebook, session_id
        self.stop_event = threading.Event()
        self.last_sent = 0.0  # monotonic time the last successful heartbeat was sent
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.stop_event.is_set():
            sent = time.monotonic()
            try:
                _heartbeat(self.url, self.notebook, self.session_id)
            except httpx.HTTPError:  # the relay is restarting: try again soon
                self.stop_event.wait(0.05)
                continue
            self.last_sent = sent
            self.stop_event.wait(HEARTBEAT_EVERY)

    def stop(self) -> float:
        """Stop, and return when the last heartbeat that landed was sent."""
        self.stop_event.set()
        self.thread.join(5)
        assert not self.thread.is_alive()
        return self.last_sent


def _start_session_with_work(url: str, notebook: str, session_id: str, lease: float) -> None:
    """A session holding two executions: ``queued`` claimed, ``running`` started."""
    _push(
        url,
        notebook,
        _event("cellCreated", cell_id="queued", source="1 + 1"),
        _event("cellCreated", cell_id="running", source="while True: pass"),
    )
    _push(
        url,
        notebook,
        _event("kernelSessionStarted", session_id=session_id, host="node", lease_seconds=lease),
    )
    _push(
        url,
        notebook,
        _event("executionRequested", execution_id="run-q", cell_id="queued", source="1 + 1"),
        _event(
            "executionRequested", execution_id="run-r", cell_id="running", source="while True: pass"
        ),
        _event("executionAssigned", execution_id="run-q", session_id=session_id),
        _event("executionAssigned", execution_id="run-r", session_id=session_id),
        _event("executionStarted", execution_id="run-r", session_id=session_id, execution_count=1),
        _event("streamAppended", execution_id="run-r", stream="stdout", text="working\n"),
    )
    state = _snapshot(url, notebook)
    assert _execution(state, "queued")["status"] == "assigned"
    assert _execution(state, "running")["status"] == "executing"


def _assert_expired(url: str, notebook: str, session_id: str) -> None:
    """What the fold makes of an expired session's work."""
    state = _snapshot(url, notebook)
    assert _session(state, session_id)["status"] == "expired"
    queued = _execution(state, "queued")
    assert queued["status"] == "pending"
    assert queued["kernel_session"] is None
    assert [run["id"] for run in state["queue"]] == ["run-q"]
    running = _execution(state, "running")
    assert running["status"] == "error"
    outputs = next(cell["outputs"] for cell in state["cells"] if cell["id"] == "running")
    assert outputs[0]["output_type"] == "stream"
    assert outputs[-1]["output_type"] == "error"
    assert outputs[-1]["ename"] == "KernelLost"


def test_heartbeats_keep_a_session_and_silence_expires_it(relay_thread) -> None:
    lease = 1.0
    url = relay_thread(auth=False, lease_check_seconds=0.05).url
    notebook = _create_notebook(url)
    _start_session_with_work(url, notebook, "kernel-a", lease)

    heartbeats = Heartbeats(url, notebook, "kernel-a")
    time.sleep(2 * lease)  # twice the lease, heard from all along
    assert _expiries(url, notebook) == []
    assert _session(_snapshot(url, notebook), "kernel-a")["status"] == "live"

    last_sent = heartbeats.stop()
    expired = _wait_for_event(url, notebook, "kernelSessionExpired", timeout=lease + 5)
    silent_for = time.monotonic() - last_sent
    assert expired["actor"] == "relay"
    assert expired["args"] == {"session_id": "kernel-a"}
    # Not before the lease ran out; and promptly after (generous, not a benchmark).
    assert lease <= silent_for < lease + 2.0, silent_for
    _assert_expired(url, notebook, "kernel-a")

    time.sleep(0.3)  # several more checks: one expiry, written once
    assert len(_expiries(url, notebook)) == 1

    # The expired session's late claim is a no-op; a new session wins it.
    _push(url, notebook, _event("executionAssigned", execution_id="run-q", session_id="kernel-a"))
    assert _execution(_snapshot(url, notebook), "queued")["status"] == "pending"
    _push(
        url,
        notebook,
        _event("kernelSessionStarted", session_id="kernel-b", host="node", lease_seconds=30),
    )
    _heartbeat(url, notebook, "kernel-b")
    _push(url, notebook, _event("executionAssigned", execution_id="run-q", session_id="kernel-b"))
    state = _snapshot(url, notebook)
    queued = _execution(state, "queued")
    assert (queued["status"], queued["kernel_session"]) == ("assigned", "kernel-b")
    assert _execution(state, "running")["status"] == "error"  # what was lost stays lost
    assert _session(state, "kernel-b")["status"] == "live"


def test_relay_restart_keeps_live_sessions_and_expires_silent_ones(relay_process) -> None:
    lease = 1.0
    relay = relay_process("--no-auth")
    url = relay.url  # the restart reuses the port
    notebook = _create_notebook(url)
    _start_session_with_work(url, notebook, "kernel-a", lease)
    heartbeats = Heartbeats(url, notebook, "kernel-a")
    time.sleep(0.5)

    relay.kill()  # kill -9 while the kernel is live and heartbeating
    time.sleep(lease)  # down for longer than the lease: that must not count
    relay.start()
    time.sleep(2.5 * lease)  # heartbeats resumed: the session lives on
    assert _expiries(url, notebook) == []
    assert _session(_snapshot(url, notebook), "kernel-a")["status"] == "live"

    last_sent = heartbeats.stop()
    expired = _wait_for_event(url, notebook, "kernelSessionExpired", timeout=lease + 5)
    silent_for = time.monotonic() - last_sent
    assert expired["actor"] == "relay"
    assert expired["args"] == {"session_id": "kernel-a"}
    assert lease <= silent_for < lease + 2.0, silent_for
    _assert_expired(url, notebook, "kernel-a")


def test_restarted_relay_expires_a_silent_session_nobody_asks_about(relay_process) -> None:
    """After a restart the relay adopts live sessions itself: no client has to open the notebook."""
    lease = 1.5
    relay = relay_process("--no-auth")
    url = relay.url
    notebook = _create_notebook(url)
    _start_session_with_work(url, notebook, "kernel-a", lease)
    relay.kill()  # well within the lease: the session is still live in the log
    restarting = time.monotonic()
    relay.start()

    def live_kernels() -> int:
        listed = httpx.get(f"{url}/api/notebooks").json()["notebooks"]  # lists without opening
        return next(n["live_kernels"] for n in listed if n["id"] == notebook)

    assert live_kernels() == 1
    while live_kernels() != 0:
        assert time.monotonic() - restarting < lease + 10, "the silent session never expired"
        time.sleep(0.1)
    # A full lease from when the restarted relay first noticed the session.
    assert time.monotonic() - restarting >= lease
    (expired,) = _expiries(url, notebook)
    assert expired["actor"] == "relay"
    _assert_expired(url, notebook, "kernel-a")
