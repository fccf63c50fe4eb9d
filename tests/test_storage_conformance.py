"""One contract, two stores: SQLite and PostgreSQL pass the same tests.

Each test runs a scenario on its own event loop against a fresh store
(a file, or a throw-away PostgreSQL database). ``store()`` opens another
handle on the same store: for PostgreSQL, what a second relay process would
hold.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from relay.storage import (
    HeadMoved,
    IdConflict,
    NewRow,
    NotebookExists,
    Storage,
    Summary,
    UnknownNotebook,
)
from relay.storage.postgres import PostgresStorage, PostgresTokens
from relay.storage.sqlite import SQLiteStorage
from relay.tokens import SQLiteTokens, TokenRecord, TokenStore, TokenTable

Scenario = Callable[[Callable[[], Awaitable[Storage]]], Awaitable[None]]


def row(event_id: str | None = None, name: str = "cellCreated", **args: Any) -> NewRow:
    return NewRow(
        id=event_id or uuid.uuid4().hex,
        name=name,
        v=1,
        args_json=json.dumps(args or {"cell_id": "c1"}, separators=(",", ":")),
        actor="user:ada",
        ts=1.0,
    )


INIT = row("init", "notebookInitialized", title="")


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, Any]:
    if request.param == "sqlite":
        return "sqlite", tmp_path / "anode.db"
    return "postgresql", request.getfixturevalue("postgres")


def run(backend: tuple[str, Any], scenario: Scenario) -> None:
    kind, where = backend

    async def main() -> None:
        opened: list[Storage] = []

        async def store() -> Storage:
            storage: Storage = (
                SQLiteStorage(where) if kind == "sqlite" else PostgresStorage(where, pool_size=4)
            )
            await storage.open()
            opened.append(storage)
            return storage

        try:
            await scenario(store)
        finally:
            for storage in opened:
                await storage.close()

    asyncio.run(main())


def test_a_notebook_is_created_once_with_its_first_event(backend: Any) -> None:
    async def scenario(store: Any) -> None:
        db = await store()
        (first,) = await db.create_notebook("nb", [INIT], Summary("Hi", 0, 0))
        assert first.seq == 1 and json.loads(first.body)["name"] == "notebookInitialized"
        with pytest.raises(NotebookExists):
            await db.create_notebook("nb", [INIT], Summary("Again", 0, 0))
        info = await db.notebook("nb")
        assert (info.id, info.title, info.head) == ("nb", "Hi", 1)
        # An import: the first event and the notebook's cells, in one transaction.
        rows = await db.create_notebook("imp", [INIT, row("i1"), row("i2")], Summary("", 2, 0))
        assert [r.seq for r in rows] == [1, 2, 3] and await db.head("imp") == 3
        assert [r.id for r in await db.read("imp", 0, 10)] == [INIT.id, "i1", "i2"]
        with pytest.raises(NotebookExists):
            await db.create_notebook("imp", [INIT, row("i3")], Summary("", 1, 0))
        assert await db.head("imp") == 3
        assert await db.notebook("none") is None
        assert sorted(n.id for n in await db.list_notebooks()) == ["imp", "nb"]
        assert await db.head("nb") == 1
        with pytest.raises(UnknownNotebook):
            await db.head("none")

    run(backend, scenario)


def test_appends_are_dense_atomic_and_idempotent_by_id(backend: Any) -> None:
    async def scenario(store: Any) -> None:
        db = await store()
        await db.create_notebook("nb", [INIT], Summary("", 0, 0))
        a, b = row("a"), row("b", cell_id="c2")
        result = await db.append("nb", [a, b, a])
        assert result.seqs == [2, 3, 2] and result.head == 3
        assert [r.id for r in result.stored] == ["a", "b"]
        again = await db.append("nb", [b, row("c")])
        assert again.seqs == [3, 4] and [r.id for r in again.stored] == ["c"]
        with pytest.raises(IdConflict):
            await db.append("nb", [row("d"), row("a", cell_id="other")])
        assert await db.head("nb") == 4  # the refused batch stored nothing, "d" included
        rows = await db.read("nb", 0, 100)
        assert [(r.seq, r.id) for r in rows] == [(1, "init"), (2, "a"), (3, "b"), (4, "c")]
        assert json.loads(rows[1].body)["seq"] == 2
        assert [r.seq for r in await db.read("nb", 1, 2)] == [2, 3]
        assert [r.seq for r in await db.read("nb", 1, 100, upto=3)] == [2, 3]
        with pytest.raises(UnknownNotebook):
            await db.append("none", [row()])
        lookup = await db.lookup("nb", ["a", "zz"])
        assert lookup.head == 4 and set(lookup.known) == {"a"}

    run(backend, scenario)


def test_an_append_refuses_a_moved_head_and_writes_its_summary_with_it(backend: Any) -> None:
    async def scenario(store: Any) -> None:
        db = await store()
        await db.create_notebook("nb", [INIT], Summary("", 0, 0))
        await db.append("nb", [row("a")], summary=Summary("Title\x00!", 1, 0), expect_head=1)
        with pytest.raises(HeadMoved) as moved:
            await db.append("nb", [row("b")], summary=Summary("x", 9, 9), expect_head=1)
        assert moved.value.head == 2
        info = await db.notebook("nb")
        assert (info.head, info.cells) == (2, 1)
        assert info.title in ("Title\x00!", "Title\ufffd!")  # PostgreSQL's TEXT holds no NUL
        await db.set_summary("nb", Summary("New", 3, 1))
        info = await db.notebook("nb")
        assert (info.title, info.cells, info.live_kernels) == ("New", 3, 1)

    run(backend, scenario)


def test_concurrent_appends_from_two_handles_stay_dense(backend: Any) -> None:
    """Two handles (for PostgreSQL: two relays' pools) append to one notebook at once."""

    async def scenario(store: Any) -> None:
        first, second = await store(), await store()
        await first.create_notebook("nb", [INIT], Summary("", 0, 0))
        shared = [row(f"shared-{i}") for i in range(20)]

        async def writer(db: Storage, name: str) -> list[int]:
            seqs = []
            for i in range(40):
                batch = [row(f"{name}-{i}-{j}") for j in range(3)] + [shared[i % 20]]
                seqs += (await db.append("nb", batch)).seqs
            return seqs

        await asyncio.gather(writer(first, "one"), writer(second, "two"), writer(first, "three"))
        rows = await second.read("nb", 0, 10_000)
        assert [r.seq for r in rows] == list(range(1, len(rows) + 1))
        assert len(rows) == 1 + 3 * 40 * 3 + 20
        assert len({r.id for r in rows}) == len(rows)
        assert await first.head("nb") == len(rows)

    run(backend, scenario)


def test_snapshots_keep_the_newest_and_one_per_stretch(backend: Any) -> None:
    async def scenario(store: Any) -> None:
        db = await store()
        await db.create_notebook("nb", [INIT], Summary("", 0, 0))
        await db.create_notebook("other", [INIT], Summary("", 0, 0))
        await db.save_snapshot("other", 5, '{"o":5}', keep_every=10)
        for seq in (3, 7, 12, 15, 25, 26):
            await db.save_snapshot("nb", seq, json.dumps({"seq": seq}), keep_every=10)
        assert await db.load_snapshot("nb") == (26, '{"seq": 26}')
        assert await db.load_snapshot("nb", at=14) == (12, '{"seq": 12}')
        assert await db.load_snapshot("nb", at=11) == (3, '{"seq": 3}')
        assert await db.load_snapshot("nb", at=2) is None
        assert await db.load_snapshot("nb", at=24) == (12, '{"seq": 12}')  # 15 was pruned
        assert await db.load_snapshot("other") == (5, '{"o":5}')
        await db.save_snapshot("nb", 26, '{"again":26}', keep_every=10)
        assert await db.load_snapshot("nb") == (26, '{"again":26}')

    run(backend, scenario)


def test_tokens_are_kept_revoked_and_signed_alike(backend: Any, tmp_path: Path) -> None:
    async def scenario(store: Any) -> None:
        db = await store()
        table: TokenTable = (
            SQLiteTokens(tmp_path / "data") if isinstance(db, SQLiteStorage) else PostgresTokens(db)  # type: ignore[arg-type]
        )
        tokens = await TokenStore(table).open()
        record, token = await tokens.issue("nb", "editor", label="ada")
        assert (await tokens.check(token)).actor == f"user:{record.id}"
        assert await tokens.get(record.id) == record
        assert [r.id for r in await tokens.list("nb")] == [record.id]
        assert await tokens.list("other") == []
        revoked = await tokens.revoke(record.id)
        assert isinstance(revoked, TokenRecord) and revoked.revoked_at is not None
        assert record.id in await tokens.revoked_ids()
        with pytest.raises(Exception, match="revoked"):
            await tokens.check(token)
        assert await tokens.revoke("tk-none") is None
        with pytest.raises(ValueError, match="printable"):
            await tokens.issue("nb", "viewer", label="bad\nlabel")
        # A second handle (another relay) signs with the same secret.
        again = await TokenStore(table).open()
        assert again.secret == tokens.secret
        await tokens.close()

    run(backend, scenario)


def test_appends_that_expect_a_head_store_new_ids_and_keep_known_ones(backend: Any) -> None:
    """The relay's own call: ``expect_head`` from its state, with or without ``on_moved``."""

    async def scenario(store: Any) -> None:
        db, other = await store(), await store()
        await db.create_notebook("nb", [INIT], Summary("", 0, 0))
        assert (await db.append("nb", [row("a"), row("b")], expect_head=1)).seqs == [2, 3]
        again = await db.append("nb", [row("a"), row("c")], expect_head=3)  # a resent id
        assert again.seqs == [2, 4] and [r.id for r in again.stored] == ["c"]
        assert (await db.append("nb", [row("d"), row("d")], expect_head=4)).seqs == [5, 5]
        with pytest.raises(IdConflict):
            await db.append("nb", [row("a", cell_id="changed")], expect_head=5)
        await other.append("nb", [row("e")])  # another relay's append: the head is 6
        with pytest.raises(HeadMoved):
            await db.append("nb", [row("f")], expect_head=5)
        missed: list[list[int]] = []

        async def on_moved(rows: list[Any]) -> None:
            missed.append([r.seq for r in rows])

        if db.shared:  # a shared store hands over what the caller missed, and goes on
            result = await db.append("nb", [row("f")], expect_head=5, on_moved=on_moved)
            assert missed == [[6]]
        else:  # one writer per file: the caller is told, and retries
            with pytest.raises(HeadMoved):
                await db.append("nb", [row("f")], expect_head=5, on_moved=on_moved)
            result = await db.append("nb", [row("f")], expect_head=6)
        assert result.seqs == [7]
        with pytest.raises(UnknownNotebook):
            await db.append("none", [row("g")], expect_head=1)
        rows = await db.read("nb", 0, 100)
        assert [(r.seq, r.id) for r in rows][1:] == [
            (2, "a"), (3, "b"), (4, "c"), (5, "d"), (6, "e"), (7, "f")
        ]  # fmt: skip

    run(backend, scenario)
