"""The relay's HTTP API, as a client sees it, through the in-process ``client``.

Each test speaks only the contract of DESIGN.md ("The relay's HTTP API"):
JSON in, JSON out. Where a test needs to know what the log *means*, it folds
the pulled events with ``shared_schema`` itself, the way a browser would, and
compares that with what the relay serves.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
import uuid
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from relay import __version__
from relay.config import RelayConfig
from shared_schema import SCHEMA_VERSION, fold_all, stored_from_json
from shared_schema.ids import is_valid_id
from shared_schema.materializer import advance
from shared_schema.state import NotebookState
from tests.admin import AdminClient

REPO_ROOT = Path(__file__).resolve().parent.parent
COOP = ("cross-origin-opener-policy", "same-origin")
COEP = ("cross-origin-embedder-policy", "require-corp")
#: The keys of a cell in a snapshot, as the contract names them.
CELL_KEYS = {"id", "cell_type", "source", "rev", "outputs", "execution"}


# --- helpers --------------------------------------------------------------------


def new_id() -> str:
    return str(uuid.uuid4())


def event(name: str, event_id: str | None = None, **args: Any) -> dict[str, Any]:
    return {"id": new_id() if event_id is None else event_id, "name": name, "v": 1, "args": args}


def push(client: TestClient, notebook: str, *events: dict[str, Any]) -> dict[str, Any]:
    response = client.post(f"/api/notebooks/{notebook}/events", json={"events": list(events)})
    assert response.status_code == 200, response.text
    return response.json()


def pull(client: TestClient, notebook: str, **params: Any) -> dict[str, Any]:
    response = client.get(f"/api/notebooks/{notebook}/events", params=params)
    assert response.status_code == 200, response.text
    return response.json()


def all_events(client: TestClient, notebook: str) -> list[dict[str, Any]]:
    return pull(client, notebook, limit=10_000)["events"]


def snapshot(client: TestClient, notebook: str, at: int | None = None) -> dict[str, Any]:
    params = {} if at is None else {"at": at}
    response = client.get(f"/api/notebooks/{notebook}/snapshot", params=params)
    assert response.status_code == 200, response.text
    return response.json()


def folded(events: list[dict[str, Any]]) -> dict[str, Any]:
    """What the snapshot endpoint should serve for exactly these events."""
    state = fold_all(stored_from_json(item) for item in events)
    return json.loads(json.dumps({"seq": state.seq, "state": state.public()}))


def create(client: TestClient, **body: Any) -> str:
    response = client.post("/api/notebooks", json=body)
    assert response.status_code == 201, response.text
    return response.json()["id"]


def cells_of(client: TestClient, notebook: str) -> list[dict[str, Any]]:
    return snapshot(client, notebook)["state"]["cells"]


# --- health and notebooks ---------------------------------------------------------


def test_health_reports_liveness_and_versions(client: TestClient) -> None:
    response = client.get("/api/health")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {
        "status": "ok",
        "version": __version__,
        "schema_version": SCHEMA_VERSION,
        "auth": True,
        "kernels": "none",
        "pyodide_packages": None,
    }


def test_create_answers_201_with_a_fresh_id(client: TestClient) -> None:
    first = client.post("/api/notebooks", json={"title": "Lab notes"})
    second = client.post("/api/notebooks", json={"title": "Lab notes"})
    assert first.status_code == second.status_code == 201
    first_id, second_id = first.json()["id"], second.json()["id"]
    assert first_id != second_id
    for notebook_id in (first_id, second_id):
        assert is_valid_id(notebook_id), notebook_id
    # The log opens with the relay's own notebookInitialized, carrying the title.
    [initialized] = all_events(client, first_id)
    assert initialized["seq"] == 1
    assert initialized["name"] == "notebookInitialized"
    assert initialized["actor"] == "relay"
    assert initialized["args"]["title"] == "Lab notes"
    assert snapshot(client, first_id)["state"]["title"] == "Lab notes"


def test_create_takes_a_client_chosen_id(client: TestClient) -> None:
    response = client.post("/api/notebooks", json={"id": "team-notes_2026", "title": "Team"})
    assert response.status_code == 201
    assert response.json()["id"] == "team-notes_2026"
    assert pull(client, "team-notes_2026")["head"] == 1
    assert snapshot(client, "team-notes_2026")["state"]["title"] == "Team"


def test_create_with_an_existing_id_is_409_and_leaves_it_alone(client: TestClient) -> None:
    create(client, id="taken", title="first")
    before = all_events(client, "taken")
    response = client.post("/api/notebooks", json={"id": "taken", "title": "second"})
    assert response.status_code == 409
    assert response.json()["error"] == "notebook_exists"
    assert "taken" in response.json()["detail"]
    assert all_events(client, "taken") == before
    assert snapshot(client, "taken")["state"]["title"] == "first"
    assert [nb["id"] for nb in client.get("/api/notebooks").json()["notebooks"]] == ["taken"]


def test_create_with_an_empty_body_gives_an_untitled_notebook(client: TestClient) -> None:
    notebook = create(client)
    answer = snapshot(client, notebook)
    assert answer["seq"] == 1
    assert answer["state"]["title"] == ""
    assert answer["state"]["cells"] == []


def test_list_shows_title_head_and_cell_count_most_recently_updated_first(
    client: TestClient,
) -> None:
    assert client.get("/api/notebooks").json() == {"notebooks": []}
    older = create(client, title="older")
    newer = create(client, title="newer")
    listed = client.get("/api/notebooks").json()["notebooks"]
    assert [nb["id"] for nb in listed] == [newer, older]

    push(
        client,
        older,
        event("cellCreated", cell_id="a"),
        event("cellCreated", cell_id="b", after="a"),
        event("cellCreated", cell_id="c", after="b"),
    )
    push(
        client,
        older,
        event("cellDeleted", cell_id="b"),
        event("notebookTitleChanged", title="renamed"),
    )
    listed = client.get("/api/notebooks").json()["notebooks"]
    assert [nb["id"] for nb in listed] == [older, newer]
    by_id = {nb["id"]: nb for nb in listed}
    assert by_id[older]["title"] == "renamed"
    assert by_id[older]["head"] == 6
    assert by_id[older]["cells"] == 2
    assert by_id[newer]["title"] == "newer"
    assert by_id[newer]["head"] == 1
    assert by_id[newer]["cells"] == 0
    assert by_id[older]["updated_at"] >= by_id[newer]["updated_at"] >= by_id[newer]["created_at"]

    push(client, newer, event("cellCreated", cell_id="z"))
    assert [nb["id"] for nb in client.get("/api/notebooks").json()["notebooks"]] == [newer, older]


# --- push and pull ------------------------------------------------------------------


def test_push_answers_head_and_dense_seqs(client: TestClient, notebook: str) -> None:
    first = push(client, notebook, *(event("cellCreated", cell_id=f"c{i}") for i in range(3)))
    assert first == {"head": 4, "seqs": [2, 3, 4]}
    second = push(
        client, notebook, event("cellDeleted", cell_id="c0"), event("cellDeleted", cell_id="c1")
    )
    assert second == {"head": 6, "seqs": [5, 6]}
    assert [item["seq"] for item in all_events(client, notebook)] == [1, 2, 3, 4, 5, 6]


def test_pull_pages_with_after_and_limit(client: TestClient, notebook: str) -> None:
    pushed = [event("cellCreated", cell_id=f"c{i}") for i in range(24)]
    push(client, notebook, *pushed[:10])
    push(client, notebook, *pushed[10:])

    whole = pull(client, notebook)
    assert set(whole) == {"events", "head"}
    assert whole["head"] == 25
    assert [item["seq"] for item in whole["events"]] == list(range(1, 26))
    assert [item["id"] for item in whole["events"][1:]] == [item["id"] for item in pushed]

    pages, after = [], 0
    while True:
        page = pull(client, notebook, after=after, limit=7)
        assert page["head"] == 25
        assert len(page["events"]) <= 7
        if not page["events"]:
            break
        pages.append(page["events"])
        after = page["events"][-1]["seq"]
    assert [len(page) for page in pages] == [7, 7, 7, 4]
    assert [item for page in pages for item in page] == whole["events"]

    assert pull(client, notebook, after=20)["events"] == whole["events"][20:]
    assert pull(client, notebook, after=25) == {"events": [], "head": 25}
    assert pull(client, notebook, after=1000) == {"events": [], "head": 25}


def test_stored_events_carry_relay_fields_and_filled_in_defaults(
    client: TestClient, notebook: str
) -> None:
    before = time.time()
    sent = event("cellCreated", cell_id="c1")
    push(client, notebook, sent)
    after = time.time()
    stored = all_events(client, notebook)[-1]
    assert stored == {
        "seq": 2,
        "id": sent["id"],
        "name": "cellCreated",
        "v": 1,
        "args": {"cell_id": "c1", "cell_type": "code", "after": None, "source": ""},
        "actor": client.get("/api/whoami").json()["actor"],
        "ts": stored["ts"],
    }
    assert isinstance(stored["ts"], float)
    assert before - 1 <= stored["ts"] <= after + 1


def test_timestamps_come_from_the_relay_and_never_go_back(
    client: TestClient, notebook: str
) -> None:
    for i in range(5):
        push(
            client,
            notebook,
            event("cellCreated", cell_id=f"c{i}"),
            event("cellDeleted", cell_id=f"c{i}"),
        )
    stamps = [item["ts"] for item in all_events(client, notebook)]
    assert stamps == sorted(stamps)
    events = all_events(client, notebook)
    for first, second in zip(events[1::2], events[2::2], strict=False):  # one batch, one time
        assert first["ts"] == second["ts"]


# --- idempotency and atomicity -----------------------------------------------------


def test_re_pushing_an_id_returns_its_seq_and_stores_nothing(
    client: TestClient, notebook: str
) -> None:
    sent = event("cellCreated", cell_id="c1", source="x = 1")
    assert push(client, notebook, sent) == {"head": 2, "seqs": [2]}
    push(client, notebook, event("cellCreated", cell_id="c2"))
    before = all_events(client, notebook)
    assert push(client, notebook, sent) == {"head": 3, "seqs": [2]}
    assert all_events(client, notebook) == before
    assert [cell["id"] for cell in cells_of(client, notebook)] == ["c2", "c1"]


def test_an_id_re_pushed_with_its_defaults_spelled_out_is_the_same_event(
    client: TestClient, notebook: str
) -> None:
    sent = event("cellCreated", cell_id="c1")
    push(client, notebook, sent)
    spelled_out = {
        **sent,
        "args": {"cell_id": "c1", "cell_type": "code", "after": None, "source": ""},
    }
    assert push(client, notebook, spelled_out) == {"head": 2, "seqs": [2]}


def test_a_batch_mixing_known_and_new_ids(client: TestClient, notebook: str) -> None:
    known = [event("cellCreated", cell_id=f"k{i}") for i in range(2)]
    push(client, notebook, *known)  # seqs 2, 3
    fresh = [event("cellCreated", cell_id=f"n{i}") for i in range(2)]
    answer = push(client, notebook, fresh[0], known[1], fresh[1], known[0])
    assert answer == {"head": 5, "seqs": [4, 3, 5, 2]}
    events = all_events(client, notebook)
    assert [item["seq"] for item in events] == [1, 2, 3, 4, 5]
    assert [item["id"] for item in events[1:]] == [
        known[0]["id"],
        known[1]["id"],
        fresh[0]["id"],
        fresh[1]["id"],
    ]


def test_the_same_id_twice_in_one_batch_is_stored_once(client: TestClient, notebook: str) -> None:
    sent = event("cellCreated", cell_id="c1")
    other = event("cellCreated", cell_id="c2")
    assert push(client, notebook, sent, other, sent) == {"head": 3, "seqs": [2, 3, 2]}
    assert [item["id"] for item in all_events(client, notebook)[1:]] == [sent["id"], other["id"]]


def test_an_id_reused_with_other_args_is_409_and_nothing_of_its_batch_is_stored(
    client: TestClient, notebook: str
) -> None:
    sent = event("cellCreated", cell_id="c1", source="a")
    push(client, notebook, sent)
    before_events, before_state = all_events(client, notebook), snapshot(client, notebook)
    innocent = event("cellCreated", cell_id="c2")
    reused = {**sent, "args": {"cell_id": "c1", "source": "b"}}
    response = client.post(f"/api/notebooks/{notebook}/events", json={"events": [innocent, reused]})
    assert response.status_code == 409
    assert response.json()["error"] == "event_id_reused"
    assert sent["id"] in response.json()["detail"]
    assert all_events(client, notebook) == before_events
    assert snapshot(client, notebook) == before_state
    # The innocent event was not stored: pushed alone, it gets the next seq.
    assert push(client, notebook, innocent) == {"head": 3, "seqs": [3]}


def test_an_id_twice_in_one_batch_with_other_args_is_409(client: TestClient, notebook: str) -> None:
    sent = event("cellCreated", cell_id="c1", source="a")
    twin = {**sent, "args": {"cell_id": "c1", "source": "b"}}
    response = client.post(f"/api/notebooks/{notebook}/events", json={"events": [sent, twin]})
    assert response.status_code == 409
    assert response.json()["error"] == "event_id_reused"
    assert sent["id"] in response.json()["detail"]
    assert pull(client, notebook)["head"] == 1
    assert push(client, notebook, twin) == {"head": 2, "seqs": [2]}
    assert cells_of(client, notebook)[0]["source"] == "b"


def test_a_batch_is_atomic(client: TestClient, notebook: str) -> None:
    good = [event("cellCreated", cell_id="c1"), event("cellCreated", cell_id="c2", after="c1")]
    bad = event("cellCreated", cell_id="not/an/id")
    before_events, before_state = all_events(client, notebook), snapshot(client, notebook)
    response = client.post(f"/api/notebooks/{notebook}/events", json={"events": [*good, bad]})
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_arg"
    assert response.json()["path"] == "events[2].args.cell_id"
    assert all_events(client, notebook) == before_events
    assert snapshot(client, notebook) == before_state
    assert push(client, notebook, *good) == {"head": 3, "seqs": [2, 3]}


# --- long poll ----------------------------------------------------------------------


def _pull_timed(client: TestClient, notebook: str, **params: Any) -> tuple[dict[str, Any], float]:
    started = time.monotonic()
    answer = pull(client, notebook, **params)
    return answer, time.monotonic() - started


def test_a_long_poll_answers_as_soon_as_another_client_pushes(
    client: TestClient, notebook: str
) -> None:
    sent = event("cellCreated", cell_id="c1")
    pushed = threading.Event()

    def push_later() -> None:
        time.sleep(0.2)
        push(client, notebook, sent)
        pushed.set()

    pusher = threading.Thread(target=push_later)
    pusher.start()
    try:
        answer, elapsed = _pull_timed(client, notebook, after=1, wait=30)
    finally:
        pusher.join()
    assert pushed.is_set()
    assert [item["id"] for item in answer["events"]] == [sent["id"]]
    assert answer["head"] == 2
    assert 0.15 <= elapsed < 10, elapsed  # woken by the push, not by the 30 s timeout


def test_a_long_poll_answers_at_once_when_events_exist(client: TestClient, notebook: str) -> None:
    push(client, notebook, event("cellCreated", cell_id="c1"))
    answer, elapsed = _pull_timed(client, notebook, after=0, wait=30)
    assert [item["seq"] for item in answer["events"]] == [1, 2]
    assert elapsed < 10, elapsed


def test_a_long_poll_with_nothing_new_ends_empty_after_wait(
    client: TestClient, notebook: str
) -> None:
    other = create(client, title="elsewhere")

    def push_elsewhere() -> None:
        time.sleep(0.1)
        push(client, other, event("cellCreated", cell_id="c1"))

    pusher = threading.Thread(target=push_elsewhere)
    pusher.start()
    try:
        answer, elapsed = _pull_timed(client, notebook, after=1, wait=0.5)
    finally:
        pusher.join()
    assert answer == {"events": [], "head": 1}
    assert elapsed >= 0.5


def test_wait_zero_answers_at_once(client: TestClient, notebook: str) -> None:
    answer, elapsed = _pull_timed(client, notebook, after=1, wait=0)
    assert answer == {"events": [], "head": 1}
    assert elapsed < 5, elapsed


# --- snapshots ------------------------------------------------------------------------


def _assert_contract_shape(answer: dict[str, Any]) -> None:
    assert set(answer) == {"seq", "state"}
    assert isinstance(answer["seq"], int)
    assert isinstance(answer["state"]["title"], str)
    assert isinstance(answer["state"]["cells"], list)
    for cell in answer["state"]["cells"]:
        assert CELL_KEYS <= set(cell), cell
        assert isinstance(cell["outputs"], list)


def test_the_snapshot_of_a_new_notebook(client: TestClient) -> None:
    notebook = create(client, title="fresh")
    answer = snapshot(client, notebook)
    _assert_contract_shape(answer)
    assert answer["seq"] == 1
    assert answer["state"]["title"] == "fresh"
    assert answer["state"]["cells"] == []
    assert answer == folded(all_events(client, notebook))


def test_the_snapshot_lists_cells_in_notebook_order(client: TestClient, notebook: str) -> None:
    push(
        client,
        notebook,
        event("cellCreated", cell_id="b", source="print('b')"),
        event("cellCreated", cell_id="c", after="b", cell_type="markdown", source="# c"),
        event("cellCreated", cell_id="a", after=None),
        event("cellCreated", cell_id="gone", after="a"),
    )
    push(
        client,
        notebook,
        event("cellDeleted", cell_id="gone"),
        event("cellMoved", cell_id="c", after="a"),
        event("cellSourceEdited", cell_id="b", base_rev=0, ops=["# the b cell\n", 10]),
    )
    answer = snapshot(client, notebook)
    _assert_contract_shape(answer)
    assert answer["seq"] == 8
    cells = answer["state"]["cells"]
    assert [cell["id"] for cell in cells] == ["a", "c", "b"]
    assert [
        {key: cell[key] for key in ("id", "cell_type", "source", "rev", "outputs", "execution")}
        for cell in cells
    ] == [
        {"id": "a", "cell_type": "code", "source": "", "rev": 0, "outputs": [], "execution": None},
        {
            "id": "c",
            "cell_type": "markdown",
            "source": "# c",
            "rev": 0,
            "outputs": [],
            "execution": None,
        },
        {
            "id": "b",
            "cell_type": "code",
            "source": "# the b cell\nprint('b')",
            "rev": 1,
            "outputs": [],
            "execution": None,
        },
    ]
    assert answer == folded(all_events(client, notebook))


def _execution_lifecycle(cell_id: str = "c1", execution_id: str = "run-1") -> list[dict[str, Any]]:
    """What a kernel and a person push for one run of ``print('hi'); 1 + 1``."""
    session = "kernel-1"
    return [
        event("kernelSessionStarted", session_id=session, host="node", lease_seconds=300),
        event(
            "executionRequested",
            execution_id=execution_id,
            cell_id=cell_id,
            source="print('hi'); 1 + 1",
        ),
        event("executionAssigned", execution_id=execution_id, session_id=session),
        event("executionStarted", execution_id=execution_id, session_id=session, execution_count=1),
        event("streamAppended", execution_id=execution_id, stream="stdout", text="hi"),
        event("streamAppended", execution_id=execution_id, stream="stdout", text="\n"),
        event(
            "outputAdded",
            execution_id=execution_id,
            output={
                "output_type": "execute_result",
                "data": {"text/plain": "2"},
                "execution_count": 1,
            },
        ),
        event(
            "executionCompleted",
            execution_id=execution_id,
            session_id=session,
            status="ok",
            execution_count=1,
        ),
    ]


def test_the_snapshot_shows_outputs_and_execution_after_a_run(
    client: TestClient, notebook: str
) -> None:
    push(client, notebook, event("cellCreated", cell_id="c1", source="print('hi'); 1 + 1"))
    for item in _execution_lifecycle():  # one push each, as a kernel sends them
        push(client, notebook, item)
    answer = snapshot(client, notebook)
    _assert_contract_shape(answer)
    assert answer["seq"] == 10
    [cell] = answer["state"]["cells"]
    assert cell["outputs"] == [
        {"output_type": "stream", "name": "stdout", "text": "hi\n"},
        {
            "output_type": "execute_result",
            "data": {"text/plain": "2"},
            "metadata": {},
            "execution_count": 1,
        },
    ]
    execution = cell["execution"]
    assert execution["id"] == "run-1"
    assert execution["cell_id"] == "c1"
    assert execution["status"] == "ok"
    assert execution["execution_count"] == 1
    assert execution["kernel_session"] == "kernel-1"
    assert execution["source"] == "print('hi'); 1 + 1"
    assert execution["requested_at"] <= execution["started_at"] <= execution["completed_at"]
    assert answer["state"]["queue"] == []
    assert answer == folded(all_events(client, notebook))


def test_the_internal_snapshot_is_the_state_a_client_folds_on_from(
    client: TestClient, notebook: str
) -> None:
    """``?form=internal`` serves ``NotebookState.dump()``: edit histories and all, so a
    client that loads it and folds the later events ends where folding everything ends."""
    push(client, notebook, event("cellCreated", cell_id="c1", source="ab"))
    push(client, notebook, event("cellSourceEdited", cell_id="c1", base_rev=0, ops=[2, "c"]))
    for item in _execution_lifecycle():
        push(client, notebook, item)
    response = client.get(
        f"/api/notebooks/{notebook}/snapshot", params={"form": "internal", "at": 3}
    )
    assert response.status_code == 200, response.text
    answer = response.json()
    state = NotebookState.load(answer["state"])
    assert answer["seq"] == state.seq == 3
    assert state.cells["c1"].history == [[2, "c"]]
    later = [item for item in all_events(client, notebook) if item["seq"] > 3]
    for item in later:
        advance(state, stored_from_json(item))
    whole = fold_all(stored_from_json(item) for item in all_events(client, notebook))
    assert state.dump() == whole.dump()
    late_edit = event("cellSourceEdited", cell_id="c1", base_rev=0, ops=[2, "d"])  # based on rev 0
    push(client, notebook, late_edit)
    advance(state, stored_from_json(all_events(client, notebook)[-1]))
    assert state.cells["c1"].source == snapshot(client, notebook)["state"]["cells"][0]["source"]


def test_a_snapshot_form_other_than_public_or_internal_is_refused(
    client: TestClient, notebook: str
) -> None:
    response = client.get(f"/api/notebooks/{notebook}/snapshot", params={"form": "raw"})
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_form"


def snapshotting_relay(config: RelayConfig) -> TestClient:
    """A relay on ``config``'s data that stores a snapshot every 10 events."""
    return AdminClient(replace(config, snapshot_every=10))


