"""Pushes that arrive together are committed together, and each is decided as if alone.

On SQLite the relay commits the batches that wait for a notebook in one
transaction (``Notebooks._append_group``). These tests push concurrently to
a real store and check that grouping happened (fewer appends than pushes),
that every pusher's answer is what pushing one by one would give, and that
the state in memory is the store's.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

from relay.auth import NO_AUTH, EventPolicy
from relay.config import RelayConfig
from relay.errors import ApiError
from relay.hub import Hub
from relay.notebooks import Notebooks
from relay.storage import NewRow
from relay.storage.sqlite import SQLiteStorage
from relay.tokens import Grant
from shared_schema import NotebookState, PushedEvent, advance, parse_pushed, stored_from_json
from tests.kernels import event


class CountingStorage(SQLiteStorage):
    """The real store, counting the appends and lookups it is asked for."""

    appends = 0
    lookups = 0

    async def lookup(self, notebook: str, ids: Sequence[str]) -> Any:
        self.lookups += 1  # only a group looks up before it appends (or a summary batch)
        return await super().lookup(notebook, ids)

    async def append(self, notebook: str, rows: Sequence[NewRow], **kwargs: Any) -> Any:
        self.appends += 1
        return await super().append(notebook, rows, **kwargs)


def with_relay(test: Callable[[Notebooks], Awaitable[None]]) -> Callable[[Path], None]:
    """Run ``test`` on a real SQLite store in ``tmp_path``, in a loop of its own."""

    def run(tmp_path: Path) -> None:
        async def main() -> None:
            storage = CountingStorage(tmp_path / "anode.db")
            await storage.open()
            notebooks = Notebooks(storage, Hub(queue_size=1000), RelayConfig(data_dir=tmp_path))
            try:
                await test(notebooks)
            finally:
                await notebooks.close()
                await storage.close()

        asyncio.run(main())

    run.__name__ = test.__name__
    return run


#: Everything allowed (``--no-auth``): the policy's refusals are not what these tests are about.
ADMIN = EventPolicy(NO_AUTH, max_outputs=1000)


def parsed(*raw: dict[str, Any]) -> list[PushedEvent]:
    return [parse_pushed(item) for item in raw]


def kernel(name: str) -> EventPolicy:
    return EventPolicy(Grant(name, "*", "kernel", None), max_outputs=1000)


async def push_all(
    notebooks: Notebooks, notebook: str, batches: list[tuple[list[PushedEvent], EventPolicy]]
) -> list[Any]:
    """Push every batch at once; each pusher's answer or error, in order."""
    return await asyncio.gather(
        *(notebooks.push(notebook, items, policy.grant.actor, policy) for items, policy in batches),
        return_exceptions=True,
    )


async def stored_state(notebooks: Notebooks, notebook: str) -> NotebookState:
    """The state folded from what the store holds, row by row."""
    state = NotebookState()
    for row in await notebooks.storage.read(notebook, 0, 100_000):
        advance(state, stored_from_json(json.loads(row.body), trusted=True))
    return state


async def new_notebook(notebooks: Notebooks) -> str:
    opened = await notebooks.create("group", "anonymous")
    await notebooks.push(
        opened.id, parsed(event("cellCreated", cell_id="c1", cell_type="code")), "anonymous", ADMIN
    )
    return opened.id


@with_relay
async def test_concurrent_edits_commit_together_with_their_own_seqs(relay: Notebooks) -> None:
    notebook = await new_notebook(relay)
    before = relay.storage.appends  # type: ignore[attr-defined]
    edits = [
        parsed(event("cellSourceEdited", cell_id="c1", base_rev=0, ops=[str(i)])) for i in range(20)
    ]
    answers = await push_all(relay, notebook, [(items, ADMIN) for items in edits])
    appends = relay.storage.appends - before  # type: ignore[attr-defined]
    assert appends < len(edits)  # grouped: the test would prove nothing otherwise
    seqs = [answer[0][0] for answer in answers]
    assert sorted(seqs) == list(range(3, 23))
    assert all(head == seq for (_, head), seq in zip(answers, seqs, strict=True))
    state = (await relay.open(notebook)).state
    assert state.dump() == (await stored_state(relay, notebook)).dump()
    # Every edit was rebased onto the ones before it, in log order: all 20 characters are there.
    assert sorted(state.cells["c1"].source) == sorted("".join(str(i) for i in range(20)))


