"""The SQLite store on its own: query plans, atomic appends with their summary, pruning.

These drive ``SQLiteStorage`` directly (no HTTP), each on a fresh file, and
read the file back with a plain ``sqlite3`` connection where what matters is
what is on disk.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import uuid
from collections.abc import Awaitable
from pathlib import Path
from typing import Any, TypeVar

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from relay.storage import HeadMoved, IdConflict, NewRow, Summary, plan_append
from relay.storage.sqlite import SQLiteStorage, _known_ids, open_database

T = TypeVar("T")


async def _awaited(coroutine: Awaitable[T]) -> T:
    return await coroutine


def row(event_id: str | None = None, name: str = "cellCreated", **args: Any) -> NewRow:
    args = args or {"cell_id": "c1"}
    return NewRow(
        id=event_id or uuid.uuid4().hex,
        name=name,
        v=1,
        args_json=json.dumps(args, separators=(",", ":")),
        actor="user:ada",
        ts=1.0,
    )


class Store:
    """A ``SQLiteStorage`` on its own event loop, called synchronously."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.loop = asyncio.new_event_loop()
        self.storage = SQLiteStorage(path)
        self(self.storage.open())

    def __call__(self, coroutine: Awaitable[T]) -> T:
        return self.loop.run_until_complete(_awaited(coroutine))

    def close(self) -> None:
        self(self.storage.close())
        self.loop.close()

    def snapshot_seqs(self, notebook: str) -> list[int]:
        with sqlite3.connect(self.path) as db:
            rows = db.execute(
                "SELECT seq FROM snapshots WHERE notebook = ? ORDER BY seq", (notebook,)
            )
            return [seq for (seq,) in rows]

    def summary(self, notebook: str) -> tuple[int, str, int, int]:
        with sqlite3.connect(self.path) as db:
            return db.execute(
                "SELECT head, title, cells, live_kernels FROM notebooks WHERE id = ?", (notebook,)
            ).fetchone()


@pytest.fixture
def store(tmp_path: Path) -> Any:
    opened = Store(tmp_path / "anode.db")
    opened(
        opened.storage.create_notebook(
            "nb", [row("init", "notebookInitialized")], Summary("", 0, 0)
        )
    )
    yield opened
    opened.close()


# --- the plan of the idempotency lookup --------------------------------------------


def test_the_known_ids_lookup_searches_the_id_index(tmp_path: Path) -> None:
    """``id IN (...)`` must use ``events_by_id``, not walk the notebook's whole history.

    The statements ``_known_ids`` really runs are captured as executed and
    explained, with enough history that a scan would be the planner's
    natural pick.
    """
    db = open_database(tmp_path / "anode.db")
    db.execute(
        "INSERT INTO notebooks (id, title, created_at, updated_at, head) VALUES ('nb', '', 0, 0, 0)"
    )
    db.executemany(
        "INSERT INTO events (notebook, seq, id, body) VALUES ('nb', ?, ?, '{}')",
        [(seq, f"e{seq}") for seq in range(1, 3_001)],
    )
    executed: list[str] = []
    db.set_trace_callback(executed.append)
    known = _known_ids(db, "nb", ["e7", "e2999", "missing"])
    db.set_trace_callback(None)
    assert {event_id: seq for event_id, (seq, _) in known.items()} == {"e7": 7, "e2999": 2999}
    lookups = [sql for sql in executed if sql.lstrip().upper().startswith("SELECT")]
    assert lookups
    for sql in lookups:
        plan = " / ".join(detail for *_, detail in db.execute("EXPLAIN QUERY PLAN " + sql))
        assert "USING INDEX events_by_id (notebook=? AND id=?)" in plan, plan
    db.close()


# --- appends -----------------------------------------------------------------------


def test_plan_append_keeps_known_seqs_and_stores_repeats_once() -> None:
    first, again = row("a"), row("b", cell_id="c2")
    known = {"a": (2, '{"seq":2,"id":"a","name":"cellCreated","v":1,"args":{"cell_id":"c1"}}')}
    result = plan_append(5, [first, again, again, row("c", cell_id="c3")], known)
    assert result.seqs == [2, 6, 6, 7]
    assert [item.seq for item in result.stored] == [6, 7]
    assert result.head == 7
    with pytest.raises(IdConflict):
        plan_append(5, [row("a", cell_id="other")], known)