def _history() -> list[dict[str, Any]]:
    """34 events whose meaning depends on what came before, across snapshots:
    edits made against old revisions, moves, deletes, a run with outputs."""
    return [
        event("notebookTitleChanged", title="time travel"),
        event("cellCreated", cell_id="c1"),
        event("cellSourceEdited", cell_id="c1", base_rev=0, ops=["hello"]),
        event("cellCreated", cell_id="c2", after="c1", source="x = 1"),
        event("cellSourceEdited", cell_id="c1", base_rev=1, ops=[5, " world"]),
        event(
            "cellSourceEdited", cell_id="c1", base_rev=1, ops=["Oh, ", 5]
        ),  # concurrent with the last
        event("cellCreated", cell_id="c3", after=None, cell_type="markdown", source="# intro"),
        event("cellMoved", cell_id="c2", after=None),
        event("cellMetadataSet", cell_id="c2", key="tags", value=["setup"]),  # seq 10: a snapshot
        event("cellSourceEdited", cell_id="c1", base_rev=3, ops=[15, "!"]),
        event(
            "cellSourceEdited", cell_id="c1", base_rev=1, ops=[5, ","]
        ),  # made before that snapshot
        event("cellCreated", cell_id="c4", after="c1"),
        event("cellDeleted", cell_id="c3"),
        *_execution_lifecycle(cell_id="c2", execution_id="run-1"),
        event("cellSourceEdited", cell_id="c2", base_rev=0, ops=[5, "0"]),
        event("notebookMetadataSet", key="kernelspec", value={"name": "python3"}),
        event("cellSourceEdited", cell_id="c1", base_rev=3, ops=[-4, 11]),  # seq 25
        event("cellTypeChanged", cell_id="c4", cell_type="raw"),
        event("cellSourceEdited", cell_id="c4", base_rev=0, ops=["raw text"]),
        event("executionRequested", execution_id="run-2", cell_id="c1", source="Oh, hello, world!"),
        event("cellSourceEdited", cell_id="c1", base_rev=4, ops=[16, "?"]),
        event("cellOutputsCleared", cell_id="c2"),  # seq 30: another snapshot
        event("cellSourceEdited", cell_id="c1", base_rev=3, ops=["# ", 15]),
        event("cellMoved", cell_id="c1", after="c4"),
        event("notebookTitleChanged", title="time travelled"),
        event("cellCreated", cell_id="c5", after="c2", source="last"),
        event("executionCancelled", execution_id="run-2"),
    ]


