"""Properties of the materializer over generated logs.

1. Folding never raises on any sequence of well-formed events, in any order,
   and its invariants hold after every event.
2. Clients that edit optimistically with ``CellEditBuffer`` and fold the
   relay's log converge: each one's optimistic state matches its editors at
   every step, and once everything is delivered all agree with the relay,
   with no keystroke lost.

Sized for a small machine: the whole file runs in well under 30 s.
"""

from __future__ import annotations

import itertools
import json
from collections import deque
from collections.abc import Iterator
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shared_schema import (
    REGISTRY,
    NotebookState,
    PushedEvent,
    StoredEvent,
    fold,
    fold_all,
    ot,
    parse_pushed,
    stored,
    stored_from_json,
)
from shared_schema.editing import CellEditBuffer
from shared_schema.state import TERMINAL

ALPHABET = "ab é🙂\n"

# --- 1. any well-formed log folds -----------------------------------------------

# A small pool of ids, so that generated events meet each other.
cells = st.sampled_from(["c1", "c2", "c3", "c4"])
maybe_cells = st.none() | cells
runs = st.sampled_from(["x1", "x2", "x3", "x4"])
sessions = st.sampled_from(["k1", "k2", "k3"])
display_ids = st.sampled_from(["d1", "d2"])
keys = st.sampled_from(["tags", "collapsed", "k"])
short_text = st.text(alphabet=ALPHABET, max_size=4)
json_values = (
    st.none()
    | st.booleans()
    | st.integers(-3, 3)
    | short_text
    | st.lists(st.integers(0, 3), max_size=2)
)
counts = st.none() | st.integers(0, 5)
mime_bundles = st.fixed_dictionaries({"text/plain": short_text}, optional={"text/html": short_text})


@st.composite
def text_ops(draw: st.DrawFn) -> list[int | str]:
    """Valid components over a text of 0-4 characters: some fit their cell, most do not."""
    left = draw(st.integers(0, 4))
    ops: list[int | str] = []
    while left or draw(st.booleans()):
        if draw(st.booleans()):
            ops.append(draw(st.text(alphabet=ALPHABET, min_size=1, max_size=3)))
        if left:
            n = draw(st.integers(1, left))
            ops.append(n if draw(st.booleans()) else -n)
            left -= n
        elif not draw(st.booleans()):
            break
    return ops


_rich = {"data": mime_bundles, "metadata": st.just({})}
_transient = {"transient": st.fixed_dictionaries({"display_id": display_ids})}
outputs = st.one_of(
    st.fixed_dictionaries(
        {
            "output_type": st.just("stream"),
            "name": st.sampled_from(["stdout", "stderr"]),
            "text": short_text,
        }
    ),
    st.fixed_dictionaries({"output_type": st.just("display_data"), **_rich}, optional=_transient),
    st.fixed_dictionaries(
        {"output_type": st.just("execute_result"), **_rich, "execution_count": counts},
        optional=_transient,
    ),
    st.fixed_dictionaries(
        {
            "output_type": st.just("error"),
            "ename": st.just("ValueError"),
            "evalue": short_text,
            "traceback": st.lists(short_text, max_size=2),
        }
    ),
)


def _args(required: dict[str, Any], optional: dict[str, Any] | None = None) -> st.SearchStrategy:
    return st.fixed_dictionaries(required, optional=optional or {})


