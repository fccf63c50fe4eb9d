"""The browser's notebook model in CPython: two people typing, offline sessions and restores,
opening from
the relay's state, push answers, the view it caches; and CodeMirror's UTF-16 positions.

``client.model`` is pure Python, so these run without a browser; the relay is
a list that stores pushed events as the real one does (``_relay`` below).
"""

from __future__ import annotations

import random
from typing import Any

import pytest

from client.model import TAB_SPAN, NotebookModel, Saved
from client.positions import changes_to_ops, from_utf16, ops_to_changes, to_utf16, utf16_length
from shared_schema import fold_all, ot, stored_from_json
from shared_schema.state import NotebookState


def _relay(
    log: list[dict[str, Any]], pushed: list[dict[str, Any]], actor: str = "me"
) -> dict[str, int]:
    """Store ``pushed`` in ``log`` as the relay would (a known id keeps its seq); return id ->
    seq."""
    seqs = {}
    for event in pushed:
        known = next((e for e in log if e["id"] == event["id"]), None)
        if known is None:
            known = {**event, "seq": len(log) + 1, "actor": actor, "ts": 1.0 + len(log)}
            log.append(known)
        seqs[event["id"]] = known["seq"]
    return seqs


def _relay_state(log: list[dict[str, Any]]) -> dict[str, Any]:
    """What ``GET /snapshot?form=internal`` serves for this log."""
    return fold_all(stored_from_json(event) for event in log).dump()


def _typed_notebook() -> tuple[list[dict[str, Any]], str]:
    """A log where one person made a cell and typed into it, and someone else edited it."""
    log: list[dict[str, Any]] = []
    author = NotebookModel("nb")
    cell = author.create_cell(None, source="x = 1")
    for char in "23":
        author.edit(cell, [len(author.text(cell)), char])
        author.take_edits()
        _relay(log, author.pending_events(), "author")
        author.receive(log)
    other = {
        "id": "o1",
        "name": "cellSourceEdited",
        "v": 1,
        "args": {"cell_id": cell, "base_rev": 1, "ops": ["# ", 6]},
    }
    _relay(log, [other], "other")
    return log, cell


def test_a_model_started_from_the_relays_state_ends_where_folding_the_log_ends() -> None:
    log, cell = _typed_notebook()
    from_state = NotebookModel("nb")
    from_state.start_from(_relay_state(log[:2]))
    from_state.receive(log)  # the stream then serves what follows (and repeats are ignored)
    folded = NotebookModel("nb")
    folded.receive(log)
    assert from_state.confirmed.dump() == folded.confirmed.dump()
    assert from_state.text(cell) == "# x = 123"
    # A late edit based on an old revision rebases over the loaded history alike.
    late = {
        "id": "late",
        "name": "cellSourceEdited",
        "v": 1,
        "args": {"cell_id": cell, "base_rev": 0, "ops": [5, "!"]},
    }
    _relay(log, [late], "late")
    from_state.receive(log)
    folded.receive(log)
    assert from_state.text(cell) == folded.text(cell) == "# x = 123!"  # the log's insert goes first
    assert from_state.take_changes().snapshot is not None  # kept for the next reload


def test_start_from_refuses_a_model_that_holds_something_and_a_foreign_dump() -> None:
    log, _ = _typed_notebook()
    model = NotebookModel("nb")
    model.create_cell(None)
    with pytest.raises(ValueError):
        model.start_from(_relay_state(log))
    for dump in ({**_relay_state(log), "format": 999}, {"format": 2}, {"cells": []}):
        with pytest.raises(ValueError):
            NotebookModel("nb").start_from(dump)


