"""Snapshots: when the relay takes them, what it keeps, and the state form they store.

The contract stays the one ``test_api.py`` checks (``?at=N`` equals folding
the first N events); these tests pin the policy behind it: the newest
snapshot plus one per ``snapshot_every`` seqs, taken as the tail grows to a
share of the state's size, encoded without holding the event loop, and in
state format 2, where what nothing can read again is a tombstone.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import uuid
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

from starlette.testclient import TestClient

from relay.config import RelayConfig
from relay.snapshots import SnapshotMark, Snapshotter, encode_json
from shared_schema import NotebookState, fold_all, parse_pushed, stored, stored_from_json
from shared_schema.state import STATE_FORMAT
from tests.admin import AdminClient


def event(name: str, **args: Any) -> dict[str, Any]:
    return {"id": uuid.uuid4().hex, "name": name, "v": 1, "args": args}


def push(client: TestClient, notebook: str, *events: dict[str, Any]) -> dict[str, Any]:
    response = client.post(f"/api/notebooks/{notebook}/events", json={"events": list(events)})
    assert response.status_code == 200, response.text
    return response.json()


def all_events(client: TestClient, notebook: str) -> list[dict[str, Any]]:
    response = client.get(f"/api/notebooks/{notebook}/events", params={"limit": 10_000})
    return response.json()["events"]


def snapshot(client: TestClient, notebook: str, at: int | None = None) -> dict[str, Any]:
    response = client.get(
        f"/api/notebooks/{notebook}/snapshot", params={} if at is None else {"at": at}
    )
    assert response.status_code == 200, response.text
    return response.json()


def folded(events: list[dict[str, Any]]) -> dict[str, Any]:
    state = fold_all(stored_from_json(item) for item in events)
    return json.loads(json.dumps({"seq": state.seq, "state": state.public()}))


def stored_snapshots(config: RelayConfig, notebook: str) -> dict[int, dict[str, Any]]:
    with sqlite3.connect(config.database_path) as db:
        rows = db.execute(
            "SELECT seq, state FROM snapshots WHERE notebook = ? ORDER BY seq", (notebook,)
        )
        return {seq: json.loads(text) for seq, text in rows}


def relay(config: RelayConfig, **overrides: Any) -> TestClient:
    return AdminClient(replace(config, **overrides))


def typing(cell_id: str, count: int) -> Iterator[dict[str, Any]]:
    """``count`` edits that each append one character to a new cell."""
    yield event("cellCreated", cell_id=cell_id)
    for rev in range(count - 1):
        yield event(
            "cellSourceEdited", cell_id=cell_id, base_rev=rev, ops=[rev, "x"] if rev else ["x"]
        )


# --- policy ------------------------------------------------------------------------


def test_a_snapshot_is_due_when_the_tail_outgrows_a_share_of_the_state(config: RelayConfig) -> None:
    policy = Snapshotter(
        storage=None,  # type: ignore[arg-type]
        config=replace(
            config, snapshot_every=10_000, snapshot_min_events=100, snapshot_tail_ratio=0.5
        ),
    )
    mark = SnapshotMark(seq=1_000, size=40_000, tail=19_999)
    assert not policy.due(mark, 1_500)  # a tail of 19,999 characters is under half of 40,000
    mark.tail = 20_000
    assert policy.due(mark, 1_500)
    assert not policy.due(mark, 1_099)  # fewer than snapshot_min_events
    assert policy.due(SnapshotMark(seq=9_990, size=10**9), 10_001)  # past a multiple of 10,000
    mark.writing = object()  # type: ignore[assignment]  # a write in flight
    assert not policy.due(mark, 10_500)  # one at a time


def test_encoding_equals_json_dumps_and_lets_the_loop_run() -> None:
    nested = {
        "a": [1, "two", None],
        "b": {"c": [[i, f"s{i}\n\u2028é"] for i in range(2_500)]},
        "d": 1.5,
    }
    big = {
        "cells": [
            {"id": f"c{n}", "history": [[i, "ab", 3] for i in range(20_000)]} for n in range(8)
        ]
    }

    async def measure() -> tuple[str, str, int]:
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                ticks += 1
                await asyncio.sleep(0)

        running = asyncio.create_task(ticker())
        await asyncio.sleep(0)
        ticks = 0
        small_text, big_text = await encode_json(nested), await encode_json(big)
        running.cancel()
        return small_text, big_text, ticks

    small_text, big_text, ticks = asyncio.run(measure())
    assert json.loads(small_text) == nested
    assert small_text == json.dumps(nested, ensure_ascii=False, separators=(",", ":"))
    assert json.loads(big_text) == big
    assert ticks > 0  # other work ran while 160,000 list entries were encoded


# --- state format 2 ----------------------------------------------------------------


def _fold(*raw: dict[str, Any]) -> NotebookState:
    log = []
    for seq, item in enumerate(raw, start=1):
        pushed = parse_pushed(item)
        log.append(stored(seq, pushed.id, pushed.event, "user:ada", float(seq)))
    return fold_all(log)


def _run(execution_id: str, cell_id: str, source: str, session: str = "k1") -> list[dict[str, Any]]:
    return [
        event("executionRequested", execution_id=execution_id, cell_id=cell_id, source=source),
        event("executionAssigned", execution_id=execution_id, session_id=session),
        event("executionStarted", execution_id=execution_id, session_id=session, execution_count=1),
        event("streamAppended", execution_id=execution_id, stream="stdout", text="out\n"),
        event("executionCompleted", execution_id=execution_id, session_id=session, status="ok"),
    ]


def test_unreachable_cells_and_runs_are_stored_as_tombstones() -> None:
    state = _fold(
        event("kernelSessionStarted", session_id="k1", host="node", lease_seconds=30.0),
        event("cellCreated", cell_id="c1", source="print(1)"),
        event("cellCreated", cell_id="c2", after="c1", source="gone"),
        *_run("r1", "c1", "print(1)" * 100),
        *_run("r2", "c1", "print(2)"),
        *_run("r3", "c2", "gone"),
        event("cellDeleted", cell_id="c2"),
        event("cellSourceEdited", cell_id="c1", base_rev=0, ops=[8, "# more"]),
    )
    dumped = state.dump()
    assert dumped["format"] == STATE_FORMAT == 3
    cells = {item["id"] if isinstance(item, dict) else item[0]: item for item in dumped["cells"]}
    runs = {
        item["id"] if isinstance(item, dict) else item[0]: item for item in dumped["executions"]
    }
    assert cells["c2"] == ["c2"]
    assert cells["c1"]["history"] == [[8, "# more"]]  # histories stay whole
    assert runs["r1"] == ["r1", "c1", "ok", state.executions["r1"].completed_at]
    assert runs["r3"][:3] == ["r3", "c2", "ok"]  # its cell is gone
    assert runs["r2"]["source"] == "print(2)" and runs["r2"]["outputs"]  # still shown
    assert "print(1)" * 100 not in json.dumps(dumped)

    loaded = NotebookState.load(json.loads(json.dumps(dumped)))
    assert loaded.public() == state.public()
    assert loaded.dump() == dumped
    # Events about tombstones are no-ops either way.
    more = [
        event("executionCancelled", execution_id="r1"),
        event("executionCompleted", execution_id="r3", session_id="k1", status="error"),
        event("cellSourceEdited", cell_id="c2", base_rev=0, ops=["x", 4]),
        event("cellCreated", cell_id="c2"),
    ]
    log = []
    for seq, item in enumerate(more, start=state.seq + 1):
        pushed = parse_pushed(item)
        log.append(stored(seq, pushed.id, pushed.event, "user:ada", float(seq)))
    assert fold_all(log, loaded).dump() == fold_all(log, state).dump()


def test_dump_shares_no_mutable_container_with_the_state() -> None:
    """So the relay can encode a dump a slice at a time while pushes fold on."""
    state = _fold(
        event("cellCreated", cell_id="c1"),
        event("executionRequested", execution_id="r1", cell_id="c1", source="1"),
        event("kernelSessionStarted", session_id="k1", host="node", lease_seconds=30.0),
        event("executionAssigned", execution_id="r1", session_id="k1"),
        event("executionStarted", execution_id="r1", session_id="k1"),
        event("streamAppended", execution_id="r1", stream="stdout", text="out"),
    )
    dumped = state.dump()
    before = json.dumps(dumped)
    state.order.append("c9")
    state.queue.append("r9")
    state.metadata["k"] = 1
    state.cells["c1"].metadata["k"] = 1
    state.cells["c1"].history.append(["z"])
    state.executions["r1"].outputs.append({"output_type": "stream", "name": "stdout", "text": "!"})
    assert json.dumps(dumped) == before


# --- through the relay --------------------------------------------------------------


def test_the_relay_keeps_the_newest_snapshot_and_one_per_stretch(config: RelayConfig) -> None:
    with relay(
        config, snapshot_every=100, snapshot_min_events=20, snapshot_tail_ratio=0.0
    ) as client:
        notebook = client.post("/api/notebooks", json={"title": "long"}).json()["id"]
        for item in typing("c1", 349):
            push(client, notebook, item)
        events = all_events(client, notebook)
    seqs = sorted(stored_snapshots(config, notebook))
    # One per 20 events was taken; the first of each stretch of 100 seqs and the newest remain.
    assert seqs == [20, 100, 200, 300, 340]
    with relay(
        config, snapshot_every=100, snapshot_min_events=20, snapshot_tail_ratio=0.0
    ) as client:
        for at in (0, 19, 20, 21, 99, 100, 150, 250, 339, 340, 345, 350):
            assert snapshot(client, notebook, at) == folded(events[:at]), f"at={at}"
        assert snapshot(client, notebook) == folded(events)


def test_the_tail_must_reach_a_share_of_the_state_before_a_new_snapshot(
    config: RelayConfig,
) -> None:
    settings = {"snapshot_every": 10_000, "snapshot_min_events": 10, "snapshot_tail_ratio": 1.0}
    with relay(config, **settings) as client:
        notebook = client.post("/api/notebooks", json={"title": "ratio"}).json()["id"]
        push(client, notebook, event("cellCreated", cell_id="c1", source="x" * 20_000))
        for item in list(typing("c2", 200)):
            push(client, notebook, item)
    snapshots = stored_snapshots(config, notebook)
    first = min(snapshots)
    assert first == 10  # nothing stored yet, so the first is due after snapshot_min_events
    # The next waits until the events stored since add up to its size (~20,000 characters
    # of source): about 100 edits of ~200 characters, not 10.
    later = sorted(snapshots)[1:]
    assert later and later[0] > first + 50


def test_a_snapshot_in_an_older_format_is_refolded_and_replaced(config: RelayConfig) -> None:
    settings = {"snapshot_every": 10_000, "snapshot_min_events": 5}
    with relay(config, **settings) as client:
        notebook = client.post("/api/notebooks", json={"title": "old"}).json()["id"]
        for item in typing("c1", 8):
            push(client, notebook, item)
        events = all_events(client, notebook)
    with sqlite3.connect(config.database_path) as db:
        db.execute("DELETE FROM snapshots")
        db.execute(
            "INSERT INTO snapshots (notebook, seq, state) VALUES (?, 9, ?)",
            (notebook, json.dumps({"format": 1, "seq": 9, "title": "wrong"})),
        )
    with relay(config, **settings) as client:
        assert snapshot(client, notebook) == folded(events)
    snapshots = stored_snapshots(config, notebook)
    assert snapshots[9]["format"] == STATE_FORMAT  # taken at open, replacing the unusable one


def test_a_push_whose_summary_cannot_commit_leaves_no_trace(config: RelayConfig) -> None:
    """Folded before its commit, the batch is dropped from memory when the commit fails."""
    with relay(config) as client:
        notebook = client.post("/api/notebooks", json={"title": "atomic"}).json()["id"]
        push(client, notebook, event("cellCreated", cell_id="c1"))
        with sqlite3.connect(config.database_path) as db:
            db.execute(
                "CREATE TRIGGER no_summary BEFORE UPDATE OF cells ON notebooks"
                " BEGIN SELECT RAISE(ABORT, 'summary refused'); END"
            )
        response = client.post(
            f"/api/notebooks/{notebook}/events",
            json={"events": [event("cellCreated", cell_id="c2")]},
        )
        assert response.status_code == 500
        events = all_events(client, notebook)
        assert [e["args"].get("cell_id") for e in events] == [None, "c1"]
        assert snapshot(client, notebook) == folded(events)
        with sqlite3.connect(config.database_path) as db:
            db.execute("DROP TRIGGER no_summary")
        push(client, notebook, event("cellCreated", cell_id="c3", after="c1"))
        events = all_events(client, notebook)
        assert snapshot(client, notebook) == folded(events)
        listed = {nb["id"]: nb for nb in client.get("/api/notebooks").json()["notebooks"]}
        assert listed[notebook]["cells"] == 2 and listed[notebook]["head"] == 3