ARGS: dict[str, st.SearchStrategy[dict[str, Any]]] = {
    "notebookInitialized": _args(
        {}, {"title": short_text, "metadata": st.dictionaries(keys, json_values)}
    ),
    "notebookTitleChanged": _args({"title": short_text}),
    "notebookMetadataSet": _args({"key": keys, "value": json_values}),
    "cellCreated": _args(
        {"cell_id": cells},
        {
            "cell_type": st.sampled_from(["code", "markdown", "raw"]),
            "after": maybe_cells,
            "source": short_text,
        },
    ),
    "requirementRemoved": _args({"package": st.sampled_from(["numpy", "Humanize", "a-b"])}),
    "requirementsAdded": _args(
        {
            "execution_id": runs,
            "requirements": st.lists(
                st.sampled_from(["numpy==2.0", "humanize", "humanize==4.9.0", "A_B==1"]),
                min_size=1,
                max_size=3,
            ),
        }
    ),
    "cellImported": _args(
        {"cell_id": cells},
        {
            "cell_type": st.sampled_from(["code", "markdown", "raw"]),
            "after": maybe_cells,
            "source": short_text,
            "metadata": st.dictionaries(keys, json_values, max_size=2),
            "attachments": st.dictionaries(keys, mime_bundles, max_size=1),
            "outputs": st.lists(outputs, max_size=2),
            "execution_count": counts,
        },
    ),
    "cellSourceEdited": _args(
        {"cell_id": cells, "base_rev": st.sampled_from([0, 0, 1, 2, 3]), "ops": text_ops()}
    ),
    "cellTypeChanged": _args(
        {"cell_id": cells, "cell_type": st.sampled_from(["code", "markdown", "raw"])}
    ),
    "cellMoved": _args({"cell_id": cells, "after": maybe_cells}),
    "cellDeleted": _args({"cell_id": cells}),
    "cellMetadataSet": _args({"cell_id": cells, "key": keys, "value": json_values}),
    "cellOutputsCleared": _args({}, {"cell_id": maybe_cells}),
    "executionRequested": _args({"execution_id": runs, "cell_id": cells, "source": short_text}),
    "executionAssigned": _args({"execution_id": runs, "session_id": sessions}),
    "executionStarted": _args(
        {"execution_id": runs, "session_id": sessions}, {"execution_count": counts}
    ),
    "executionCompleted": _args(
        {
            "execution_id": runs,
            "session_id": sessions,
            "status": st.sampled_from(["ok", "error", "cancelled"]),
        },
        {"execution_count": counts},
    ),
    "executionCancelled": _args({"execution_id": runs}),
    "interruptRequested": _args({"execution_id": runs}),
    "kernelRestartRequested": _args({}, {"session_id": st.none() | sessions}),
    "outputAdded": _args({"execution_id": runs, "output": outputs}),
    "streamAppended": _args(
        {"execution_id": runs, "stream": st.sampled_from(["stdout", "stderr"]), "text": short_text}
    ),
    "displayUpdated": _args(
        {"execution_id": runs, "display_id": display_ids, "data": mime_bundles},
        {"metadata": st.dictionaries(keys, json_values, max_size=1)},
    ),
    "outputsCleared": _args({"execution_id": runs}, {"wait": st.booleans()}),
    "kernelSessionStarted": _args(
        {
            "session_id": sessions,
            "host": st.sampled_from(["node", "browser", "other"]),
            "lease_seconds": st.just(30),
        },
        {"label": short_text},
    ),
    "kernelRestarted": _args({"session_id": sessions}),
    "kernelSessionEnded": _args({"session_id": sessions}, {"reason": short_text}),
    "kernelSessionExpired": _args({"session_id": sessions}),
}

# Events a newer schema may have written: they fold as no-ops.
FUTURE = st.sampled_from([("cellCommentAdded", 1), ("cellSourceEdited", 99)])

# Weighted towards the lifecycle, so runs get far enough to interact.
_LIFECYCLE = [
    *["cellCreated", "kernelSessionStarted", "executionRequested", "outputAdded"],
    *["streamAppended", "outputsCleared"],
    *["cellSourceEdited"] * 3,
    *["executionAssigned", "executionStarted", "executionCompleted"] * 2,
]


def _event(name: str) -> st.SearchStrategy[tuple[str, int, dict[str, Any]]]:
    return ARGS[name].map(lambda args: (name, REGISTRY[name].version, args))


raw_events = st.one_of(
    *[_event(name) for name in sorted(ARGS) + _LIFECYCLE],
    st.tuples(FUTURE, st.dictionaries(st.sampled_from(["cell_id", "x"]), cells)).map(
        lambda pair: (*pair[0], pair[1])
    ),
)


def _e(name: str, **args: Any) -> tuple[str, int, dict[str, Any]]:
    return (name, 1, args)


# A prelude that populates the pools, so that short logs reach deep states:
# cells with text, two live sessions, runs pending, assigned and executing.
PRELUDE = [
    _e("notebookInitialized", title="t"),
    *[_e("cellCreated", cell_id=c, source="ab") for c in ("c1", "c2", "c3")],
    *[
        _e("kernelSessionStarted", session_id=k, host="node", lease_seconds=30)
        for k in ("k1", "k2")
    ],
    *[
        _e("executionRequested", execution_id=f"x{i}", cell_id=f"c{i}", source="")
        for i in (1, 2, 3)
    ],
    _e("executionAssigned", execution_id="x1", session_id="k1"),
    _e("executionStarted", execution_id="x1", session_id="k1"),
    _e("executionAssigned", execution_id="x2", session_id="k2"),
]