@with_relay
async def test_of_two_kernels_claiming_one_run_in_one_group_only_the_first_runs_it(
    relay: Notebooks,
) -> None:
    notebook = await new_notebook(relay)
    await relay.push(
        notebook,
        parsed(event("executionRequested", execution_id="x1", cell_id="c1", source="1")),
        "anonymous",
        ADMIN,
    )
    for name in ("ka", "kb"):
        policy = kernel(name)
        start = event("kernelSessionStarted", session_id=f"s-{name}", host="node", lease_seconds=60)
        await relay.push(notebook, parsed(start), policy.grant.actor, policy)
    storage = relay.storage
    assert isinstance(storage, CountingStorage)
    before = storage.appends, storage.lookups
    claims = [
        (
            parsed(
                event("executionAssigned", execution_id="x1", session_id=f"s-{name}"),
                event("executionStarted", execution_id="x1", session_id=f"s-{name}"),
            ),
            kernel(name),
        )
        for name in ("ka", "kb")
    ]
    first, second = await push_all(relay, notebook, claims)
    assert (storage.appends, storage.lookups) == (before[0] + 1, before[1] + 1)  # one group
    assert isinstance(first, tuple)
    assert isinstance(second, ApiError) and second.code == "not_your_session"
    state = (await relay.open(notebook)).state
    run = state.executions["x1"]
    assert (run.status, run.kernel_session) == ("executing", "s-ka")
    assert state.dump() == (await stored_state(relay, notebook)).dump()


@with_relay
async def test_a_refused_or_repeated_batch_in_a_group_changes_nothing_of_the_others(
    relay: Notebooks,
) -> None:
    notebook = await new_notebook(relay)
    shared = event("cellCreated", cell_id="c2", cell_type="code", after="c1")
    clash = {**shared, "args": {**shared["args"], "cell_id": "c3"}}  # its id, other content
    batches = [
        (parsed(shared), ADMIN),
        (parsed(shared), ADMIN),  # the same event again (a retry): the same seq
        (parsed(clash), ADMIN),  # the id with other content: refused, 409
        (parsed(event("cellSourceEdited", cell_id="c1", base_rev=0, ops=["x"])), kernel("k")),
        (parsed(event("cellCreated", cell_id="c4", cell_type="code", after="c2")), ADMIN),
    ]
    one, again, reused, forbidden, last = await push_all(relay, notebook, batches)
    assert one == again == ([3], 3)
    assert isinstance(reused, ApiError) and reused.code == "event_id_reused"
    assert isinstance(forbidden, ApiError) and forbidden.status == 403
    assert last == ([4], 4)
    opened = await relay.open(notebook)
    assert opened.state.order == ["c1", "c2", "c4"]
    assert opened.state.dump() == (await stored_state(relay, notebook)).dump()
    info = await relay.storage.notebook(notebook)
    assert info is not None and info.cells == 3  # the summary committed with them


@with_relay
async def test_a_group_whose_commit_fails_tells_every_pusher_and_leaves_no_trace(
    relay: Notebooks,
) -> None:
    notebook = await new_notebook(relay)
    storage = relay.storage
    assert isinstance(storage, SQLiteStorage)
    failing = asyncio.Event()

    async def refuse(notebook_id: str, rows: Sequence[NewRow], **kwargs: Any) -> Any:
        failing.set()
        raise OSError("disk full")

    storage.append = refuse  # type: ignore[method-assign, assignment]
    edits = [
        parsed(event("cellSourceEdited", cell_id="c1", base_rev=0, ops=[str(i)])) for i in range(5)
    ]
    answers = await push_all(relay, notebook, [(items, ADMIN) for items in edits])
    assert failing.is_set()
    assert all(isinstance(answer, OSError) for answer in answers)
    del storage.append  # the real one again
    opened = await relay.open(notebook)  # reloaded: nothing of the failed group
    assert opened.state.seq == 2 and opened.state.cells["c1"].source == ""
    answers = await push_all(relay, notebook, [(items, ADMIN) for items in edits])
    assert sorted(answer[0][0] for answer in answers) == [3, 4, 5, 6, 7]
