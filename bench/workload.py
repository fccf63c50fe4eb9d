"""Realistic events for the benchmarks, as an editor and a kernel would push them.

A ``Typist`` owns some cells of one notebook and types into them: short
inserts at a cursor, the odd deletion, now and then a new cell. Because it
is the only writer of its cells it knows each cell's revision exactly, so
every ``cellSourceEdited`` it makes is against the latest revision (the
common case: no transform on the relay). A ``Kernel`` runs the cells: the
request, the claim, stdout, a result and the completion, as seven events.

Pure standard library, seeded, so two runs push the same shapes of event.
"""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass, field
from typing import Any

Event = dict[str, Any]

#: Text a person might type, in the bursts an editor's debounce would send.
_WORDS = (
    "import numpy as np\n", "df = pd.read_csv(path)\n", "for i in range(10):\n    ",
    "print(", "result", ")\n", "def ", "return x * 2\n", "plt.plot(x, y)\n", "# TODO: ",
    "value", " = ", "[", "]", "model.fit(X_train, y_train)\n", "assert ", "None", "self.",
)  # fmt: skip

#: A cell grows to about this many characters, then its author trims it.
_MAX_SOURCE = 1_500


def event_id() -> str:
    return uuid.uuid4().hex


def _ops(position: int, length: int, insert: str = "", delete: int = 0) -> list[int | str]:
    """An edit in the ot.js form: retain, insert or delete, retain (no zero components)."""
    ops: list[int | str] = []
    if position:
        ops.append(position)
    if insert:
        ops.append(insert)
    if delete:
        ops.append(-delete)
    rest = length - position - delete
    if rest:
        ops.append(rest)
    return ops


@dataclass
class _Cell:
    id: str
    source: str = ""
    rev: int = 0
    cursor: int = 0


@dataclass
class Typist:
    """One person typing into cells only they edit."""

    name: str
    seed: int = 0
    new_cell_every: int = 40
    _rng: random.Random = field(init=False)
    _cells: list[_Cell] = field(default_factory=list, init=False)
    _count: int = field(default=0, init=False)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)

    @property
    def cells(self) -> list[_Cell]:
        return self._cells

    def create_cell(self) -> Event:
        cell = _Cell(id=f"{self.name}-c{len(self._cells)}", source="x = 1\n")
        cell.cursor = len(cell.source)
        after = self._cells[-1].id if self._cells else None
        self._cells.append(cell)
        return {
            "id": event_id(),
            "name": "cellCreated",
            "v": 1,
            "args": {
                "cell_id": cell.id,
                "cell_type": "code",
                "after": after,
                "source": cell.source,
            },
        }

    def edit(self, cell: _Cell | None = None) -> Event:
        """One debounced burst of typing (or a trim) in ``cell`` (by default a random one)."""
        cell = cell or self._rng.choice(self._cells)
        length = len(cell.source)
        rng = self._rng
        if length > _MAX_SOURCE:  # select a block and delete it
            start = rng.randrange(0, length // 2)
            count = rng.randrange(length // 4, length // 2)
            ops = _ops(start, length, delete=count)
            cell.source = cell.source[:start] + cell.source[start + count :]
            cell.cursor = start
        elif rng.random() < 0.1 and cell.cursor > 0:  # backspace a few characters
            count = min(cell.cursor, rng.randint(1, 5))
            start = cell.cursor - count
            ops = _ops(start, length, delete=count)
            cell.source = cell.source[:start] + cell.source[cell.cursor :]
            cell.cursor = start
        else:
            if rng.random() < 0.2:  # clicked somewhere else
                cell.cursor = rng.randint(0, length)
            text = rng.choice(_WORDS)
            ops = _ops(cell.cursor, length, insert=text)
            cell.source = cell.source[: cell.cursor] + text + cell.source[cell.cursor :]
            cell.cursor += len(text)
        event = {
            "id": event_id(),
            "name": "cellSourceEdited",
            "v": 1,
            "args": {"cell_id": cell.id, "base_rev": cell.rev, "ops": ops},
        }
        cell.rev += 1
        return event

    def next_event(self) -> Event:
        """Mostly edits; a new cell every ``new_cell_every`` events (and first of all)."""
        self._count += 1
        if not self._cells or self._count % self.new_cell_every == 0:
            return self.create_cell()
        return self.edit()

    def batch(self, size: int) -> list[Event]:
        return [self.next_event() for _ in range(size)]


@dataclass
class Kernel:
    """A kernel session that runs cells, seven events per execution."""

    session_id: str = "bench-kernel"
    _count: int = field(default=0, init=False)

    def start(self) -> Event:
        args = {
            "session_id": self.session_id,
            "host": "node",
            "lease_seconds": 3_600.0,
            "label": "bench",
        }
        return {"id": event_id(), "name": "kernelSessionStarted", "v": 1, "args": args}

    def end(self) -> Event:
        args = {"session_id": self.session_id, "reason": "bench finished"}
        return {"id": event_id(), "name": "kernelSessionEnded", "v": 1, "args": args}

    def run(self, cell_id: str, source: str) -> list[Event]:
        self._count += 1
        run = f"{self.session_id}-x{self._count}"
        session = self.session_id
        count = self._count

        def event(name: str, **args: Any) -> Event:
            return {"id": event_id(), "name": name, "v": 1, "args": {"execution_id": run, **args}}

        return [
            event("executionRequested", cell_id=cell_id, source=source),
            event("executionAssigned", session_id=session),
            event("executionStarted", session_id=session, execution_count=count),
            event(
                "streamAppended", stream="stdout", text=f"epoch {count}: loss=0.{count % 997:03d}\n"
            ),
            event(
                "outputAdded",
                output={
                    "output_type": "execute_result",
                    "execution_count": count,
                    "data": {"text/plain": f"array([{count}, {count * 2}, {count * 3}])"},
                    "metadata": {},
                },
            ),
            event("streamAppended", stream="stdout", text="done\n"),
            event("executionCompleted", session_id=session, status="ok", execution_count=count),
        ]


def history(total: int, cells: int = 5, edits_per_run: int = 60, seed: int = 1) -> list[Event]:
    """A long-lived notebook's log: edits to a few cells, with a run every so often.

    ``total`` counts the pushed events (the relay's ``notebookInitialized``
    is one more). The kernel session ends last, as kernels do.
    """
    typist = Typist("hist", seed=seed, new_cell_every=10**9)
    kernel = Kernel()
    events: list[Event] = [kernel.start()]
    events += [typist.create_cell() for _ in range(cells)]
    rng = random.Random(seed)
    while len(events) < total - 1:
        for _ in range(min(edits_per_run, total - 1 - len(events))):
            events.append(typist.edit())
        if len(events) + 7 <= total - 1:
            cell = rng.choice(typist.cells)
            events += kernel.run(cell.id, cell.source)
    events.append(kernel.end())
    return events[:total]