def test_the_generators_cover_every_registered_event() -> None:
    assert set(ARGS) == set(REGISTRY)


def _stored_log(raw: list[tuple[str, int, dict[str, Any]]]) -> list[StoredEvent]:
    """As the relay would serve them; newer-schema events read back with ``event=None``."""
    log = []
    for seq, (name, v, args) in enumerate(raw, start=1):
        if name in REGISTRY and v <= REGISTRY[name].version:
            pushed = parse_pushed({"id": f"e{seq}", "name": name, "v": v, "args": args})
            log.append(stored(seq, pushed.id, pushed.event, "user:ada", float(seq)))
        else:
            body = {
                "seq": seq,
                "id": f"e{seq}",
                "name": name,
                "v": v,
                "args": args,
                "actor": "x",
                "ts": float(seq),
            }
            log.append(stored_from_json(body))
    return log


def check_invariants(state: NotebookState) -> None:
    """What must hold of every state ``fold`` can reach."""
    assert sorted(state.order) == sorted(state.cells) and len(set(state.order)) == len(state.order)
    for cell in state.cells.values():
        assert cell.rev == len(cell.history)
        assert cell.execution_id is None or state.executions[cell.execution_id].cell_id == cell.id
    # The queue holds exactly the unfinished executions, in request order.
    assert state.queue == [
        run.id for run in state.executions.values() if run.status not in TERMINAL
    ]
    for run in state.executions.values():
        if run.status in ("pending", "assigned"):  # nothing ran yet, so nothing to show
            assert not run.outputs and not run.clear_pending and run.started_at is None
        if run.status == "pending":
            assert run.kernel_session is None and run.assigned_at is None
        elif run.status in ("assigned", "executing"):
            # Work held by a session that is gone would be stuck forever.
            assert state.kernels[run.kernel_session].status == "live"
            assert run.assigned_at is not None
        else:
            assert run.completed_at is not None and not run.clear_pending
        if run.interrupt_requested:
            assert run.status not in ("pending", "assigned")
    for session in state.kernels.values():
        assert (session.status == "live") == (session.ended_at is None)
        assert not (session.restart_requested and session.status != "live")
    public = state.public()
    assert json.loads(json.dumps(public)) == public


def _frozen(state: NotebookState) -> str:
    return json.dumps(state.dump(), sort_keys=True)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.booleans(), st.lists(raw_events, min_size=30, max_size=80))
def test_any_log_folds(prelude: bool, raw: list) -> None:
    log = _stored_log((PRELUDE if prelude else []) + raw)
    state = NotebookState()
    for event in log:
        before = _frozen(state)
        after = fold(state, event)  # never raises
        assert _frozen(state) == before  # fold is pure
        check_invariants(after)
        state = after
    assert state.seq == len(log)
    assert fold_all(log).dump() == state.dump()
    loaded = _through_json(state)
    assert loaded.public() == state.public() and loaded.dump() == state.dump()
    # Folding resumes from a snapshot taken anywhere.
    middle = len(log) // 2
    assert fold_all(log[middle:], _through_json(fold_all(log[:middle]))).dump() == state.dump()


def _through_json(state: NotebookState) -> NotebookState:
    """A snapshot as the relay stores and reads it back."""
    return NotebookState.load(json.loads(json.dumps(state.dump())))


# --- 2. optimistic clients converge ---------------------------------------------


def pushed(event_id: str, name: str, **args: Any) -> PushedEvent:
    return parse_pushed({"id": event_id, "name": name, "v": REGISTRY[name].version, "args": args})


class Relay:
    """Appends pushes in arrival order and folds its own copy of the log."""

    def __init__(self, prelude: list[PushedEvent]) -> None:
        self.log: list[StoredEvent] = []
        self.state = NotebookState()
        for event in prelude:
            self.append(event, "relay")

    def append(self, pushed: PushedEvent, actor: str) -> None:
        event = stored(len(self.log) + 1, pushed.id, pushed.event, actor, float(len(self.log) + 1))
        self.log.append(event)
        self.state = fold(self.state, event)