def _stored_snapshot_seqs(config: RelayConfig, notebook: str) -> list[int]:
    with sqlite3.connect(config.database_path) as db:
        rows = db.execute("SELECT seq FROM snapshots WHERE notebook = ? ORDER BY seq", (notebook,))
        return [seq for (seq,) in rows]


def test_time_travel_equals_folding_the_first_n_events(config: RelayConfig) -> None:
    with snapshotting_relay(config) as client:
        _check_time_travel(client, config)


def _check_time_travel(client: TestClient, config: RelayConfig) -> None:
    notebook = create(client, title="history")
    for item in _history():
        push(client, notebook, item)
    events = all_events(client, notebook)
    head = len(events)
    assert head == 35
    # The relay really has snapshots to start from, so "at" below, at and
    # above each of them folds from a snapshot plus a tail.
    assert _stored_snapshot_seqs(config, notebook) == [10, 20, 30]

    for at in [0, 1, 2, 5, 9, 10, 11, 12, 19, 20, 21, 25, 29, 30, 31, 34, head]:
        answer = snapshot(client, notebook, at=at)
        _assert_contract_shape(answer)
        assert answer == folded(events[:at]), f"at={at}"
    assert snapshot(client, notebook) == folded(events)
    assert snapshot(client, notebook, at=head) == snapshot(client, notebook)

    # The meaning of late edits survived the snapshots: check a few by hand.
    def source_of_c1(at: int | None = None) -> tuple[str, int]:
        [cell] = [
            cell for cell in snapshot(client, notebook, at)["state"]["cells"] if cell["id"] == "c1"
        ]
        return cell["source"], cell["rev"]

    assert source_of_c1(at=10) == ("Oh, hello world", 3)
    assert source_of_c1(at=11) == ("Oh, hello world!", 4)
    assert source_of_c1(at=12) == (
        "Oh, hello world!,",
        5,
    )  # rebased over 3 edits, one before seq 10
    assert source_of_c1() == ("# hello world!,?", 8)
    latest = snapshot(client, notebook)["state"]
    assert latest["title"] == "time travelled"
    assert [cell["id"] for cell in latest["cells"]] == ["c2", "c5", "c4", "c1"]