def test_an_adopted_event_already_in_the_loaded_state_is_dropped_on_the_push_answer() -> None:
    """A tab that died before its edit came back leaves it pending; a new tab that opened from
    the relay's state (which holds the edit) must not replay it a second time."""
    log: list[dict[str, Any]] = []
    dead_tab = NotebookModel("nb", tab=1)
    cell = dead_tab.create_cell(None, source="abc")
    _relay(log, dead_tab.pending_events())
    dead_tab.receive(log)
    dead_tab.edit(cell, [3, "d"])
    dead_tab.take_edits()
    _relay(log, dead_tab.pending_events())  # stored, but the tab dies before it comes back
    left_behind = list(dead_tab.pending)
    assert len(left_behind) == 1 and left_behind[0][0] // TAB_SPAN == 1

    # Tab 2 opened from the relay's state (no events stored) and reloads after tab 1 died.
    model = NotebookModel.restore(
        "nb", Saved(snapshot=_relay_state(log), pending=left_behind), tab=2
    )
    assert [key // TAB_SPAN for key, _ in model.pending] == [2]  # adopted
    assert model.state().cells[cell].source == "abcdd"  # replayed twice: what the answer mends
    reset = model.pushed(_relay(log, model.pending_events()))
    assert reset == {cell}  # it was the edit in flight of its cell: the editor shows the log's text
    assert not model.pending
    assert model.text(cell) == model.state().cells[cell].source == "abcd"
    assert model.pushed({"unknown": 1}) is None


def test_a_push_answer_for_events_still_on_their_way_drops_nothing() -> None:
    log: list[dict[str, Any]] = []
    model = NotebookModel("nb")
    cell = model.create_cell(None, source="a")
    assert (
        model.pushed(_relay(log, model.pending_events())) is None
    )  # seq 1 > our 0: the stream brings it
    assert [e["name"] for e in model.pending_events()] == ["cellCreated"]
    model.receive(log)
    assert not model.pending and model.text(cell) == "a"


def test_an_in_flight_edit_found_in_the_log_resets_its_cell_to_the_logs_text() -> None:
    log: list[dict[str, Any]] = []
    model = NotebookModel("nb")
    cell = model.create_cell(None, source="ab")
    _relay(log, model.pending_events())
    model.receive(log)
    model.edit(cell, [2, "c"])
    model.take_edits()
    in_flight = model.pending_events()
    stored = _relay(log, in_flight)
    # The page misses the echo and learns the log's state some other way (a reload from it, here:
    # folding directly), then hears the push's answer.
    model.confirmed = fold_all(stored_from_json(event) for event in log)
    assert model.pushed(stored) == {cell}
    assert model.text(cell) == "abc" and not model.pending


def test_own_edits_coming_back_keep_the_cached_view() -> None:
    """Typing costs no replay of the log: neither sending a batch nor its echo recomputes the
    view."""
    log: list[dict[str, Any]] = []
    model = NotebookModel("nb")
    cell = model.create_cell(None, source="")
    _relay(log, model.pending_events())
    model.receive(log)
    view = model.state()
    for char in "hello":
        model.edit(cell, [len(model.text(cell)), char])
        model.take_edits()
        assert model.state() is view
        _relay(log, model.pending_events())
        model.receive(log)
        assert model.state() is view
        assert view.seq == model.confirmed.seq
    assert view.cells[cell].source == "hello" == model.confirmed.cells[cell].source
    # Anything else (someone else's edit) does recompute.
    _relay(
        log,
        [
            {
                "id": "o",
                "name": "cellSourceEdited",
                "v": 1,
                "args": {"cell_id": cell, "base_rev": 5, "ops": [5, "!"]},
            }
        ],
        "other",
    )
    model.receive(log)
    assert model.state() is not view and model.text(cell) == "hello!"


def _shown(state: NotebookState) -> Any:
    """What the page shows of a state: all of ``public()`` but revision numbers and the times
    of changes (a replay of our pending events stamps them with the time it runs)."""

    def strip(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: strip(v) for k, v in value.items() if k != "rev" and not k.endswith("_at")}
        if isinstance(value, list):
            return [strip(v) for v in value]
        return value

    return strip(state.public())


@pytest.mark.parametrize("seed", range(25))
def test_the_cached_view_always_equals_a_fresh_one(seed: int) -> None:
    """Random typing, cells, runs and deliveries by two people: whatever the model keeps
    cached shows exactly what recomputing it from scratch shows."""
    rng = random.Random(seed)
    log: list[dict[str, Any]] = []
    people = [NotebookModel("nb"), NotebookModel("nb")]
    first = people[0].create_cell(None, source="start")
    _relay(log, people[0].pending_events(), "p0")
    for model in people:
        model.receive(log)
    for _ in range(120):
        model = rng.choice(people)
        cells = [c.id for c in model.state().visible_cells()] or [first]
        action = rng.random()
        if action < 0.5:
            cell = rng.choice(cells)
            if model.buffer(cell) is not None:
                text = model.text(cell)
                at = rng.randint(0, len(text))
                model.edit(
                    cell, [at, rng.choice("xyz\n"), len(text) - at] if len(text) > at else [at, "q"]
                )
        elif action < 0.6:
            model.create_cell(rng.choice(cells), source="new")
        elif action < 0.65:
            model.run(rng.choice(cells))
        elif action < 0.8:
            model.take_edits()
        elif action < 0.9:
            model.pushed(_relay(log, model.pending_events(), f"p{people.index(model)}"))
        else:
            model.receive(log[: rng.randint(model.confirmed.seq, len(log))])
        cached = model.state()
        model._view = None
        fresh = model.state()
        assert _shown(cached) == _shown(fresh)
    for _ in range(4):  # everyone catches up: one text everywhere
        for model in people:
            model.take_edits()
            _relay(log, model.pending_events())
        for model in people:
            model.receive(log)
    assert people[0].state().public()["cells"] == people[1].state().public()["cells"]
    assert isinstance(NotebookState.load(people[0].confirmed.dump()), NotebookState)


# --- typing, offline sessions, restores; CodeMirror's positions ----------------------------


def test_two_models_typing_in_one_cell_converge() -> None:
    """Both people's keystrokes survive, in one order, the same in both browsers."""
    log: list[dict] = []
    _relay(
        log,
        [{"id": "init", "name": "notebookInitialized", "v": 1, "args": {"title": "t"}}],
        "relay",
    )
    alice, bob = NotebookModel("nb"), NotebookModel("nb")
    alice.receive(log)
    bob.receive(log)
    cell = alice.create_cell(None, source="x = 1")
    _relay(log, alice.pending_events(), "alice")
    alice.receive(log)
    bob.receive(log)

    alice.edit(cell, [5, "0"])  # "x = 10"
    bob.edit(cell, ["# b\n", 5])  # "# b\nx = 1"
    alice.take_edits()
    bob.take_edits()
    _relay(log, alice.pending_events(), "alice")
    alice.edit(cell, [6, "!"])  # typed while the first edit was in flight
    _relay(log, bob.pending_events(), "bob")
    for _ in range(3):  # deliver, let freed buffers go, deliver again
        alice.receive(log)
        bob.receive(log)
        alice.take_edits()
        bob.take_edits()
        _relay(log, alice.pending_events() + bob.pending_events(), "x")
    assert alice.text(cell) == bob.text(cell) == "# b\nx = 10!"
    assert alice.confirmed.cells[cell].source == "# b\nx = 10!"
    assert not alice.pending and not bob.pending


def _opened(log: list[dict]) -> NotebookModel:
    """A model of a fresh notebook: the relay's first event, stored in ``log`` and received."""
    first = {"id": "init", "name": "notebookInitialized", "v": 1, "args": {"title": "t"}}
    _relay(log, [first], "relay")
    model = NotebookModel("nb")
    model.receive(log)
    return model


class _MemoryStore:
    """``client.store``'s contract without IndexedDB: apply ``LocalChanges``, load ``Saved``."""

    def __init__(self) -> None:
        self.confirmed: dict[int, dict] = {}
        self.pending: dict[int, dict] = {}
        self.drafts: dict[str, list] = {}
        self.snapshot: dict | None = None

    def commit(self, model: NotebookModel) -> None:
        changes = model.take_changes()
        self.confirmed.update({event["seq"]: event for event in changes.confirmed})
        self.pending.update(dict(changes.pending_put))
        for key in changes.pending_delete:
            self.pending.pop(key, None)
        for cell_id, ops in changes.drafts.items():
            if ops:
                self.drafts[cell_id] = ops
            else:
                self.drafts.pop(cell_id, None)
        if changes.snapshot is not None:
            self.snapshot = changes.snapshot

    def load(self) -> Saved:
        after = self.snapshot["seq"] if self.snapshot else 0
        return Saved(
            snapshot=self.snapshot,
            confirmed=[self.confirmed[seq] for seq in sorted(self.confirmed) if seq > after],
            pending=sorted(self.pending.items()),
            drafts=dict(self.drafts),
        )


def test_model_restores_pending_and_drafts() -> None:
    """What IndexedDB holds after an offline session rebuilds the same view."""
    log: list[dict] = []
    store = _MemoryStore()
    model = _opened(log)
    cell = model.create_cell(None, source="abc")
    _relay(log, model.pending_events(), "me")
    model.receive(log)
    store.commit(model)
    model.edit(cell, [3, "d"])
    model.take_edits()  # in flight (pushed, or about to be)
    model.edit(cell, [4, "e"])  # buffered behind it
    # Someone else's edit lands first and reaches us; then we go offline.
    remote = {
        "id": "r1",
        "name": "cellSourceEdited",
        "v": 1,
        "args": {"cell_id": cell, "base_rev": 0, "ops": ["X", 3]},
    }
    _relay(log, [remote], "other")
    model.receive(log)
    assert model.text(cell) == "Xabcde"
    extra = model.create_cell(cell, source="")
    model.edit(extra, ["new"])
    store.commit(model)
    shown = {cell: model.text(cell), extra: model.text(extra)}

    restored = NotebookModel.restore("nb", store.load())
    assert {cell: restored.text(cell), extra: restored.text(extra)} == shown
    assert [c.id for c in restored.state().visible_cells()] == [cell, extra]
    # Back online: everything lands and the log agrees with the screen.
    for _ in range(3):
        restored.receive(log)
        restored.take_edits()
        _relay(log, restored.pending_events(), "me")
    restored.receive(log)
    assert restored.confirmed.cells[cell].source == restored.text(cell)
    assert restored.confirmed.cells[extra].source == "new"
    assert not restored.pending


def test_model_restores_from_snapshot_and_later_events(monkeypatch: pytest.MonkeyPatch) -> None:
    """A stored snapshot plus the events after it fold to the same state as the whole log."""
    monkeypatch.setattr("client.model.SNAPSHOT_EVERY", 3)
    log: list[dict] = []
    store = _MemoryStore()
    model = NotebookModel("nb")
    cell = model.create_cell(None, source="")
    for char in "abcdefg":
        model.edit(cell, [len(model.text(cell)), char])
        model.take_edits()
        _relay(log, model.pending_events(), "me")
        model.receive(log)
        store.commit(model)
    assert store.snapshot is not None and 0 < store.snapshot["seq"] < len(log)
    restored = NotebookModel.restore("nb", store.load())
    assert restored.confirmed.seq == len(log)
    assert restored.text(cell) == "abcdefg"
    assert restored.state().public() == model.state().public()


def test_own_edit_rebased_over_remote_in_flight() -> None:
    """A remote edit that lands before our in-flight one moves our text, not our intent."""
    log: list[dict] = []
    model = NotebookModel("nb")
    cell = model.create_cell(None, source="hello")
    _relay(log, model.pending_events(), "me")
    model.receive(log)
    model.edit(cell, [5, " world"])
    model.take_edits()
    edit = {
        "id": "r",
        "name": "cellSourceEdited",
        "v": 1,
        "args": {"cell_id": cell, "base_rev": 0, "ops": ["> ", 5]},
    }
    _relay(log, [edit], "other")
    received = model.receive(log)
    assert received.remote_edits[cell] == [["> ", 11]]
    assert model.text(cell) == "> hello world"
    _relay(log, model.pending_events(), "me")
    model.receive(log)
    assert model.confirmed.cells[cell].source == "> hello world" == model.text(cell)
    assert ot.apply("hello world", ["> ", 11]) == model.text(cell)


def test_utf16_positions_round_trip() -> None:
    """CodeMirror counts UTF-16 units, the log code points: past U+FFFF they differ."""
    text = "a😀b\u00e9c"
    assert utf16_length(text) == 6
    assert [to_utf16(text, i) for i in range(6)] == [0, 1, 3, 4, 5, 6]
    assert [from_utf16(text, to_utf16(text, i)) for i in range(6)] == list(range(6))
    # Replace the emoji and append, as CodeMirror reports it (UTF-16, against the old text).
    ops = changes_to_ops(text, [[1, 3, "X"], [6, 6, "!"]])
    assert ot.apply(text, ops) == "aXb\u00e9c!"
    assert ops_to_changes(text, ops) == [(1, 3, "X"), (6, 6, "!")]
    assert ops_to_changes("abc", ["Z", 1, -1, 1]) == [(0, 0, "Z"), (1, 2, "")]
    assert ops_to_changes("abc", [1, "Z", -1, 1]) == [(1, 2, "Z")]  # insert + delete: one replace


def test_a_corrupt_local_store_restores_what_is_readable() -> None:
    """Records no code of ours wrote (a damaged store, a hand edit) are dropped and deleted;
    the rest restores, and what is missing comes from the relay as usual."""
    log: list[dict] = []
    model = _opened(log)
    cell = model.create_cell(None, source="kept")
    store = _MemoryStore()
    store.commit(model)
    saved = store.load()
    saved.confirmed.append({"name": "cellCreated"})  # no seq
    saved.confirmed.append(
        {
            "seq": 2,
            "id": "x",
            "name": "cellCreated",
            "v": 1,
            "args": "not args",
            "actor": "a",
            "ts": 1.0,
        }
    )
    bad_keys = [model.tab * TAB_SPAN + 100, model.tab * TAB_SPAN + 101]
    saved.pending += [
        (bad_keys[0], "an event, once"),
        (bad_keys[1], {"id": 7, "name": "cellCreated"}),
    ]
    saved.pending.append(
        ("not a key", {"id": "e", "name": "cellDeleted", "v": 1, "args": {"cell_id": cell}})
    )
    saved.drafts = {cell: {"ops": "not a list"}, "other": "abc"}

    restored = NotebookModel.restore("nb", saved)
    assert restored.text(cell) == "kept" and restored.confirmed.seq == 1
    assert [event["name"] for event in restored.pending_events()] == ["cellCreated"]
    changes = restored.take_changes()
    assert set(bad_keys) <= set(changes.pending_delete)
    assert changes.drafts == {cell: None, "other": None}


def test_a_source_has_one_line_ending_everywhere() -> None:
    """A ``\\r\\n`` or lone ``\\r`` that reaches the log (an API insert) folds to ``\\n``, so the
    model, the editor (which shows ``\\n``) and the relay agree on every position."""
    log: list[dict] = []
    _relay(
        log,
        [{"id": "init", "name": "notebookInitialized", "v": 1, "args": {"title": "t"}}],
        "relay",
    )
    created = {
        "id": "c",
        "name": "cellCreated",
        "v": 1,
        "args": {"cell_id": "c1", "source": "a\r\nb\rc"},
    }
    _relay(log, [created], "api")
    model = NotebookModel("nb")
    model.receive(log)
    assert model.text("c1") == "a\nb\nc"
    model.edit("c1", [5, "!"])  # after "c", as the editor counts
    remote = {
        "id": "r",
        "name": "cellSourceEdited",
        "v": 1,
        "args": {"cell_id": "c1", "base_rev": 0, "ops": [2, "x\r\n", 3]},
    }
    _relay(log, [remote], "api")
    model.receive(log)
    for _ in range(3):
        model.take_edits()
        _relay(log, model.pending_events(), "me")
        model.receive(log)
    assert model.text("c1") == model.confirmed.cells["c1"].source == "a\nx\nb\nc!"


def _kernel_event(event_id: str, name: str, **args: Any) -> dict[str, Any]:
    return {"id": event_id, "name": name, "v": 1, "args": args}


def _tab_run(session: str = "ks-tab") -> tuple[NotebookModel, str, list[dict[str, Any]]]:
    """A person's run asked of their tab, and the events their tab kernel would write for it."""
    model = NotebookModel("nb")
    model.set_actor("me")
    cell = model.create_cell(None, source="print(1)")
    run = model.run(cell, "tab")
    assert run is not None
    events = [
        _kernel_event(
            "k1", "kernelSessionStarted", session_id=session, host="tab", lease_seconds=10
        ),
        _kernel_event("k2", "executionAssigned", execution_id=run, session_id=session),
        _kernel_event(
            "k3", "executionStarted", execution_id=run, session_id=session, execution_count=1
        ),
        _kernel_event(
            "k4",
            "outputAdded",
            execution_id=run,
            output={"output_type": "stream", "name": "stdout", "text": "1\n"},
        ),  # fmt: skip
        _kernel_event(
            "k5", "executionCompleted", execution_id=run, session_id=session, status="ok"
        ),
    ]
    return model, run, events


def test_the_page_takes_from_its_tab_kernel_only_that_kernels_own_events() -> None:
    """A cell's code can post the page anything: what is not the tab kernel's own session's
    kernel events is refused before it becomes a pending event."""
    model, run, events = _tab_run()
    assert model.kernel_refusal(events[:1], "ks-tab") is None
    model.add_kernel_events(events[:1])
    assert model.kernel_refusal(events[1:], "ks-tab") is None  # the claim comes with the rest
    cell = next(iter(model.state().cells))
    refused = {
        "not a list": model.kernel_refusal({"events": events}, "ks-tab"),
        "empty": model.kernel_refusal([], "ks-tab"),
        "an edit": model.kernel_refusal(
            [_kernel_event("e", "cellDeleted", cell_id=cell)], "ks-tab"
        ),
        "not an event": model.kernel_refusal([_kernel_event("x", "noSuchEvent")], "ks-tab"),
        "another session": model.kernel_refusal(events[1:], "ks-other"),
        "an unclaimed run": model.kernel_refusal(events[3:], "ks-tab"),
        "no id": model.kernel_refusal([{**events[3], "id": 7}], "ks-tab"),
    }
    for case, why in refused.items():
        assert why is not None, case
    assert "does not write cellDeleted" in refused["an edit"]
    assert "another kernel's session" in refused["another session"]
    assert "does not hold" in refused["an unclaimed run"]


def test_a_tab_run_that_lost_drops_all_its_kernel_events_and_nothing_else() -> None:
    """The relay refused one of the tab kernel's events of a run as not its own: another
    kernel's claim landed first. Every pending kernel event of that run goes at once (the
    relay would refuse each in turn); the request, the cell and the session stay."""
    model, run, events = _tab_run()
    model.add_kernel_events(events)
    assert model.state().executions[run].status == "ok"
    assert model.drop_lost_run("k3") == run
    assert [e["name"] for e in model.pending_events()] == [
        "cellCreated", "executionRequested", "kernelSessionStarted",
    ]  # fmt: skip
    assert model.state().executions[run].status == "pending"  # as the log will say, until it does
    request = model.pending_events()[1]["id"]
    assert model.drop_lost_run(request) is None  # a person's event: not a kernel's run
    assert model.drop_lost_run("k1") is None  # the session: about no run
    assert model.drop_lost_run("unknown") is None
    assert len(model.pending_events()) == 3