class Peer:
    """Someone with a local copy of the log: confirmed events plus its own pending ones."""

    def __init__(self, name: str, relay: Relay) -> None:
        self.name = name
        self.relay = relay
        self.confirmed = fold_all(relay.log)
        self.received = len(relay.log)
        self.pending: list[PushedEvent] = []  # applied locally, not yet seen in the log
        self.outbox: deque[PushedEvent] = deque()  # not yet appended by the relay
        self._ids = (f"{name}-{n}" for n in itertools.count())

    def push(self, name: str, **args: Any) -> None:
        event = pushed(next(self._ids), name, **args)
        self.pending.append(event)
        self.outbox.append(event)

    def optimistic(self) -> NotebookState:
        """``fold(confirmed) + replay(pending)``: what this peer shows."""
        base = self.confirmed.seq
        replay = [
            stored(base + i + 1, p.id, p.event, self.name, 0.0) for i, p in enumerate(self.pending)
        ]
        return fold_all(replay, self.confirmed)

    def receive(self) -> None:
        """The next confirmed event, in log order."""
        event = self.relay.log[self.received]
        self.received += 1
        self.confirmed = fold(self.confirmed, event)
        own = bool(self.pending) and self.pending[0].id == event.id
        if own:
            self.pending.pop(0)  # one writer per notebook keeps each peer's pushes in order
        assert all(p.id != event.id for p in self.pending)
        self.on_confirmed(event, own)

    def on_confirmed(self, event: StoredEvent, own: bool) -> None:
        pass

    @property
    def behind(self) -> bool:
        return self.received < len(self.relay.log)


class Editor(Peer):
    """A person's browser: one ``CellEditBuffer`` per live cell."""

    def __init__(self, name: str, relay: Relay) -> None:
        super().__init__(name, relay)
        self.buffers: dict[str, CellEditBuffer] = {}
        self._cell_ids = (f"{name}-cell{n}" for n in itertools.count())
        self._run_ids = (f"{name}-run{n}" for n in itertools.count())
        self._track_cells()

    def _track_cells(self) -> None:
        for cell in self.confirmed.cells.values():
            if cell.deleted:
                self.buffers.pop(cell.id, None)
            elif cell.id not in self.buffers:
                self.buffers[cell.id] = CellEditBuffer(cell.source, cell.rev)

    def on_confirmed(self, event: StoredEvent, own: bool) -> None:
        if event.name == "cellSourceEdited":
            cell = self.confirmed.cells[event.args["cell_id"]]
            buffer = self.buffers.get(cell.id)
            if buffer is not None and cell.rev > buffer.confirmed_rev:  # it landed
                assert cell.rev == buffer.confirmed_rev + 1
                if own:
                    buffer.confirm_own()
                else:
                    buffer.apply_remote(cell.history[buffer.confirmed_rev])
                assert buffer.confirmed_text == cell.source
        self._track_cells()

    # --- what a person does ------------------------------------------------------

    def live_cells(self) -> list[str]:
        shown = self.optimistic().visible_cells()
        return [cell.id for cell in shown if cell.id in self.buffers]

    def type(self, cell_id: str, at: float, text: str, delete: int) -> str:
        """Insert ``text`` (or delete up to ``delete`` characters) at a relative position."""
        buffer = self.buffers[cell_id]
        size = len(buffer.text)
        start = int(at * size)
        if delete and size > start:
            n = min(delete, size - start)
            buffer.edit([start, -n, size - start - n])
            return ""
        buffer.edit([start, text, size - start])
        return text

    def flush(self, cell_id: str) -> None:
        outgoing = self.buffers[cell_id].take_outgoing()
        if outgoing is not None:
            base_rev, ops = outgoing
            self.push("cellSourceEdited", cell_id=cell_id, base_rev=base_rev, ops=ops)

    def flush_all(self) -> None:
        for cell_id in list(self.buffers):
            self.flush(cell_id)

    def create(self, after: str | None) -> None:
        cell_id = next(self._cell_ids)
        self.push("cellCreated", cell_id=cell_id, after=after)
        self.buffers[cell_id] = CellEditBuffer("", 0)

    def run(self, cell_id: str) -> None:
        source = self.buffers[cell_id].text  # what is on screen
        self.push(
            "executionRequested", execution_id=next(self._run_ids), cell_id=cell_id, source=source
        )

    def check(self) -> None:
        """What the editors show is the optimistic state plus what is not yet pushed."""
        state = self.optimistic()
        for cell_id, buffer in self.buffers.items():
            cell = state.cells[cell_id]
            if cell.deleted:
                continue
            shown = ot.apply(cell.source, buffer.buffered) if buffer.buffered else cell.source
            assert shown == buffer.text
            assert cell.rev == buffer.confirmed_rev + (buffer.in_flight is not None)
            if buffer.buffered is None:
                assert cell.source == buffer.text

    @property
    def idle(self) -> bool:
        return not self.outbox and all(b.buffered is None for b in self.buffers.values())