def test_a_restarted_relay_serves_the_same_state_from_its_snapshots(config: RelayConfig) -> None:
    with snapshotting_relay(config) as client:
        notebook = create(client, title="history")
        for item in _history()[:25]:
            push(client, notebook, item)

    with snapshotting_relay(config) as client:
        events = all_events(client, notebook)
        assert len(events) == 26
        assert _stored_snapshot_seqs(config, notebook) == [10, 20]
        assert snapshot(client, notebook) == folded(events)
        for item in _history()[25:]:  # edits against revisions from before the restart
            push(client, notebook, item)
        events = all_events(client, notebook)
        assert snapshot(client, notebook) == folded(events)
        assert snapshot(client, notebook, at=15) == folded(events[:15])


# --- presence -------------------------------------------------------------------------


def test_presence_from_a_person_and_a_kernel_is_accepted_and_never_stored(
    client: TestClient, notebook: str
) -> None:
    url = f"/api/notebooks/{notebook}/presence"
    person = {
        "client_id": "tab-1",
        "kind": "user",
        "state": {"cursor": {"cell": "c1", "pos": 3}},
        "ttl": 10,
    }
    kernel = {"client_id": "kernel-1", "kind": "kernel", "state": {"session_id": "kernel-1"}}
    for body in (person, kernel, {"client_id": "tab-2"}, {"client_id": "tab-1", "gone": True}):
        response = client.post(url, json=body)
        assert response.status_code == 200, (body, response.text)
        assert response.json() == {"ok": True}
    assert pull(client, notebook)["head"] == 1


