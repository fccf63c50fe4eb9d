"""``kill -9`` of a real relay process: what was acknowledged is still there.

The design's promise: an event the relay acknowledged survives ``kill -9``;
seqs are dense and never reused; a push is a batch and is atomic; re-pushing
an event whose id is stored returns its existing seq. These tests hammer a
real ``anode serve`` process from several threads, SIGKILL it mid-stream,
restart it on the same data directory and check every one of those.
"""

from __future__ import annotations

import json
import random
import socket
import sqlite3
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from shared_schema import fold_all, stored_from_json

pytestmark = pytest.mark.slow

WRITERS = 4
BATCH_SIZES = (1, 1, 1, 2, 3, 5, 8, 13, 21, 40)


def _event(name: str, **args: Any) -> dict[str, Any]:
    return {"id": uuid.uuid4().hex, "name": name, "v": 1, "args": args}


def _create_notebook(url: str, title: str = "durability") -> str:
    response = httpx.post(f"{url}/api/notebooks", json={"title": title})
    assert response.status_code == 201, response.text
    return response.json()["id"]


def _pull_all(url: str, notebook: str) -> tuple[list[dict[str, Any]], int]:
    """The whole log and the head the relay reports."""
    events: list[dict[str, Any]] = []
    with httpx.Client(base_url=url, timeout=30) as client:
        while True:
            response = client.get(
                f"/api/notebooks/{notebook}/events",
                params={"after": events[-1]["seq"] if events else 0, "limit": 10_000},
            )
            assert response.status_code == 200, response.text
            body = response.json()
            events.extend(body["events"])
            if not body["events"] or len(events) >= body["head"]:
                return events, body["head"]


def _assert_dense(log: list[dict[str, Any]], head: int) -> None:
    assert [e["seq"] for e in log] == list(range(1, head + 1)), "seqs are not dense 1..head"
    ids = [e["id"] for e in log]
    assert len(set(ids)) == len(ids), "an event id is stored twice"


def _folded(log: list[dict[str, Any]]) -> dict[str, Any]:
    """What the snapshot endpoint should serve: the log folded, as JSON."""
    state = fold_all(stored_from_json(e) for e in log)
    return json.loads(json.dumps(state.public()))


@dataclass
class Push:
    events: list[dict[str, Any]]
    seqs: list[int] | None = None  # set when the relay acknowledged the push
    error: str | None = None


@dataclass
class Writer:
    """One client pushing batches as fast as it can until a push fails (the kill)."""

    url: str
    notebook: str
    number: int
    pushes: list[Push] = field(default_factory=list)

    def run(self) -> None:
        rng = random.Random(self.number)
        cells: list[str] = []
        counter = 0
        transport = httpx.HTTPTransport(
            socket_options=[(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)]
        )
        with httpx.Client(base_url=self.url, timeout=10, transport=transport) as client:
            while True:
                batch = []
                for _ in range(rng.choice(BATCH_SIZES)):
                    counter += 1
                    if cells and counter % 3 == 0:
                        batch.append(
                            _event(
                                "cellMetadataSet", cell_id=rng.choice(cells), key="n", value=counter
                            )
                        )
                    else:
                        batch.append(
                            _event(
                                "cellCreated",
                                cell_id=f"w{self.number}-{counter}",
                                source=f"x = {counter}",
                            )
                        )
                push = Push(batch)
                self.pushes.append(push)
                try:
                    response = client.post(
                        f"/api/notebooks/{self.notebook}/events", json={"events": batch}
                    )
                except httpx.HTTPError as error:
                    push.error = repr(error)
                    return
                if response.status_code != 200:
                    push.error = f"{response.status_code} {response.text}"
                    return
                push.seqs = response.json()["seqs"]
                cells.extend(e["args"]["cell_id"] for e in batch if e["name"] == "cellCreated")

    def acked_events(self) -> int:
        return sum(len(p.seqs or ()) for p in self.pushes)