class Kernel(Peer):
    """Claims pending work; runs what it won. Acts only once its own pushes are confirmed."""

    def act(self) -> bool:
        state = self.confirmed
        if self.pending or state.kernels[self.name].status != "live":
            return False
        for run in state.executions.values():
            if run.status == "assigned" and run.kernel_session == self.name:
                self.push("executionStarted", execution_id=run.id, session_id=self.name)
                self.push(
                    "streamAppended", execution_id=run.id, stream="stdout", text=run.source or "-"
                )
                self.push(
                    "executionCompleted", execution_id=run.id, session_id=self.name, status="ok"
                )
                return True
        waiting = state.pending()
        if waiting:
            self.push("executionAssigned", execution_id=waiting[0].id, session_id=self.name)
            return True
        return False


def _prelude(initial: str) -> list[PushedEvent]:
    """Two cells holding ``initial``, two live kernel sessions."""
    return [
        pushed("p0", "notebookInitialized", title="shared"),
        pushed("p1", "cellCreated", cell_id="c1", source=initial),
        pushed("p2", "cellCreated", cell_id="c2", after="c1", source=initial),
        pushed("p3", "kernelSessionStarted", session_id="k1", host="node", lease_seconds=30),
        pushed("p4", "kernelSessionStarted", session_id="k2", host="node", lease_seconds=30),
    ]


class Simulation:
    def __init__(self, n_editors: int, initial: str) -> None:
        self.relay = Relay(_prelude(initial))
        self.editors = [Editor(f"u{i}", self.relay) for i in range(n_editors)]
        self.kernels = [Kernel(f"k{i}", self.relay) for i in (1, 2)]
        self.peers: list[Peer] = [*self.editors, *self.kernels]
        self.expired = False

    def serve(self, peer: Peer) -> None:
        """The relay appends the next push of ``peer``."""
        self.relay.append(peer.outbox.popleft(), peer.name)

    def expire(self) -> None:
        """The relay gives up on k2: its claims go back to the queue, its run fails."""
        self.expired = True
        self.relay.append(pushed("expire-k2", "kernelSessionExpired", session_id="k2"), "relay")

    def check(self) -> None:
        for editor in self.editors:
            editor.check()

    def drain(self) -> None:
        for _ in range(1000):
            for editor in self.editors:
                editor.flush_all()
            for peer in self.peers:
                while peer.outbox:
                    self.serve(peer)
            for peer in self.peers:
                while peer.behind:
                    peer.receive()
            self.check()
            acted = [kernel.act() for kernel in self.kernels]
            if not any(acted) and all(e.idle and not e.pending for e in self.editors):
                return
        raise AssertionError("the simulation does not settle")

    def assert_converged(self) -> None:
        server = self.relay.state
        assert fold_all(self.relay.log).dump() == server.dump()
        for peer in self.peers:
            assert not peer.pending and not peer.outbox
            assert peer.confirmed.dump() == server.dump()  # the full form: public() and more
        for editor in self.editors:
            for cell_id, buffer in editor.buffers.items():
                assert buffer.in_flight is None and buffer.buffered is None
                assert buffer.text == buffer.confirmed_text == server.cells[cell_id].source
                assert buffer.confirmed_rev == server.cells[cell_id].rev
        assert all(run.status in TERMINAL for run in server.executions.values())


ACTIONS = [
    *["type"] * 6,
    *["flush", "create", "run", "kernel"] * 2,
    *["serve", "receive"] * 3,
    *["move", "delete", "cancel", "expire"],
]