@pytest.mark.parametrize(
    ("body", "code", "mentions"),
    [
        ({"kind": "user"}, "invalid_client_id", "client_id"),
        ({"client_id": "../x"}, "invalid_client_id", "client_id"),
        ({"client_id": "t", "kind": "robot"}, "invalid_kind", "kind"),
        ({"client_id": "t", "state": ["not", "an", "object"]}, "invalid_state", "state"),
        ({"client_id": "t", "ttl": 0}, "invalid_ttl", "ttl"),
        ({"client_id": "t", "ttl": True}, "invalid_ttl", "ttl"),
        ({"client_id": "t", "ttl": 10_000}, "invalid_ttl", "ttl"),
        ({"client_id": "t", "ttl": "10"}, "invalid_ttl", "ttl"),
        ({"client_id": "k", "kind": "kernel", "state": {}}, "invalid_session_id", "session_id"),
        (
            {"client_id": "k", "kind": "kernel", "state": {"session_id": "a/b"}},
            "invalid_session_id",
            "session_id",
        ),
        ({"client_id": "t", "colour": "red"}, "unexpected_field", "colour"),
    ],
)
def test_bad_presence_is_400(
    client: TestClient, notebook: str, body: dict[str, Any], code: str, mentions: str
) -> None:
    response = client.post(f"/api/notebooks/{notebook}/presence", json=body)
    assert response.status_code == 400, response.text
    assert response.json()["error"] == code
    assert mentions in response.json()["detail"]


