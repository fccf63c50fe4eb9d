"""The relay's core: push, pull, wait and snapshot, one notebook at a time.

Each open notebook keeps its folded state in memory beside an
``asyncio.Lock`` that makes the relay its one writer: a push is validated
whole against ``shared_schema``, appended atomically, folded, and fanned
out, in that order, before the next push to that notebook starts.

A batch that can change what the notebook list shows (``_SUMMARY_EVENTS``)
is folded *before* it is committed, so that the list's summary commits in
the same transaction and a crash cannot leave the two disagreeing. Should
anything fail between such a fold and its commit, the in-memory state is
dropped and reloaded from storage, which stays the one truth.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import secrets
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from shared_schema import NotebookState, PushedEvent, advance, stored, stored_from_json
from shared_schema import events as ev
from shared_schema.events import Event
from shared_schema.ids import RELAY_ACTOR, EventId, is_valid_id

from .collector import collector_paused
from .config import RelayConfig
from .errors import ApiError, BadRequest, Conflict, NotFound, Unavailable
from .hub import EventBatch, Hub
from .snapshots import SnapshotMark, Snapshotter
from .storage import (
    AppendResult,
    HeadMoved,
    IdConflict,
    NewRow,
    NotebookExists,
    NotebookInfo,
    Storage,
    StoredRow,
    Summary,
    UnknownNotebook,
    plan_append,
)
from .turns import Turns

#: Checks a batch against the state it would land on; raises to refuse it.
Authorize = Callable[[NotebookState, list[PushedEvent]], None]

#: Rows read from storage per call when refolding.
_PAGE = 5_000
#: Longest stretch of folding between two turns of the event loop (seconds). One
#: event costs little (an edit at most ``limits.MAX_REBASE_WORK``), but a batch,
#: or a long tail refolded on open or for ``?at=``, would hold every other
#: notebook's requests; between events the state is whole.
_FOLD_SLICE = 0.01
#: JSON decoded in one go when refolding (characters): about 5 ms of ``json.loads``, so a
#: page of big events does not hold the loop past ``_FOLD_SLICE`` by much.
_DECODE_CHARS = 500_000
#: Head snapshots kept encoded (``snapshot_json``): the notebooks asked for last.
_SERVED_SNAPSHOTS = 8
#: Appends that find another relay's append in their way before one goes through.
_MAX_RETRIES = 50

log = logging.getLogger("anode.relay")


@dataclass(frozen=True, slots=True)
class _Batch:
    """One append as the relay makes it: the rows to store, the events they encode, and the
    check that decides whether the state it lands on takes it."""

    rows: list[NewRow]
    events: dict[str, Event]
    actor: str
    ts: float
    items: list[PushedEvent]
    authorize: Authorize | None

    @classmethod
    def of(
        cls, items: list[PushedEvent], actor: str, ts: float, authorize: Authorize | None
    ) -> _Batch:
        rows = [_row(item.id, item.event, actor, ts) for item in items]
        events: dict[str, Event] = {item.id: item.event for item in items}
        return cls(rows, events, actor, ts, items, authorize)

    def check(self, state: NotebookState) -> None:
        """Raise to refuse the batch on ``state`` (run again whenever the state moved)."""
        if self.authorize is not None:
            self.authorize(state, self.items)


@dataclass(eq=False, slots=True)
class _Pending:
    """A pushed batch waiting in its notebook's commit queue, and the pusher's answer."""

    items: list[PushedEvent]
    actor: str
    authorize: Authorize | None
    future: asyncio.Future[tuple[list[int], int]]

    def batch(self, ts: float) -> _Batch:
        return _Batch.of(self.items, self.actor, ts, self.authorize)

    def succeed(self, outcome: tuple[list[int], int]) -> None:
        if not self.future.done():  # its pusher may have gone (cancelled)
            self.future.set_result(outcome)

    def fail(self, error: BaseException) -> None:
        if not self.future.done():
            self.future.set_exception(error)


#: Events whose fold can change what the notebook list shows.
_SUMMARY_EVENTS = (
    ev.NotebookTitleChanged,
    ev.CellCreated,
    ev.CellImported,
    ev.CellDeleted,
    ev.KernelSessionStarted,
    ev.KernelSessionEnded,
    ev.KernelSessionExpired,
)


class RecentRows:
    """The last ``size`` stored rows of a notebook, with no gap between them."""

    def __init__(self, size: int = 512) -> None:
        self._rows: deque[StoredRow] = deque(maxlen=size)

    def add(self, rows: list[StoredRow]) -> None:
        if not rows:
            return
        if self._rows and rows[0].seq != self._rows[-1].seq + 1:
            self._rows.clear()  # a gap: what is kept must be contiguous
        self._rows.extend(rows)

    def after(self, seq: int, limit: int, head: int) -> list[StoredRow] | None:
        """Up to ``limit`` rows past ``seq`` when they are all here and the last kept row is
        ``head``; None when only the store can answer."""
        rows = self._rows
        if not rows or rows[-1].seq != head or seq + 1 < rows[0].seq:
            return None
        start = max(seq + 1 - rows[0].seq, 0)
        return list(itertools.islice(rows, start, start + limit))


@dataclass(eq=False)
class OpenNotebook:
    id: str
    state: NotebookState
    summary: Summary
    snapshot: SnapshotMark
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    last_ts: float = 0.0
    #: Dropped for a copy reloaded from storage (see ``Notebooks._forget``).
    dropped: bool = False
    #: The rows stored last, so a pull that is nearly caught up (a kernel's or a
    #: follower's long poll) is answered from memory, without a read of the store.
    recent: RecentRows = field(default_factory=RecentRows)
    #: Batches waiting to be committed, and the task committing them (``Notebooks._append``).
    queue: list[_Pending] = field(default_factory=list)
    committer: asyncio.Task[None] | None = None

    def publish(self, hub: Hub, rows: list[StoredRow]) -> None:
        """Fan out rows just stored and folded, and keep them for pulls."""
        self.recent.add(rows)
        hub.publish(self.id, EventBatch.of(rows))


class Notebooks:
    def __init__(
        self,
        storage: Storage,
        hub: Hub,
        config: RelayConfig,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.storage = storage
        self.hub = hub
        self.config = config
        self.clock = clock
        self.snapshots = Snapshotter(storage, config)
        self._open: dict[str, OpenNotebook] = {}
        self._opening: dict[str, asyncio.Lock] = {}
        #: (notebook, internal) -> (seq, body) of the head snapshots served last.
        self._served: OrderedDict[tuple[str, bool], tuple[int, str]] = OrderedDict()

    async def close(self) -> None:
        """Finish the commits and snapshots under way; the storage must still be open."""
        committers = [opened.committer for opened in self._open.values() if opened.committer]
        await asyncio.gather(*committers, return_exceptions=True)
        await self.snapshots.drain()

    # --- notebooks --------------------------------------------------------------

    async def create(
        self,
        title: str,
        actor: str,
        notebook_id: str | None = None,
        events: Sequence[Event] = (),
    ) -> OpenNotebook:
        """A new notebook: its first event, then ``events`` (already validated) by
        ``actor``, all in one transaction: an import lands whole or not at all."""
        notebook_id = notebook_id or _new_notebook_id()
        ts = self.clock()
        first = ev.NotebookInitialized(title=title)
        rows = [_row(f"init-{notebook_id}", first, RELAY_ACTOR, ts)]
        rows += [_row(secrets.token_hex(16), event, actor, ts) for event in events]
        state = NotebookState()
        for seq, (row, event) in enumerate(zip(rows, [first, *events], strict=True), 1):
            advance(state, stored(seq, row.id, event, row.actor, ts))
        summary = _summary(state)
        try:
            written = await self.storage.create_notebook(notebook_id, rows, summary)
        except NotebookExists:
            raise Conflict(
                f"a notebook with id {notebook_id!r} exists", code="notebook_exists"
            ) from None
        mark = SnapshotMark(tail=sum(len(row.body) for row in written))
        opened = OpenNotebook(notebook_id, state, summary, mark, last_ts=ts)
        self._open[notebook_id] = opened
        opened.publish(self.hub, written)
        self.snapshots.maybe_take(notebook_id, state, mark)
        return opened

    async def list_notebooks(self) -> list[NotebookInfo]:
        return await self.storage.list_notebooks()

    def loaded(self) -> list[OpenNotebook]:
        return list(self._open.values())

    async def open(self, notebook_id: str) -> OpenNotebook:
        """The notebook's folded state, loading it (snapshot + tail) on first use."""
        if not is_valid_id(notebook_id):
            raise BadRequest(
                "a notebook id is 1-64 characters of A-Z, a-z, 0-9, '_' or '-'",
                code="invalid_notebook_id",
            )
        opened = self._open.get(notebook_id)
        if opened is not None:
            return opened
        lock = self._opening.setdefault(notebook_id, asyncio.Lock())
        try:
            async with lock:
                opened = self._open.get(notebook_id)
                if opened is None:
                    opened = await self._load(notebook_id)
                    self._open[notebook_id] = opened
                    if self.storage.shared:
                        # Notices of appends made while it loaded found it not yet
                        # loaded; from here on ``follow`` sees them.
                        await self.follow(notebook_id, await self.storage.head(notebook_id))
        finally:  # also after a 404: unknown ids must not pile up locks
            self._opening.pop(notebook_id, None)
        return opened

    async def _load(self, notebook_id: str) -> OpenNotebook:
        info = await self.storage.notebook(notebook_id)
        if info is None:
            raise NotFound(f"no notebook {notebook_id!r}", code="unknown_notebook")
        state, mark = await self._state_at(notebook_id, None)
        summary = _summary(state)
        if summary != Summary(info.title, info.cells, info.live_kernels):
            await self.storage.set_summary(notebook_id, summary)
        # Due at once when the newest snapshot was unusable (an older format)
        # or is far behind: the next open should not refold all that again.
        self.snapshots.maybe_take(notebook_id, state, mark)
        return OpenNotebook(notebook_id, state, summary, mark, last_ts=state.updated_at or 0.0)

    async def _state_at(
        self, notebook_id: str, at: int | None
    ) -> tuple[NotebookState, SnapshotMark]:
        """Fold from the newest usable snapshot up to ``at`` (the head when None)."""
        state = NotebookState()
        mark = SnapshotMark()
        with collector_paused():
            snapshot = await self.storage.load_snapshot(notebook_id, at)
            if snapshot is not None:
                try:
                    state = NotebookState.load(json.loads(snapshot[1]))
                    mark = SnapshotMark(seq=snapshot[0], size=len(snapshot[1]))
                except (ValueError, KeyError, TypeError):
                    state = NotebookState()  # an older state format: refold from the log
            while True:
                rows = await self.storage.read(notebook_id, state.seq, _PAGE, upto=at)
                await _refold(state, rows)
                mark.tail += sum(len(row.body) for row in rows)
                if len(rows) < _PAGE:
                    return state, mark

    # --- events -----------------------------------------------------------------

    async def push(
        self,
        notebook_id: str,
        pushed: list[PushedEvent],
        actor: str,
        authorize: Authorize | None = None,
    ) -> tuple[list[int], int]:
        """Append, fold and fan out a parsed batch (``pushes.parse_push``). Returns (seqs, head).

        ``authorize(state, pushed)`` runs under the notebook's write lock, on
        the state the batch would land on, and raises to refuse the batch.
        """
        opened = await self.open(notebook_id)
        return await self._append(opened, pushed, actor, authorize)

    async def append_as_relay(
        self,
        notebook_id: str,
        event: Event,
        *,
        event_id: str | None = None,
        authorize: Authorize | None = None,
    ) -> None:
        """Write an event the relay decided. ``event_id``, when given, makes the write
        idempotent: relays that take the same decision store it once."""
        opened = await self.open(notebook_id)
        relay_id = EventId(event_id or f"relay-{secrets.token_hex(12)}")
        await self._append(opened, [PushedEvent(relay_id, event)], RELAY_ACTOR, authorize)

    async def _append(
        self,
        opened: OpenNotebook,
        items: list[PushedEvent],
        actor: str,
        authorize: Authorize | None = None,
    ) -> tuple[list[int], int]:
        """Append one batch; (its seqs, the head it left) once it is committed.

        On SQLite, batches that arrive while another commits wait in the
        notebook's queue and go to storage together (``_commit_queued``).
        """
        if self.storage.shared:  # other relays' appends decide the order: one at a time
            return await self._append_one(opened, items, actor, authorize)
        pending = _Pending(items, actor, authorize, asyncio.get_running_loop().create_future())
        opened.queue.append(pending)
        if opened.committer is None:
            opened.committer = asyncio.create_task(
                self._commit_queued(opened), name=f"anode-commit-{opened.id}"
            )
        return await pending.future

    async def _commit_queued(self, opened: OpenNotebook) -> None:
        """Commit the notebook's queued batches, all that are waiting at once in one go,
        until none is left. A task of its own: a pusher that goes away stops no other's."""
        group: list[_Pending] = []
        try:
            while opened.queue:
                group = [pending for pending in opened.queue if not pending.future.done()]
                opened.queue.clear()
                if len(group) == 1:
                    only = group[0]
                    try:
                        outcome = await self._append_one(
                            opened, only.items, only.actor, only.authorize
                        )
                    except Exception as error:
                        only.fail(error)
                    else:
                        only.succeed(outcome)
                elif group:
                    await self._append_group(opened, group)
        except BaseException:
            for pending in [*opened.queue, *group]:
                pending.fail(Unavailable("the relay is stopping", code="relay_stopping"))
            raise
        finally:
            opened.committer = None

    async def _append_one(
        self,
        opened: OpenNotebook,
        items: list[PushedEvent],
        actor: str,
        authorize: Authorize | None = None,
    ) -> tuple[list[int], int]:
        for _ in range(_MAX_RETRIES):
            async with opened.lock:
                if opened.dropped:  # reloaded while this push waited for the lock
                    opened = await self.open(opened.id)
                    continue
                ts = max(self.clock(), opened.last_ts)
                batch = _Batch.of(items, actor, ts, authorize)
                # Decided on this state; the append stores it only if the state is
                # still the head (``expect_head``), else it is decided again.
                batch.check(opened.state)
                try:
                    if not any(isinstance(item.event, _SUMMARY_EVENTS) for item in items):
                        result = await self._append_then_fold(opened, batch)
                    elif self.storage.shared:
                        result = await self._append_with_summary_locked(opened, batch)
                    else:
                        result = await self._append_with_summary(opened, batch)
                except IdConflict as error:
                    raise _reused(error) from None
                except HeadMoved as moved:  # another writer appended: decide again on its head
                    if not opened.dropped:
                        await self._catch_up(opened, moved.head)
                    continue
                if result.stored:
                    opened.last_ts = ts
                    opened.publish(self.hub, result.stored)
                    self.snapshots.maybe_take(opened.id, opened.state, opened.snapshot)
                return result.seqs, result.head
        raise Unavailable(
            "other relays keep appending to this notebook; try again", code="notebook_busy"
        )

    async def _append_group(self, opened: OpenNotebook, group: list[_Pending]) -> None:
        """Several batches in one commit, each decided on the state the ones before it leave.

        As ``_append_with_summary`` does for one batch: look up which ids are
        stored, then for each batch in turn check it, plan it against what is
        stored and what the batches before it planned, and fold it, so a claim
        or an edit is judged exactly as if the batches had come one by one. A
        refused batch gets its error and leaves nothing behind. Then one append
        stores every accepted batch's new rows, with the summary, in one
        transaction: two trips to storage for the group, against one per batch.
        Each pusher hears of its batch only once that transaction is committed.
        """
        accepted: list[tuple[_Pending, AppendResult]] = []
        try:
            async with opened.lock:
                if opened.dropped:  # reloaded while the group waited: start over on the new copy
                    opened = await self.open(opened.id)
                    await self._append_group(opened, group)
                    return
                ids = [item.id for pending in group for item in pending.items]
                found = await self.storage.lookup(opened.id, ids)
                known = dict(found.known)
                head = found.head
                new_rows: list[NewRow] = []
                last_ts = opened.last_ts
                for pending in group:
                    ts = max(self.clock(), last_ts)
                    batch = pending.batch(ts)
                    try:
                        batch.check(opened.state)
                        planned = plan_append(head, batch.rows, known)
                    except IdConflict as error:
                        pending.fail(_reused(error))
                        continue
                    except Exception as error:
                        pending.fail(error)
                        continue
                    await self._fold(opened, planned.stored, batch)
                    new_ids = {row.id for row in planned.stored}
                    for row in batch.rows:
                        if row.id in new_ids:
                            new_rows.append(row)
                            new_ids.discard(row.id)  # an id repeated in the batch is stored once
                    known.update((row.id, (row.seq, row.body)) for row in planned.stored)
                    head = planned.head
                    last_ts = ts
                    accepted.append((pending, planned))
                if new_rows:
                    summary = _summary(opened.state)
                    try:
                        result = await self.storage.append(
                            opened.id,
                            new_rows,
                            summary=summary if summary != opened.summary else None,
                            expect_head=found.head,
                        )
                    except BaseException:  # the state holds batches the store may not
                        self._forget(opened)
                        raise
                    if result.head != head:  # pragma: no cover - one writer plans what it stores
                        self._forget(opened)
                        raise RuntimeError(f"planned head {head}, stored {result.head}")
                    opened.summary = summary
                    opened.last_ts = last_ts
                    opened.publish(self.hub, result.stored)
                    self.snapshots.maybe_take(opened.id, opened.state, opened.snapshot)
        except Exception as error:  # nothing of the group is stored: each pusher hears why
            for pending in group:
                pending.fail(error)
            return
        for pending, planned in accepted:
            pending.succeed((planned.seqs, planned.head))

    async def _append_then_fold(self, opened: OpenNotebook, batch: _Batch) -> AppendResult:
        """The common case: one call to storage, which decides what is new.

        The append expects the head this state stands at. If another relay
        appended in between, a shared store hands over what it stored
        (``on_moved``) while it holds the notebook's lock: the relay folds it,
        fans it out and authorizes the batch again before the append goes on;
        any other store says ``HeadMoved`` and the caller retries.
        """

        async def caught_up(missed: list[StoredRow]) -> None:
            await self._fold_stored(opened, missed)
            batch.check(opened.state)

        try:
            result = await self.storage.append(
                opened.id, batch.rows, expect_head=opened.state.seq, on_moved=caught_up
            )
        except (IdConflict, HeadMoved, ApiError):
            raise  # refused before anything was written
        except BaseException:  # cancelled, or failed: it may or may not have committed
            self._forget(opened)
            raise
        if result.stored:
            await self._fold(opened, result.stored, batch)
        return result

    async def _append_with_summary(self, opened: OpenNotebook, batch: _Batch) -> AppendResult:
        """Fold first, then commit the batch and the summary it leads to together.

        Folding needs to know which events are new, hence the lookup first:
        one more round trip to storage, paid only by the few batches that
        can change the summary.
        """
        found = await self.storage.lookup(opened.id, [row.id for row in batch.rows])
        await self._catch_up(opened, found.head)
        planned = plan_append(found.head, batch.rows, found.known)  # IdConflict: nothing folded yet
        if not planned.stored:
            return planned
        await self._fold(opened, planned.stored, batch)
        summary = _summary(opened.state)
        try:
            result = await self.storage.append(
                opened.id,
                batch.rows,
                summary=summary if summary != opened.summary else None,
                expect_head=found.head,
            )
        except BaseException:  # the state holds events the store may not (HeadMoved included)
            self._forget(opened)
            raise
        opened.summary = summary
        return result

    async def _append_with_summary_locked(
        self, opened: OpenNotebook, batch: _Batch
    ) -> AppendResult:
        """On a shared store: the same, all under the notebook's lock in the database.

        Other relays append to this notebook too; looking up, folding and then
        appending only if the head had not moved would, under their load,
        fold and drop the batch again and again. Here the store holds the row
        lock while the relay folds what it missed, decides, folds the batch
        and hands back the summary to commit with it.
        """

        async def decide(missed: list[StoredRow], planned: AppendResult) -> Summary | None:
            await self._fold_stored(opened, missed)
            batch.check(opened.state)
            if planned.stored:
                await self._fold(opened, planned.stored, batch)
            summary = _summary(opened.state)
            return summary if summary != opened.summary else None

        try:
            result = await self.storage.append(
                opened.id, batch.rows, expect_head=opened.state.seq, under_lock=decide
            )
        except (IdConflict, ApiError):
            raise  # refused before the batch was folded: the state holds only what is stored
        except BaseException:  # it may hold the batch, which the store may not
            self._forget(opened)
            raise
        opened.summary = _summary(opened.state)
        return result

    async def _fold(self, opened: OpenNotebook, rows: list[StoredRow], batch: _Batch) -> None:
        """Fold a batch in, giving the loop turns; cancelled midway, the half-folded
        state is dropped (the next request reloads it from storage)."""
        turns = Turns(_FOLD_SLICE)
        try:
            for row in rows:
                event = batch.events[row.id]
                advance(opened.state, stored(row.seq, row.id, event, batch.actor, batch.ts))
                await turns.maybe_yield()
        except BaseException:
            self._forget(opened)
            raise
        opened.snapshot.tail += sum(len(row.body) for row in rows)

    def _forget(self, opened: OpenNotebook) -> None:
        """Drop a state that may disagree with storage; the next request reloads it."""
        opened.dropped = True
        if self._open.get(opened.id) is opened:
            del self._open[opened.id]
        for internal in (False, True):  # it may be of a state the store never took
            self._served.pop((opened.id, internal), None)

    async def _catch_up(self, opened: OpenNotebook, upto: int) -> None:
        """Fold, and fan out to this relay's subscribers, what other relays stored up to
        ``upto``. Called under the notebook's lock, so fan-out stays in seq order."""
        while opened.state.seq < upto:
            rows = await self.storage.read(opened.id, opened.state.seq, _PAGE, upto=upto)
            if not rows:
                return
            await self._fold_stored(opened, rows)

    async def _fold_stored(self, opened: OpenNotebook, rows: list[StoredRow]) -> None:
        """Fold and fan out rows another relay stored (in seq order, past the state)."""
        rows = [row for row in rows if row.seq > opened.state.seq]
        if not rows:
            return
        try:
            await _refold(opened.state, rows)
        except BaseException:
            self._forget(opened)
            raise
        opened.snapshot.tail += sum(len(row.body) for row in rows)
        opened.last_ts = max(opened.last_ts, opened.state.updated_at or 0.0)
        opened.publish(self.hub, rows)

    async def follow(self, notebook_id: str, head: int, *, open_it: bool = False) -> None:
        """Another relay stored events up to ``head``: fold and fan them out here.

        Notebooks this relay has not loaded are left alone (they load whole
        when first asked for), unless ``open_it`` (the relay that watches
        every kernel lease must see every session start).
        """
        opened = self._open.get(notebook_id)
        if opened is None:
            if not open_it:
                return
            opened = await self.open(notebook_id)
        if opened.state.seq >= head:
            return  # our own append, or already caught up
        async with opened.lock:
            if not opened.dropped:
                await self._catch_up(opened, head)

    async def refresh_all(self) -> None:
        """Catch every loaded notebook up to the store (after notices may have been missed)."""
        for opened in self.loaded():
            try:
                await self.follow(opened.id, await self.storage.head(opened.id))
            except UnknownNotebook:  # pragma: no cover - nothing deletes notebooks
                continue

    async def pull(self, notebook_id: str, after: int, limit: int) -> tuple[list[StoredRow], int]:
        """Up to ``limit`` stored events past ``after``, and the head."""
        opened = await self.open(notebook_id)
        if self.storage.shared:  # others may have stored more than has reached us
            rows = await self.storage.read(notebook_id, after, limit)
        else:
            recent = opened.recent.after(after, limit, opened.state.seq)
            rows = (
                recent if recent is not None else await self.storage.read(notebook_id, after, limit)
            )
        return rows, max(opened.state.seq, rows[-1].seq if rows else 0)

    async def wait_for_events(self, notebook_id: str, after: int, timeout: float) -> None:
        """Return once the notebook has an event past ``after``, or after ``timeout`` s."""
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            signal = self.hub.change_signal(notebook_id)
            if (await self.open(notebook_id)).state.seq > after:
                return
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                return
            try:
                await asyncio.wait_for(signal.wait(), remaining)
            except TimeoutError:
                return

    async def snapshot_json(
        self, notebook_id: str, at: int | None, *, internal: bool = False
    ) -> str:
        """``{"seq", "state"}`` as the snapshot endpoint serves it, encoded.

        The head's is kept for the next request (of the few notebooks asked
        last): a notebook opened by many, or again, is encoded once per change,
        not once per request, however big it is.
        """
        state = await self.state_at(notebook_id, at)
        opened = self._open.get(notebook_id)
        at_head = opened is not None and state is opened.state
        key = (notebook_id, internal)
        cached = self._served.get(key)
        if at_head and cached is not None and cached[0] == state.seq:
            self._served.move_to_end(key)
            return cached[1]
        value = state.dump() if internal else state.public()
        body = json.dumps(
            {"seq": state.seq, "state": value}, ensure_ascii=False, separators=(",", ":")
        )
        if at_head:
            self._served[key] = (state.seq, body)
            self._served.move_to_end(key)
            while len(self._served) > _SERVED_SNAPSHOTS:
                self._served.popitem(last=False)
        return body

    async def state_at(self, notebook_id: str, at: int | None) -> NotebookState:
        """The folded state at ``at`` (the head when None). At the head it is the live
        state itself: read it before the next ``await``, never change it."""
        opened = await self.open(notebook_id)
        if self.storage.shared:  # answer from the store's head, not from what reached us
            await self.follow(notebook_id, await self.storage.head(notebook_id))
        if at is None or at >= opened.state.seq:
            if at is not None and at > opened.state.seq:
                raise BadRequest(
                    f"at={at} is past the notebook's head ({opened.state.seq})", code="at_past_head"
                )
            return opened.state
        state, _ = await self._state_at(notebook_id, at)
        return state


