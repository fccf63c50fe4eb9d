"""The browser's notebook model in CPython: opening from the relay's state, push answers, the view it caches.

``client.model`` is pure Python, so these run without a browser; the relay is
a list that stores pushed events as the real one does (``_relay`` below).
"""

from __future__ import annotations

import random
from typing import Any

import pytest

from client.model import TAB_SPAN, NotebookModel, Saved
from shared_schema import fold_all, stored_from_json
from shared_schema.state import NotebookState


def _relay(log: list[dict[str, Any]], pushed: list[dict[str, Any]], actor: str = "me") -> dict[str, int]:
    """Store ``pushed`` in ``log`` as the relay would (a known id keeps its seq); return id -> seq."""
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
    other = {"id": "o1", "name": "cellSourceEdited", "v": 1, "args": {"cell_id": cell, "base_rev": 1, "ops": ["# ", 6]}}
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
    late = {"id": "late", "name": "cellSourceEdited", "v": 1, "args": {"cell_id": cell, "base_rev": 0, "ops": [5, "!"]}}
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
    model = NotebookModel.restore("nb", Saved(snapshot=_relay_state(log), pending=left_behind), tab=2)
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
    assert model.pushed(_relay(log, model.pending_events())) is None  # seq 1 > our 0: the stream brings it
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
    """Typing costs no replay of the log: neither sending a batch nor its echo recomputes the view."""
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
    _relay(log, [{"id": "o", "name": "cellSourceEdited", "v": 1, "args": {"cell_id": cell, "base_rev": 5, "ops": [5, "!"]}}], "other")
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
                model.edit(cell, [at, rng.choice("xyz\n"), len(text) - at] if len(text) > at else [at, "q"])
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