# --- the client as static files -------------------------------------------------------


def test_the_page_is_served_at_the_root(client: TestClient) -> None:
    response = client.get("/")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert response.content == (REPO_ROOT / "index.html").read_bytes()


@pytest.mark.parametrize(
    ("path", "media_type"),
    [
        ("/vendor/pyodide/pyodide.asm.wasm", "application/wasm"),
        ("/vendor/pyodide/pyodide.mjs", "text/javascript"),
        ("/shared_schema/events.py", None),
    ],
)
def test_static_files_are_served_with_types_browsers_accept(
    client: TestClient, path: str, media_type: str | None
) -> None:
    response = client.get(path)
    assert response.status_code == 200
    if media_type is not None:
        assert response.headers["content-type"].split(";")[0] == media_type
    if path.startswith("/shared_schema/"):
        assert response.content == (REPO_ROOT / path.lstrip("/")).read_bytes()
    else:
        assert len(response.content) > 0


def test_the_client_s_python_comes_in_one_answer(client: TestClient) -> None:
    """``/client/python.json``: every file pyscript.json's ``anode_files`` lists, read from
    disk as it is now, with an ETag that answers a repeat with 304."""
    config = json.loads((REPO_ROOT / "client" / "pyscript.json").read_text())
    response = client.get("/client/python.json")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    files = response.json()["files"]
    assert [file["target"] for file in files] == list(config["anode_files"].values())
    for file in files:
        assert file["text"] == (REPO_ROOT / file["target"]).read_text(encoding="utf-8")
    again = client.get("/client/python.json", headers={"if-none-match": response.headers["etag"]})
    assert again.status_code == 304 and again.content == b""


