"""One cell edited by several clients through a server-ordered log: they converge.

The ``Server`` here does what the materializer does with ``cellSourceEdited``:
rebase the edit over every edit that landed after its ``base_rev``, with the
landed edit first in ``transform``, apply it, append it.
"""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared_schema import ot
from shared_schema.editing import CellEditBuffer
from shared_schema.ot import OTError, TextOps

ALPHABET = "ab é🙂\n"


class Server:
    def __init__(self, text: str) -> None:
        self.texts = [text]  # texts[rev]
        self.history: list[TextOps] = []  # history[rev] takes texts[rev] to texts[rev + 1]

    @property
    def text(self) -> str:
        return self.texts[-1]

    def receive(self, base_rev: int, ops: TextOps) -> TextOps:
        assert 0 <= base_rev <= len(self.history)
        for landed in self.history[base_rev:]:
            _, ops = ot.transform(landed, ops)
        self.texts.append(ot.apply(self.text, ops))
        self.history.append(ops)
        return ops


class Simulation:
    def __init__(self, text: str, n_clients: int) -> None:
        self.server = Server(text)
        self.clients = [CellEditBuffer(text, 0) for _ in range(n_clients)]
        self.pushes: deque[tuple[int, int, TextOps]] = deque()  # (author, base_rev, ops)
        self.inboxes: list[deque[tuple[int, TextOps]]] = [deque() for _ in self.clients]

    def flush(self, c: int) -> None:
        outgoing = self.clients[c].take_outgoing()
        if outgoing is not None:
            self.pushes.append((c, *outgoing))

    def serve(self) -> None:
        author, base_rev, ops = self.pushes.popleft()
        applied = self.server.receive(base_rev, ops)
        for inbox in self.inboxes:
            inbox.append((author, applied))

    def deliver(self, c: int) -> None:
        client = self.clients[c]
        author, ops = self.inboxes[c].popleft()
        if author == c:
            client.confirm_own()
        else:
            client.apply_remote(ops)
        assert client.confirmed_text == self.server.texts[client.confirmed_rev]

    def drain(self) -> None:
        while True:
            for c in range(len(self.clients)):
                self.flush(c)
            if not self.pushes and not any(self.inboxes):
                return
            while self.pushes:
                self.serve()
            for c, inbox in enumerate(self.inboxes):
                while inbox:
                    self.deliver(c)

    def assert_converged(self) -> None:
        for client in self.clients:
            assert client.in_flight is None and client.buffered is None
            assert client.text == client.confirmed_text == self.server.text
            assert client.confirmed_rev == len(self.server.history)


def run(data: st.DataObject, sim: Simulation, type_: Callable[[int], None]) -> None:
    """Random steps (type, flush, serve, deliver), then drain and check convergence."""
    n = len(sim.clients)
    for _ in range(data.draw(st.integers(0, 40), label="steps")):
        action = data.draw(st.sampled_from(["type", "type", "flush", "serve", "deliver"]))
        c = data.draw(st.integers(0, n - 1), label="client")
        if action == "type":
            type_(c)
        elif action == "flush":
            sim.flush(c)
        elif action == "serve" and sim.pushes:
            sim.serve()
        elif action == "deliver" and sim.inboxes[c]:
            sim.deliver(c)
    sim.drain()
    sim.assert_converged()


@settings(max_examples=250, deadline=None)
@given(st.data(), st.integers(2, 4), st.text(alphabet=ALPHABET, max_size=8))
def test_clients_converge(data: st.DataObject, n_clients: int, initial: str) -> None:
    sim = Simulation(initial, n_clients)

    def type_(c: int) -> None:
        client = sim.clients[c]
        size = len(client.text)
        start = data.draw(st.integers(0, size), label="at")
        if size > start and data.draw(st.booleans(), label="delete"):
            n = data.draw(st.integers(1, size - start), label="length")
            client.edit([start, -n, size - start - n])
        else:
            text = data.draw(st.text(alphabet=ALPHABET, min_size=1, max_size=3), label="text")
            client.edit([start, text, size - start])

    run(data, sim, type_)


