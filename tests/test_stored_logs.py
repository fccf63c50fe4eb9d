"""Logs written by older versions of the schema still fold to the same notebook.

``data/sample_log_v1.jsonl`` is a realistic log exactly as the relay stores
it (one event per line: seq, id, name, v, args, actor, ts), written with
schema v1 and then frozen: two people editing (concurrently, too), cells of
every type, runs with outputs of every kind (coalesced streams, display
updates across cells, ``clear_output(wait=True)``, an error), a kernel that
expires mid-run and a second one that finishes its work, cancels before and
after a claim, an interrupt, a restart. ``data/sample_log_v1.state.json`` is
what it folded to, as ``NotebookState.public()``.

Relays, browsers and kernels keep logs like this for ever. A change to
``shared_schema`` that would read them differently (an event renamed, an
argument removed or retyped, a fold rule changed) fails here. Do not edit the
log to make the test pass: keep reading the old form, and if an event must
change, bump its ``version`` and register an upgrader in ``events.UPGRADES``
that turns the old args into the new ones, so old logs still decode.

The state file may change only when ``public()`` gains or changes a field on
purpose; then regenerate it from the unchanged log and review the diff::

    .venv/bin/python -c "from tests.test_stored_logs import *; write_expected_state()"
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from shared_schema import NotebookState, StoredEvent, fold_all, stored_from_json

DATA = Path(__file__).parent / "data"
SAMPLE_LOG = DATA / "sample_log_v1.jsonl"
SAMPLE_STATE = DATA / "sample_log_v1.state.json"


def read_log(path: Path) -> list[StoredEvent]:
    return [
        stored_from_json(json.loads(line)) for line in path.read_text(encoding="utf-8").splitlines()
    ]


def folded_public(path: Path) -> dict[str, Any]:
    return fold_all(read_log(path)).public()


def write_expected_state() -> None:
    text = json.dumps(folded_public(SAMPLE_LOG), indent=1, ensure_ascii=False)
    SAMPLE_STATE.write_text(text + "\n", encoding="utf-8")


def test_every_stored_event_still_decodes() -> None:
    """No event falls back to ``event=None``, which folding would silently skip."""
    log = read_log(SAMPLE_LOG)
    unknown = [(event.seq, event.name, event.v) for event in log if event.event is None]
    assert unknown == [], "events this schema no longer reads (add an upgrader instead)"
    assert [event.seq for event in log] == list(range(1, len(log) + 1))
    assert len({event.id for event in log}) == len(log)


def test_stored_events_read_back_unchanged() -> None:
    """Decoding normalizes nothing a stored event holds: re-serving it gives the same JSON."""
    for line in SAMPLE_LOG.read_text(encoding="utf-8").splitlines():
        assert stored_from_json(json.loads(line)).to_json() == json.loads(line)


def test_the_sample_log_folds_to_the_committed_state() -> None:
    expected = json.loads(SAMPLE_STATE.read_text(encoding="utf-8"))
    assert folded_public(SAMPLE_LOG) == expected


def test_the_sample_log_folds_the_same_from_any_snapshot() -> None:
    """What the relay does: snapshot at some seq, store it as JSON, resume from it."""
    log = read_log(SAMPLE_LOG)
    whole = fold_all(log)
    for head in range(0, len(log) + 1, 7):
        snapshot = json.loads(json.dumps(fold_all(log[:head]).dump()))
        assert fold_all(log[head:], NotebookState.load(snapshot)).dump() == whole.dump()