def test_the_page_snapshots_are_listed_and_served_as_bytes(tmp_path: Path) -> None:
    """``/snapshot/``: what ``make setup`` left in vendor/snapshot, gzipped bytes the page
    unpacks itself; nothing else from that folder, and an empty list before there is one."""
    from starlette.applications import Starlette

    from relay.static import static_routes

    with TestClient(Starlette(routes=static_routes(tmp_path))) as bare:
        assert bare.get("/snapshot/index.json").json() == {"snapshots": []}
    folder = tmp_path / "vendor" / "snapshot"
    folder.mkdir(parents=True)
    (folder / "pyodide-1.0-abc.gz").write_bytes(b"\x1f\x8b packed")
    (folder / "notes.txt").write_text("not served")
    with TestClient(Starlette(routes=static_routes(tmp_path))) as client:
        listed = client.get("/snapshot/index.json")
        assert listed.json() == {"snapshots": ["pyodide-1.0-abc.gz"]}
        assert listed.headers["cache-control"] == "no-cache"
        served = client.get("/snapshot/pyodide-1.0-abc.gz")
        assert served.status_code == 200 and served.content == b"\x1f\x8b packed"
        assert served.headers["content-type"] == "application/octet-stream"
        assert "content-encoding" not in served.headers  # the page unpacks it, not the browser
        assert "immutable" in served.headers["cache-control"]
        for path in ("/snapshot/notes.txt", "/snapshot/../index.html", "/snapshot/none.gz"):
            assert client.get(path).status_code == 404, path


def test_every_response_is_cross_origin_isolated(client: TestClient, notebook: str) -> None:
    requests = [
        ("GET", "/"),
        ("GET", "/vendor/pyodide/pyodide.mjs"),
        ("GET", "/vendor/pyodide/pyodide.asm.wasm"),
        ("GET", "/shared_schema/events.py"),
        ("GET", "/api/health"),
        ("GET", "/api/notebooks"),
        ("GET", f"/api/notebooks/{notebook}/events"),
        ("GET", f"/api/notebooks/{notebook}/snapshot"),
        ("POST", f"/api/notebooks/{notebook}/events"),  # 400: no body
        ("GET", "/api/notebooks/nope/events"),  # 404
        ("DELETE", "/api/health"),  # 405
        ("GET", "/no/such/page"),  # 404 from the router
        ("GET", "/vendor/pyodide/no-such-file.js"),  # 404 from the static files
    ]
    statuses = set()
    for method, path in requests:
        response = client.request(method, path)
        statuses.add(response.status_code)
        headers = response.headers
        assert (COOP[0], headers.get(COOP[0])) == COOP, (method, path)
        assert (COEP[0], headers.get(COEP[0])) == COEP, (method, path)
    assert statuses == {200, 400, 404, 405}
