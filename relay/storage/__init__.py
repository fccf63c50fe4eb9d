"""The storage interface: one small contract, one class per database.

Events travel through storage as ``StoredRow``: the few columns the relay
queries on, plus ``body``, the event's JSON exactly as served. Pulls and
streams join bodies into responses without decoding them again.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from json.encoder import encode_basestring  # json.dumps of one str (ensure_ascii off), in C
from typing import Protocol
from urllib.parse import urlsplit


@dataclass(frozen=True, slots=True)
class StoredRow:
    seq: int
    id: str
    body: str


@dataclass(frozen=True, slots=True)
class NewRow:
    """An event ready to append; the storage assigns its seq and writes ``body``."""

    id: str
    name: str
    v: int
    args_json: str
    actor: str
    ts: float

    def body(self, seq: int) -> str:
        """The stored JSON: every string goes through the encoder, whatever it holds
        (``tests/test_storage.py`` proves it equal to ``json.dumps`` over arbitrary strings)."""
        return (
            f'{{"seq":{seq},"id":{encode_basestring(self.id)},"name":{_json_str(self.name)},"v":{self.v},'
            f'"args":{self.args_json},"actor":{_json_str(self.actor)},"ts":{self.ts!r}}}'
        )


@dataclass(frozen=True, slots=True)
class NotebookInfo:
    id: str
    title: str
    created_at: float
    updated_at: float
    head: int
    cells: int
    live_kernels: int


@dataclass(frozen=True, slots=True)
class Summary:
    """What the notebook list shows, kept beside the log so listing needs no fold."""

    title: str
    cells: int
    live_kernels: int


@dataclass(frozen=True, slots=True)
class AppendResult:
    #: One seq per input row, in order: new or, for a known id, the existing one.
    seqs: list[int]
    #: The rows this append stored (known ids are not stored again).
    stored: list[StoredRow]
    head: int


@dataclass(frozen=True, slots=True)
class Lookup:
    """What an append of some event ids would find: the head, and which ids are stored."""

    head: int
    #: id -> (seq, body) of the ids already stored.
    known: dict[str, tuple[int, str]]


#: Given the rows another writer stored past ``expect_head``; raises to store nothing.
OnMoved = Callable[[list[StoredRow]], Awaitable[None]]
#: Given those rows and the planned append, under the notebook's lock: returns the summary
#: to store with it (or None); raises to store nothing.
UnderLock = Callable[[list["StoredRow"], "AppendResult"], Awaitable["Summary | None"]]


class StorageError(Exception):
    """The store cannot be used (unwritable, or written by a newer Anode)."""


class StoreUnavailable(StorageError):
    """The store cannot be reached right now (a PostgreSQL server restarting, a network cut)."""


class HeadMoved(Exception):
    """Another writer appended to the notebook since the caller looked up its head."""

    def __init__(self, notebook: str, head: int) -> None:
        super().__init__(notebook, head)
        #: The head the append found.
        self.head = head


class UnknownNotebook(Exception):
    pass


class NotebookExists(Exception):
    pass


class IdConflict(Exception):
    """An event id is already stored with different content."""

    def __init__(self, event_id: str) -> None:
        super().__init__(event_id)
        self.event_id = event_id


class Storage(Protocol):
    #: Whether other processes append to this store too (PostgreSQL): the relay
    #: then brings a notebook up to the store's head before it decides anything.
    shared: bool

    async def open(self) -> None: ...

    async def close(self) -> None: ...

    async def create_notebook(
        self, notebook: str, rows: Sequence[NewRow], summary: Summary
    ) -> list[StoredRow]:
        """Create the notebook with its first events (seqs 1..N) in one transaction;
        ``NotebookExists`` if taken."""

    async def list_notebooks(self) -> list[NotebookInfo]: ...

    async def notebook(self, notebook: str) -> NotebookInfo | None: ...

    async def head(self, notebook: str) -> int:
        """The notebook's committed head; ``UnknownNotebook`` if there is none."""

    async def lookup(self, notebook: str, ids: Sequence[str]) -> Lookup:
        """The head, and which of ``ids`` are stored: what ``append`` would find now."""

    async def append(
        self,
        notebook: str,
        rows: Sequence[NewRow],
        *,
        summary: Summary | None = None,
        expect_head: int | None = None,
        on_moved: OnMoved | None = None,
        under_lock: UnderLock | None = None,
    ) -> AppendResult:
        """Atomically append; idempotent by event id (``IdConflict`` if reused differently).

        Seqs follow ``plan_append``. ``summary``, when given, is written in the
        same transaction, so the notebook list never disagrees with the log.
        With ``expect_head``, raises ``HeadMoved`` (storing nothing) unless the
        head is still that; a store shared by several processes may instead
        hand the rows stored past it to ``on_moved`` while it holds the
        notebook's lock, and append after them (no retry, no lost turn).
        Only a shared store takes ``under_lock``: it calls it, still under the
        lock, with the rows it missed and the planned append, and stores the
        summary it returns in the same transaction.
        """

    async def read(
        self, notebook: str, after: int, limit: int, upto: int | None = None
    ) -> list[StoredRow]: ...

    async def set_summary(self, notebook: str, summary: Summary) -> None: ...

    async def save_snapshot(
        self, notebook: str, seq: int, state_json: str, *, keep_every: int
    ) -> None:
        """Store a snapshot and prune older ones in one transaction.

        Kept: this snapshot, and of the older ones the first at or past each
        multiple of ``keep_every`` (time travel folds from those).
        """

    async def load_snapshot(self, notebook: str, at: int | None = None) -> tuple[int, str] | None:
        """The newest snapshot at or before ``at`` (any, when ``None``)."""


def is_postgres_url(value: str) -> bool:
    return value.startswith(("postgresql://", "postgres://"))


def redact(url: str) -> str:
    """A PostgreSQL URL without its password (and query), for messages and logs."""
    parts = urlsplit(url)
    user = f"{parts.username}@" if parts.username else ""
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{user}{host}{port}{parts.path}"


def plan_append(
    head: int, rows: Sequence[NewRow], known: Mapping[str, tuple[int, str]]
) -> AppendResult:
    """Which rows an append stores, and every row's seq: the one rule every store follows.

    A known id keeps its seq (``IdConflict`` if its content differs); an id
    repeated within the batch is stored once; new events take the next seqs.
    Pure, so the relay can plan an append before making it (see ``Lookup``).
    """
    seqs: list[int] = []
    stored: list[StoredRow] = []
    batch_seq: dict[str, int] = {}
    for row in rows:
        if row.id in known:
            seq, body = known[row.id]
            if not _same_event(body, row):
                raise IdConflict(row.id)
            seqs.append(seq)
        elif row.id in batch_seq:
            seqs.append(batch_seq[row.id])
        else:
            head += 1
            batch_seq[row.id] = head
            stored.append(StoredRow(seq=head, id=row.id, body=row.body(head)))
            seqs.append(head)
    return AppendResult(seqs=seqs, stored=stored, head=head)


def _same_event(body: str, row: NewRow) -> bool:
    stored = json.loads(body)
    return (
        stored["name"] == row.name
        and stored["v"] == row.v
        and stored["args"] == json.loads(row.args_json)
    )


@lru_cache(maxsize=1_024)
def _json_str(value: str) -> str:
    """A string as JSON. Cached: every row of a batch has the same actor, and names repeat."""
    return json.dumps(value, ensure_ascii=False)