@settings(max_examples=250, deadline=None)
@given(st.data(), st.integers(2, 4))
def test_no_keystroke_is_lost_and_order_holds(data: st.DataObject, n_clients: int) -> None:
    """Insert-only: every typed character survives, and no two characters ever
    swap places: each text a client ever showed is a subsequence of the end."""
    sim = Simulation("", n_clients)
    fresh = (chr(0x4E00 + i) for i in itertools.count())  # every keystroke distinct
    typed: list[str] = []
    seen: list[str] = []  # every text a client showed after typing

    def type_(c: int) -> None:
        client = sim.clients[c]
        size = len(client.text)
        start = data.draw(st.integers(0, size), label="at")
        text = "".join(next(fresh) for _ in range(data.draw(st.integers(1, 3), label="n")))
        typed.append(text)
        client.edit([start, text, size - start])
        seen.append(client.text)

    run(data, sim, type_)
    final = sim.server.text
    assert sorted(final) == sorted("".join(typed))
    for shown in seen:
        assert "".join(ch for ch in final if ch in set(shown)) == shown


# --- the state machine, step by step -------------------------------------------


def test_edits_buffer_behind_one_in_flight() -> None:
    buf = CellEditBuffer("ab", 3)
    assert buf.take_outgoing() is None  # synchronized: nothing to send
    buf.edit([2, "c"])
    assert buf.take_outgoing() == (3, [2, "c"])
    buf.edit([3, "d"])
    buf.edit([4, "e"])
    assert buf.take_outgoing() is None  # one in flight at a time
    assert buf.buffered == [3, "de"]
    assert buf.text == "abcde"
    buf.confirm_own()
    assert (buf.confirmed_text, buf.confirmed_rev, buf.in_flight) == ("abc", 4, None)
    assert buf.take_outgoing() == (4, [3, "de"])


def test_remote_edit_rebases_local_ones_and_loses_the_tie() -> None:
    buf = CellEditBuffer("xy", 0)
    buf.edit([1, "A", 1])
    buf.take_outgoing()
    buf.edit([2, "B", 1])  # "xABy"
    # Someone else's insert at the same place landed first: it goes first.
    to_editor = buf.apply_remote([1, "R", 1])
    assert to_editor == [1, "R", 3]
    assert buf.text == "xRABy"
    assert buf.confirmed_text == "xRy" and buf.confirmed_rev == 1
    assert buf.in_flight == (0, [1, "A", 1])  # as pushed, for a retry
    buf.confirm_own()
    assert buf.confirmed_text == "xRAy" and buf.confirmed_rev == 2
    assert buf.take_outgoing() == (2, [3, "B", 1])


def test_noop_edits_are_not_sent() -> None:
    buf = CellEditBuffer("ab", 0)
    buf.edit([2])
    assert buf.buffered is None
    buf.edit([1, "x", 1])
    buf.edit([1, -1, 1])  # typed and deleted again
    assert buf.buffered is None and buf.take_outgoing() is None


def test_remote_edit_can_cancel_the_buffer() -> None:
    buf = CellEditBuffer("abc", 0)
    buf.edit([1, -1, 1])
    buf.apply_remote([1, -1, 1])  # the same deletion landed first
    assert buf.text == buf.confirmed_text == "ac"
    assert buf.buffered is None and buf.take_outgoing() is None


def test_bad_edits_leave_state_untouched() -> None:
    buf = CellEditBuffer("ab", 0)
    buf.edit([2, "c"])
    with pytest.raises(OTError):
        buf.edit([2, "d"])  # made against "ab", not against "abc"
    with pytest.raises(OTError):
        buf.apply_remote([3])  # the confirmed text is "ab"
    assert (buf.text, buf.buffered, buf.confirmed_rev) == ("abc", [2, "c"], 0)
    with pytest.raises(RuntimeError):
        buf.confirm_own()


def test_reset_drops_everything() -> None:
    buf = CellEditBuffer("ab", 0)
    buf.edit([2, "c"])
    buf.take_outgoing()
    buf.edit([3, "d"])
    buf.reset("zz", 7)
    assert (buf.text, buf.confirmed_text, buf.confirmed_rev) == ("zz", "zz", 7)
    assert buf.in_flight is None and buf.buffered is None