def test_an_append_writes_its_summary_in_the_same_transaction(store: Store) -> None:
    result = store(store.storage.append("nb", [row()], summary=Summary("t", 1, 0)))
    assert result.seqs == [2]
    assert store.summary("nb") == (2, "t", 1, 0)


def test_a_failing_summary_write_stores_none_of_the_batch(store: Store) -> None:
    """One transaction: if the summary cannot be written, neither are the events."""
    with sqlite3.connect(store.path) as db:
        db.execute(
            "CREATE TRIGGER no_summary BEFORE UPDATE OF cells ON notebooks"
            " BEGIN SELECT RAISE(ABORT, 'summary refused'); END"
        )
    with pytest.raises(sqlite3.IntegrityError):
        store(store.storage.append("nb", [row(), row(cell_id="c2")], summary=Summary("t", 2, 0)))
    assert store.summary("nb") == (1, "", 0, 0)
    assert [r.seq for r in store(store.storage.read("nb", 0, 100))] == [1]


def test_an_append_refuses_a_head_that_moved(store: Store) -> None:
    found = store(store.storage.lookup("nb", ["x"]))
    assert (found.head, found.known) == (1, {})
    store(store.storage.append("nb", [row()]))
    with pytest.raises(HeadMoved):
        store(store.storage.append("nb", [row("x", cell_id="c2")], expect_head=found.head))
    assert store.summary("nb")[0] == 2
    assert store(store.storage.lookup("nb", ["x"])).known == {}


# --- snapshots ---------------------------------------------------------------------


def test_saving_a_snapshot_prunes_all_but_the_newest_and_one_per_stretch(store: Store) -> None:
    for seq in (3, 7, 12, 15, 19, 20, 26, 31, 33):
        store(store.storage.save_snapshot("nb", seq, f'{{"at":{seq}}}', keep_every=10))
    # Kept: the first at or past each multiple of 10 (3 is the first of 0-9), and the newest.
    assert store.snapshot_seqs("nb") == [3, 12, 20, 31, 33]
    assert store(store.storage.load_snapshot("nb", 19)) == (12, '{"at":12}')
    assert store(store.storage.load_snapshot("nb")) == (33, '{"at":33}')


def test_pruning_leaves_other_notebooks_alone(store: Store) -> None:
    store(
        store.storage.create_notebook(
            "other", [row("init-2", "notebookInitialized")], Summary("", 0, 0)
        )
    )
    for seq in (5, 6, 7):
        store(store.storage.save_snapshot("other", seq, "{}", keep_every=10))
    for seq in (5, 6, 7, 8):
        store(store.storage.save_snapshot("nb", seq, "{}", keep_every=10))
    assert store.snapshot_seqs("other") == [5, 7]
    assert store.snapshot_seqs("nb") == [5, 8]


@settings(max_examples=500, deadline=None)
@given(
    event_id=st.text(max_size=70),
    name=st.text(max_size=30),
    actor=st.text(max_size=30),
    args=st.dictionaries(
        st.text(max_size=8), st.text(max_size=20) | st.integers() | st.none(), max_size=3
    ),
    ts=st.floats(min_value=0, max_value=2e9, allow_nan=False),
    seq=st.integers(1, 2**53),
)
def test_a_stored_body_is_what_the_json_encoder_makes(
    event_id: str, name: str, actor: str, args: dict, ts: float, seq: int
) -> None:
    """Whatever the strings hold (newlines, quotes, control characters, surrogates aside),
    the body the relay stores is exactly ``json.dumps`` of the event."""
    args_json = json.dumps(args, separators=(",", ":"), ensure_ascii=False)
    row = NewRow(id=event_id, name=name, v=1, args_json=args_json, actor=actor, ts=ts)
    expected = {
        "seq": seq,
        "id": event_id,
        "name": name,
        "v": 1,
        "args": args,
        "actor": actor,
        "ts": ts,
    }
    assert row.body(seq) == json.dumps(expected, separators=(",", ":"), ensure_ascii=False)
    assert json.loads(row.body(seq)) == expected