def simulate(data: st.DataObject, sim: Simulation, *, insert_only: bool) -> dict[str, list[str]]:
    """Random steps, checking every editor after each; returns the text typed per cell."""
    typed: dict[str, list[str]] = {}
    fresh = (chr(0x4E00 + i) for i in itertools.count())  # every keystroke distinct
    may_expire = data.draw(st.booleans(), label="may expire k2")
    for _ in range(data.draw(st.integers(10, 80), label="steps")):
        action = data.draw(st.sampled_from(ACTIONS), label="action")
        if action == "serve":
            waiting = [peer for peer in sim.peers if peer.outbox]
            if waiting:
                sim.serve(data.draw(st.sampled_from(waiting), label="peer"))
        elif action == "receive":
            behind = [peer for peer in sim.peers if peer.behind]
            if behind:
                data.draw(st.sampled_from(behind), label="peer").receive()
        elif action == "kernel":
            data.draw(st.sampled_from(sim.kernels), label="kernel").act()
        elif action == "expire":
            if may_expire and not sim.expired:
                sim.expire()
        else:
            editor = data.draw(st.sampled_from(sim.editors), label="editor")
            editor_step(data, editor, action, typed, fresh, insert_only)
        sim.check()
    return typed


def editor_step(
    data: st.DataObject,
    editor: Editor,
    action: str,
    typed: dict[str, list[str]],
    fresh: Iterator[str],
    insert_only: bool,
) -> None:
    live = editor.live_cells()
    cell_id = data.draw(st.sampled_from(live), label="cell") if live else None
    if action == "create":
        editor.create(data.draw(st.sampled_from([None, *live]), label="after"))
    elif cell_id is None:
        return
    elif action == "type":
        if insert_only:
            text = "".join(next(fresh) for _ in range(data.draw(st.integers(1, 3), label="n")))
            delete = 0
        else:
            text = data.draw(st.text(alphabet=ALPHABET, min_size=1, max_size=3), label="text")
            delete = data.draw(st.sampled_from([0, 0, 1, 3]), label="delete")
        at = data.draw(st.floats(0, 1), label="at")
        typed.setdefault(cell_id, []).append(editor.type(cell_id, at, text, delete))
    elif action == "flush":
        editor.flush(cell_id)
    elif action == "move":
        editor.push(
            "cellMoved",
            cell_id=cell_id,
            after=data.draw(st.sampled_from([None, *live]), label="after"),
        )
    elif action == "delete" and not insert_only:
        editor.push("cellDeleted", cell_id=cell_id)
    elif action == "run":
        editor.run(cell_id)
    elif action == "cancel":
        queue = editor.optimistic().queue
        if queue:
            editor.push(
                "executionCancelled", execution_id=data.draw(st.sampled_from(queue), label="run")
            )


CONVERGENCE = settings(
    max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


@CONVERGENCE
@given(st.data(), st.integers(2, 3), st.text(alphabet=ALPHABET, max_size=6))
def test_optimistic_clients_converge(data: st.DataObject, n_editors: int, initial: str) -> None:
    sim = Simulation(n_editors, initial)
    simulate(data, sim, insert_only=False)
    sim.drain()
    sim.assert_converged()


@CONVERGENCE
@given(st.data(), st.integers(2, 3))
def test_no_keystroke_is_lost(data: st.DataObject, n_editors: int) -> None:
    sim = Simulation(n_editors, "")
    typed = simulate(data, sim, insert_only=True)
    sim.drain()
    sim.assert_converged()
    for cell_id, pieces in typed.items():
        assert sorted(sim.relay.state.cells[cell_id].source) == sorted("".join(pieces))


def test_the_simulation_reaches_the_interesting_cases() -> None:
    """A scripted run: concurrent edits of one cell, a lost claim, an expiry, a cancel."""
    sim = Simulation(2, "ab")
    ada, bob = sim.editors
    k1, k2 = sim.kernels
    ada.type("c1", 0.5, "X", 0)
    bob.type("c1", 0.5, "Y", 0)
    ada.flush("c1")
    bob.flush("c1")
    ada.run("c2")
    bob.run("c2")
    bob.push("executionCancelled", execution_id="u1-run0")
    for peer in sim.peers:
        while peer.outbox:
            sim.serve(peer)
    for peer in sim.peers:
        while peer.behind:
            peer.receive()
    sim.check()
    assert sim.relay.state.cells["c1"].source == "aXYb"
    assert k2.act() and k1.act()  # both claim u0-run0; k2 wins
    for peer in (k2, k1):
        sim.serve(peer)
    sim.expire()
    for peer in sim.peers:
        while peer.behind:
            peer.receive()
    runs = sim.relay.state.executions
    assert runs["u0-run0"].status == "pending" and runs["u1-run0"].status == "cancelled"
    sim.drain()
    sim.assert_converged()
    assert sim.relay.state.executions["u0-run0"].kernel_session == "k1"