async def _refold(state: NotebookState, rows: list[StoredRow]) -> None:
    """Fold rows read back from storage, which holds only events the relay validated.

    Hence the trusted decode (no per-argument checks), and one ``json.loads``
    for the whole page rather than one per row. A row no parser reads (a
    store damaged outside the relay) is skipped with a log line, so the rest
    of its notebook is still served.
    """
    if not rows:
        return
    turns = Turns(_FOLD_SLICE)
    for chunk in _by_size(rows, _DECODE_CHARS):
        for value in _decode_page(chunk):
            advance(state, stored_from_json(value, trusted=True))
            await turns.maybe_yield()


def _by_size(rows: list[StoredRow], chars: int) -> Iterator[list[StoredRow]]:
    """Consecutive runs of rows whose bodies add up to about ``chars`` (one big row alone)."""
    chunk: list[StoredRow] = []
    size = 0
    for row in rows:
        if chunk and size + len(row.body) > chars:
            yield chunk
            chunk, size = [], 0
        chunk.append(row)
        size += len(row.body)
    if chunk:
        yield chunk


def _decode_page(rows: list[StoredRow]) -> list[dict[str, Any]]:
    try:
        return json.loads("[" + ",".join(row.body for row in rows) + "]")
    except ValueError:
        pass
    values = []
    for row in rows:
        try:
            values.append(json.loads(row.body))
        except ValueError:
            log.error("skipping event %d (%r): its stored body is not JSON", row.seq, row.id[:80])
    return values


def _reused(error: IdConflict) -> Conflict:
    return Conflict(
        f"event id {error.event_id!r} is already stored with other content",
        code="event_id_reused",
    )


def _row(event_id: str, event: Event, actor: str, ts: float) -> NewRow:
    return NewRow(
        id=event_id,
        name=event.name,
        v=event.version,
        args_json=json.dumps(event.to_args(), separators=(",", ":"), ensure_ascii=False),
        actor=actor,
        ts=ts,
    )


def _summary(state: NotebookState) -> Summary:
    return Summary(
        title=state.title,
        cells=state.live_cells,
        live_kernels=len(state.live_kernels()),
    )


def _new_notebook_id() -> str:
    """12 URL-safe random characters, never starting with ``-`` (a command line would take
    ``anode export -Ab…`` for an option)."""
    while (notebook_id := secrets.token_urlsafe(9)).startswith("-"):
        pass
    return notebook_id