def test_acknowledged_events_survive_kill_9(relay_process) -> None:
    relay = relay_process("--no-auth")
    url = relay.url  # the restart reuses the port
    notebook = _create_notebook(url)

    writers = [Writer(url, notebook, number) for number in range(WRITERS)]
    threads = [threading.Thread(target=w.run, daemon=True) for w in writers]
    for thread in threads:
        thread.start()
    started = time.monotonic()
    # Kill mid-stream, while every writer is pushing: after a second, and once
    # the log is past the relay's first stored snapshot (every 1,000 events),
    # so that the restart has to load one.
    while time.monotonic() - started < 1.0 or sum(w.acked_events() for w in writers) < 1_200:
        assert time.monotonic() - started < 30, "the writers are stuck"
        assert all(thread.is_alive() for thread in threads), [w.pushes[-1].error for w in writers]
        time.sleep(0.02)
    relay.kill()
    for thread in threads:  # each stops at its first failed push
        thread.join(20)
        assert not thread.is_alive()

    pushes = [p for w in writers for p in w.pushes]
    acked = [p for p in pushes if p.seqs is not None]
    unacked = [p for p in pushes if p.seqs is None]
    assert len(unacked) == WRITERS
    # Every push before the kill succeeded: the only failures are the kill's
    # (a reset or refused connection, never an HTTP error status).
    assert all(
        (p.error or "").startswith(
            ("ConnectError", "ReadError", "RemoteProtocolError", "WriteError")
        )
        for p in unacked
    ), [p.error for p in unacked]

    relay.start()
    log, head = _pull_all(url, notebook)
    _assert_dense(log, head)
    seq_of = {e["id"]: e["seq"] for e in log}

    # Every acknowledged event is there, with the seq it was acknowledged with,
    # and a batch's events are consecutive (it was appended as one).
    for push in acked:
        assert [seq_of.get(e["id"]) for e in push.events] == push.seqs
        assert push.seqs == list(range(push.seqs[0], push.seqs[0] + len(push.seqs)))
    # A push the kill interrupted landed whole or not at all.
    landed = []
    for push in unacked:
        present = [seq_of.get(e["id"]) for e in push.events]
        if all(seq is None for seq in present):
            continue
        assert None not in present, f"half a batch was stored: {present}"
        assert present == list(range(present[0], present[0] + len(present)))
        landed.append((push, present))
    # ... and holds what was pushed (the relay fills in defaulted arguments).
    stored_by_id = {e["id"]: e for e in log}
    for push in acked:
        for event in push.events:
            stored = stored_by_id[event["id"]]
            assert stored["name"] == event["name"]
            assert stored["args"] == {**stored["args"], **event["args"]}

    cut_off = f"{len(unacked)} cut off by the kill ({len(landed)} of them landed)"
    print(f"\n{len(acked)} pushes acknowledged, {cut_off}; head {head}")

    # Re-pushing what was not acknowledged is idempotent: what had landed
    # keeps its seq, the rest is appended once.
    with httpx.Client(base_url=url, timeout=10) as client:
        new_events = 0
        for push in unacked:
            response = client.post(
                f"/api/notebooks/{notebook}/events", json={"events": push.events}
            )
            assert response.status_code == 200, response.text
            seqs = response.json()["seqs"]
            if push.events[0]["id"] in seq_of:
                assert seqs == [seq_of[e["id"]] for e in push.events]
            else:
                assert min(seqs) > head
                new_events += len(seqs)
        # So is re-pushing what was acknowledged.
        for push in acked[:: max(1, len(acked) // 20)]:
            response = client.post(
                f"/api/notebooks/{notebook}/events", json={"events": push.events}
            )
            assert response.status_code == 200, response.text
            assert response.json()["seqs"] == push.seqs

    log_after, head_after = _pull_all(url, notebook)
    _assert_dense(log_after, head_after)
    assert head_after == head + new_events
    assert log_after[:head] == log

    snapshot = httpx.get(f"{url}/api/notebooks/{notebook}/snapshot").json()
    assert snapshot["seq"] == head_after
    assert snapshot["state"] == _folded(log_after)


def _edit(cell_id: str, base_rev: int, ops: list[int | str]) -> dict[str, Any]:
    return _event("cellSourceEdited", cell_id=cell_id, base_rev=base_rev, ops=ops)


def test_snapshots_work_after_kill_9(relay_process, tmp_path) -> None:
    """Snapshot = fold(pulled log), before and after a restart that loads a stored snapshot."""
    relay = relay_process("--no-auth")
    url = relay.url
    notebook = _create_notebook(url, "snapshots")
    with httpx.Client(base_url=url, timeout=10) as client:

        def push(events: list[dict[str, Any]]) -> list[int]:
            response = client.post(f"/api/notebooks/{notebook}/events", json={"events": events})
            assert response.status_code == 200, response.text
            return response.json()["seqs"]

        # One cell edited at every revision, plus enough other events to pass
        # the relay's snapshot interval (1,000).
        push([_event("cellCreated", cell_id="main", source="")])
        for rev in range(60):
            push([_edit("main", rev, [rev, f"{rev % 10}"] if rev else [f"{rev % 10}"])])
        for start in range(0, 1_100, 100):
            push([_event("cellCreated", cell_id=f"c{start + i}", after="main") for i in range(100)])
        push([_event("executionRequested", execution_id="run1", cell_id="main", source="print(1)")])

    relay.kill()
    relay.start()
    db = sqlite3.connect(
        tmp_path / "data" / "anode.db"
    )  # beside the running relay: no checkpoint on close
    stored = [
        seq for (seq,) in db.execute("SELECT seq FROM snapshots WHERE notebook = ?", (notebook,))
    ]
    db.close()
    assert stored and max(stored) >= 1_000, "the relay stored no snapshot to load"

    log, head = _pull_all(url, notebook)
    _assert_dense(log, head)
    snapshot = httpx.get(f"{url}/api/notebooks/{notebook}/snapshot").json()
    assert snapshot["seq"] == head
    assert snapshot["state"] == _folded(log)

    # Time travel on both sides of the stored snapshot.
    for at in (1, 30, max(stored) - 1, max(stored), max(stored) + 1, head):
        past = httpx.get(f"{url}/api/notebooks/{notebook}/snapshot", params={"at": at}).json()
        assert past["seq"] == at
        assert past["state"] == _folded(log[:at])

    # Edits made against an old revision after the restart transform over the
    # history the relay loaded from the snapshot, exactly as a fresh fold does.
    with httpx.Client(base_url=url, timeout=10) as client:
        response = client.post(
            f"/api/notebooks/{notebook}/events",
            json={"events": [_edit("main", 10, [2, "!", 8]), _edit("main", 1, ["^", 1])]},
        )
        assert response.status_code == 200, response.text
    log, head = _pull_all(url, notebook)
    snapshot = httpx.get(f"{url}/api/notebooks/{notebook}/snapshot").json()
    assert snapshot["seq"] == head
    assert snapshot["state"] == _folded(log)
    source = next(c["source"] for c in snapshot["state"]["cells"] if c["id"] == "main")
    assert source.startswith("^") and "!" in source
