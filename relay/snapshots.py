"""When the relay snapshots a notebook's folded state, and how it keeps that off the request path.

Policy (``RelayConfig``):

- **The newest snapshot** is retaken once the events stored past it add up
  to ``snapshot_tail_ratio`` of its size. Writing a snapshot costs about its
  size, so snapshot work stays a fixed share of push work as the state
  grows, and opening a notebook reads its state plus at most that share of
  it again as log to refold.
- **Time travel.** One snapshot is always taken past each multiple of
  ``snapshot_every``, and storage keeps those when it prunes the rest, so
  ``?at=N`` folds at most about ``snapshot_every`` events on top of one.

Cost: ``NotebookState.dump()`` runs on the event loop, where the state is
consistent, and shares nothing mutable with the state. The JSON is then built
in slices of a few milliseconds that yield to the loop in between
(``encode_json``): ``json.dumps`` holds the GIL, so encoding on a thread would
stall the loop just the same, in one long piece. The write, and the pruning,
run on the storage thread. A push never waits for any of it.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from shared_schema import NotebookState

from .config import RelayConfig
from .storage import Storage
from .turns import Turns

log = logging.getLogger("anode.relay.snapshots")

#: How long encoding may hold the event loop before it lets other work run.
_SLICE_SECONDS = 0.002
#: List items encoded by one ``json.dumps`` call when a list is cut into pieces.
_CHUNK = 1_000
_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))


@dataclass
class SnapshotMark:
    """Where one open notebook's newest snapshot stands."""

    #: The seq of the newest stored snapshot (0: none).
    seq: int = 0
    #: Its length, in characters of JSON.
    size: int = 0
    #: Characters of event JSON stored since: the tail a cold open refolds.
    tail: int = 0
    writing: asyncio.Task[None] | None = field(default=None, repr=False)


class Snapshotter:
    def __init__(self, storage: Storage, config: RelayConfig) -> None:
        self.storage = storage
        self.config = config
        self._writing: set[asyncio.Task[None]] = set()

    def due(self, mark: SnapshotMark, seq: int) -> bool:
        if mark.writing is not None or seq <= mark.seq:
            return False
        every = self.config.snapshot_every
        if seq // every > mark.seq // every:
            return True  # a time-travel snapshot
        return (
            seq - mark.seq >= self.config.snapshot_min_events
            and mark.tail >= self.config.snapshot_tail_ratio * mark.size
        )

    def maybe_take(self, notebook: str, state: NotebookState, mark: SnapshotMark) -> None:
        """Start writing a snapshot of ``state`` if one is due.

        Call it where the state is consistent: it is dumped right here.
        """
        if not self.due(mark, state.seq):
            return
        task = asyncio.create_task(
            self._write(notebook, state.seq, state.dump(), mark, mark.tail),
            name=f"anode-snapshot-{notebook}",
        )
        mark.writing = task
        self._writing.add(task)
        task.add_done_callback(self._writing.discard)

    async def drain(self) -> None:
        """Wait for the snapshots being written (at shutdown, before storage closes)."""
        while self._writing:
            await asyncio.gather(*self._writing, return_exceptions=True)

    async def _write(
        self, notebook: str, seq: int, dumped: dict[str, Any], mark: SnapshotMark, tail: int
    ) -> None:
        try:
            text = await encode_json(dumped)
            await self.storage.save_snapshot(
                notebook, seq, text, keep_every=self.config.snapshot_every
            )
        except Exception:  # the next append tries again; the log is what matters
            log.exception("could not store a snapshot of %s at seq %d", notebook, seq)
        else:
            mark.seq = seq
            mark.size = len(text)
            mark.tail -= tail  # events stored while this one was written stay in the tail
        finally:
            mark.writing = None


async def encode_json(value: Any) -> str:
    """``value`` as compact JSON, built a slice at a time so the event loop keeps serving."""
    parts: list[str] = []
    turns = Turns(_SLICE_SECONDS)
    for piece in _pieces(value, depth=3):
        parts.append(piece)
        await turns.maybe_yield()
    return "".join(parts)


def _pieces(value: Any, depth: int) -> Iterator[str]:
    """The JSON of ``value`` in pieces that each take one short ``json.dumps`` call.

    Lists longer than ``_CHUNK`` are cut into chunks; other containers are
    opened down to ``depth`` levels, below which each value is encoded whole.
    """
    if isinstance(value, list) and len(value) > _CHUNK:
        yield "["
        for start in range(0, len(value), _CHUNK):
            yield ("," if start else "") + _ENCODER.encode(value[start : start + _CHUNK])[1:-1]
        yield "]"
    elif depth and isinstance(value, dict):
        yield "{"
        for index, (key, item) in enumerate(value.items()):
            yield ("," if index else "") + _ENCODER.encode(key) + ":"
            yield from _pieces(item, depth - 1)
        yield "}"
    elif depth and isinstance(value, list):
        yield "["
        for index, item in enumerate(value):
            if index:
                yield ","
            yield from _pieces(item, depth - 1)
        yield "]"
    else:
        yield _ENCODER.encode(value)
