"""The shared store: PostgreSQL, for several relay processes serving the same notebooks.

The database, not a process, is each notebook's one writer: an append takes
the row lock on the notebook's ``notebooks`` row (``SELECT … FOR UPDATE``)
before it reads the head, so two relays appending to one notebook queue in
the database and seqs stay dense. A row lock rather than an advisory lock:
the append updates that row anyway, the lock ends with the transaction on
every path (error, cancel, a dropped connection), and it needs no mapping of
text ids onto advisory-lock integers.

Every committed append sends ``NOTIFY anode_events, '<notebook> <head>'`` in
its transaction, so the notification leaves only if the events are stored;
other relays read the rows themselves (``relay/cluster.py``), which keeps
the payload far under NOTIFY's 8,000-byte limit whatever a batch holds.

Driver: psycopg 3 (async, with ``psycopg_pool``). It is the PostgreSQL
project's own Python driver line, typed (mypy checks our use), speaks
pipeline mode, and hands out notifications as an async iterator.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import astuple
from typing import Any

import psycopg
from psycopg import AsyncConnection, errors, sql
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from ..tokens import COLUMNS, TokenRecord, new_secret
from . import (
    AppendResult,
    HeadMoved,
    Lookup,
    NewRow,
    NotebookExists,
    NotebookInfo,
    OnMoved,
    StorageError,
    StoredRow,
    StoreUnavailable,
    Summary,
    UnderLock,
    UnknownNotebook,
    plan_append,
    redact,
)

#: The schema this code writes (``anode_meta.storage_version``); a higher one is refused.
STORAGE_VERSION = 1
#: How long a request waits for a pooled connection before the store counts as unavailable.
_CONNECT_SECONDS = 10.0
#: Channels every relay listens on (``relay/cluster.py``).
EVENTS_CHANNEL = "anode_events"
PRESENCE_CHANNEL = "anode_presence"
TOKENS_CHANNEL = "anode_tokens"
#: The advisory lock that serializes schema set-up, so relays may start at once.
_SCHEMA_LOCK = 0x616E6F6465  # "anode"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS anode_meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS notebooks (
    id TEXT PRIMARY KEY,
    title TEXT NOT NULL,
    created_at DOUBLE PRECISION NOT NULL,
    updated_at DOUBLE PRECISION NOT NULL,
    head BIGINT NOT NULL,
    cells INTEGER NOT NULL DEFAULT 0,
    live_kernels INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS events (
    notebook TEXT NOT NULL,
    seq BIGINT NOT NULL,
    id TEXT NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (notebook, seq),
    UNIQUE (notebook, id)
);
CREATE TABLE IF NOT EXISTS snapshots (
    notebook TEXT NOT NULL,
    seq BIGINT NOT NULL,
    state TEXT NOT NULL,
    PRIMARY KEY (notebook, seq)
);
CREATE OR REPLACE FUNCTION anode_append_new(
    nb TEXT, expect BIGINT, ids TEXT[], bodies TEXT[], ts DOUBLE PRECISION, channel TEXT
) RETURNS TEXT LANGUAGE plpgsql AS $$
-- The common append in one statement: every id new, the head where the relay
-- expects it. Anything else stores nothing and says why ('moved', 'known',
-- 'missing'); the relay then takes the general path (PostgresStorage.append).
DECLARE
    found_head BIGINT;
    new_head BIGINT := expect + cardinality(ids);
BEGIN
    SELECT head INTO found_head FROM notebooks WHERE id = nb FOR UPDATE;
    IF NOT FOUND THEN
        RETURN 'missing';
    ELSIF found_head <> expect THEN
        RETURN 'moved';
    ELSIF EXISTS (
        SELECT 1 FROM unnest(ids) AS x(id),
        LATERAL (SELECT 1 FROM events WHERE notebook = nb AND id = x.id LIMIT 1) AS e
    ) THEN
        RETURN 'known';
    END IF;
    INSERT INTO events (notebook, seq, id, body)
        SELECT nb, expect + n, id, body FROM unnest(ids, bodies) WITH ORDINALITY AS x(id, body, n);
    UPDATE notebooks SET head = new_head, updated_at = ts WHERE id = nb;
    PERFORM pg_notify(channel, nb || ' ' || new_head);
    RETURN 'stored';
END
$$;
CREATE TABLE IF NOT EXISTS tokens (
    id TEXT PRIMARY KEY,
    notebook TEXT NOT NULL,
    role TEXT NOT NULL,
    expires_at BIGINT,
    label TEXT NOT NULL DEFAULT '',
    created_at DOUBLE PRECISION NOT NULL,
    revoked_at DOUBLE PRECISION
);
"""

#: Tables ``anode migrate`` fills, and refuses to write into when they hold rows.
TABLES = ("notebooks", "events", "snapshots", "tokens", "anode_meta")


class PostgresStorage:
    #: Several processes share this store: the relay catches up before it decides.
    shared = True

    def __init__(self, url: str, *, pool_size: int = 8) -> None:
        self.url = url
        self._pool = AsyncConnectionPool(
            url, min_size=1, max_size=pool_size, open=False, kwargs={"autocommit": True}
        )

    # --- lifecycle ------------------------------------------------------------

    async def open(self) -> None:
        try:
            await self._pool.open(wait=True, timeout=10)
            async with self.connection() as conn, conn.transaction():
                await conn.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK,))
                await conn.execute(_SCHEMA)
                version = await _meta(conn, "storage_version")
                if version is not None and int(version) > STORAGE_VERSION:
                    raise StorageError(
                        f"{redact(self.url)} was written by a newer Anode (storage version"
                        f" {version}; this one reads up to {STORAGE_VERSION})."
                    )
                await conn.execute(
                    "INSERT INTO anode_meta (key, value) VALUES ('storage_version', %s)"
                    " ON CONFLICT (key) DO NOTHING",
                    (str(STORAGE_VERSION),),
                )
        except (psycopg.Error, TimeoutError) as error:
            await self._pool.close()
            raise StorageError(f"cannot use {redact(self.url)}: {error}") from None
        except StorageError:
            await self._pool.close()
            raise

    async def close(self) -> None:
        await self._pool.close()

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[AsyncConnection[Any]]:
        """A pooled connection; a database that cannot be reached is ``StoreUnavailable``
        (the relay answers 503), not an internal error."""
        try:
            async with self._pool.connection(timeout=_CONNECT_SECONDS) as conn:
                yield conn
        except (psycopg.OperationalError, PoolTimeout) as error:
            raise StoreUnavailable(f"{redact(self.url)}: {error}") from error

    # --- notebooks --------------------------------------------------------------

    async def create_notebook(
        self, notebook: str, rows: Sequence[NewRow], summary: Summary
    ) -> list[StoredRow]:
        stored = [StoredRow(seq, row.id, row.body(seq)) for seq, row in enumerate(rows, 1)]
        try:
            async with self.connection() as conn, conn.transaction():
                await conn.execute(
                    "INSERT INTO notebooks (id, title, created_at, updated_at, head, cells,"
                    " live_kernels) VALUES (%s, %s, %s, %s, %s, %s, %s)",
                    (
                        notebook,
                        _text(summary.title),
                        rows[0].ts,
                        rows[-1].ts,
                        len(rows),
                        summary.cells,
                        summary.live_kernels,
                    ),
                )
                async with conn.cursor() as cursor:
                    await cursor.executemany(
                        "INSERT INTO events (notebook, seq, id, body) VALUES (%s, %s, %s, %s)",
                        [(notebook, row.seq, row.id, row.body) for row in stored],
                    )
                await _notify_events(conn, notebook, len(stored))
        except errors.UniqueViolation:
            raise NotebookExists(notebook) from None
        return stored

    async def list_notebooks(self) -> list[NotebookInfo]:
        async with self.connection() as conn:
            cursor = await conn.execute(
                "SELECT id, title, created_at, updated_at, head, cells, live_kernels"
                " FROM notebooks ORDER BY updated_at DESC, id"
            )
            return [NotebookInfo(*row) for row in await cursor.fetchall()]

    async def notebook(self, notebook: str) -> NotebookInfo | None:
        async with self.connection() as conn:
            cursor = await conn.execute(
                "SELECT id, title, created_at, updated_at, head, cells, live_kernels"
                " FROM notebooks WHERE id = %s",
                (notebook,),
            )
            row = await cursor.fetchone()
        return NotebookInfo(*row) if row else None

    async def head(self, notebook: str) -> int:
        """The notebook's head as committed now (``UnknownNotebook`` if there is none)."""
        async with self.connection() as conn:
            cursor = await conn.execute("SELECT head FROM notebooks WHERE id = %s", (notebook,))
            row = await cursor.fetchone()
        if row is None:
            raise UnknownNotebook(notebook)
        return row[0]

    async def set_summary(self, notebook: str, summary: Summary) -> None:
        async with self.connection() as conn:
            await _set_summary(conn, notebook, summary)

    # --- events -----------------------------------------------------------------

    async def lookup(self, notebook: str, ids: Sequence[str]) -> Lookup:
        async with self.connection() as conn:
            head, known = await _head_and_known(conn, notebook, ids, lock=False)
        return Lookup(head=head, known=known)

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
        """Lock the notebook's head (every append to it queues there, whichever relay makes
        it), look up the ids, then store, move the head and notify.

        The common case — every id new, the head where the relay expects it —
        is one statement (``anode_append_new``), its own transaction: one
        round trip instead of five.
        """
        ids = list(dict.fromkeys(row.id for row in rows))
        if (
            expect_head is not None
            and summary is None
            and under_lock is None
            and len(ids) == len(rows)
        ):
            planned = plan_append(expect_head, rows, {})
            async with self.connection() as conn:
                cursor = await conn.execute(
                    "SELECT anode_append_new(%s, %s, %s, %s, %s, %s)",
                    (
                        notebook,
                        expect_head,
                        ids,
                        [item.body for item in planned.stored],
                        rows[-1].ts,
                        EVENTS_CHANNEL,
                    ),
                )
                outcome = await cursor.fetchone()
            if outcome is not None and outcome[0] == "stored":
                return planned
            if outcome is not None and outcome[0] == "missing":
                raise UnknownNotebook(notebook)
        async with self.connection() as conn, conn.transaction():
            head, known = await _head_and_known(conn, notebook, ids, lock=True)
            missed: list[StoredRow] = []
            if expect_head is not None and head != expect_head:
                if on_moved is None and under_lock is None:
                    raise HeadMoved(notebook, head)
                # Still holding the lock: the caller folds what it missed and decides again.
                cursor = await conn.execute(
                    "SELECT seq, id, body FROM events WHERE notebook = %s AND seq > %s"
                    " ORDER BY seq",
                    (notebook, expect_head),
                )
                missed = [StoredRow(*row) for row in await cursor.fetchall()]
                if on_moved is not None:
                    await on_moved(missed)
            result = plan_append(head, rows, known)
            if under_lock is not None:
                summary = await under_lock(missed, result)
            if result.stored:
                await conn.execute(
                    _STORE_AND_NOTIFY,
                    {
                        "nb": notebook,
                        "seqs": [item.seq for item in result.stored],
                        "ids": [item.id for item in result.stored],
                        "bodies": [item.body for item in result.stored],
                        "head": result.head,
                        "ts": rows[-1].ts,
                        "channel": EVENTS_CHANNEL,
                        "notice": f"{notebook} {result.head}",
                    },
                )
            if summary is not None:
                await _set_summary(conn, notebook, summary)
        return result

    async def read(
        self, notebook: str, after: int, limit: int, upto: int | None = None
    ) -> list[StoredRow]:
        async with self.connection() as conn:
            cursor = await conn.execute(
                "SELECT seq, id, body FROM events WHERE notebook = %s AND seq > %s AND seq <= %s"
                " ORDER BY seq LIMIT %s",
                (notebook, after, upto if upto is not None else 2**62, limit),
            )
            return [StoredRow(*row) for row in await cursor.fetchall()]

    # --- snapshots --------------------------------------------------------------

    async def save_snapshot(
        self, notebook: str, seq: int, state_json: str, *, keep_every: int
    ) -> None:
        async with self.connection() as conn, conn.transaction():
            await conn.execute(
                "INSERT INTO snapshots (notebook, seq, state) VALUES (%s, %s, %s)"
                " ON CONFLICT (notebook, seq) DO UPDATE SET state = excluded.state",
                (notebook, seq, state_json),
            )
            # As in SQLite: of the older ones, keep the first of each keep_every-long stretch.
            await conn.execute(
                "DELETE FROM snapshots WHERE notebook = %(nb)s AND seq < %(seq)s AND seq NOT IN"
                " (SELECT min(seq) FROM snapshots WHERE notebook = %(nb)s"
                "  GROUP BY seq / %(every)s)",
                {"nb": notebook, "seq": seq, "every": keep_every},
            )

    async def load_snapshot(self, notebook: str, at: int | None = None) -> tuple[int, str] | None:
        async with self.connection() as conn:
            cursor = await conn.execute(
                "SELECT seq, state FROM snapshots WHERE notebook = %s AND seq <= %s"
                " ORDER BY seq DESC LIMIT 1",
                (notebook, at if at is not None else 2**62),
            )
            row = await cursor.fetchone()
        return (row[0], row[1]) if row else None

    # --- moving in ----------------------------------------------------------------

    async def is_empty(self) -> bool:
        """Whether no table holds a row (``anode migrate`` writes only into an empty store)."""
        async with self.connection() as conn:
            for table in TABLES[:-1]:
                query = sql.SQL("SELECT EXISTS (SELECT 1 FROM {})").format(sql.Identifier(table))
                cursor = await conn.execute(query)
                row = await cursor.fetchone()
                if row is not None and row[0]:
                    return False
        return True


#: Which of some ids are stored: one index probe per id, however long the log. The LIMIT
#: keeps the planner from turning the probes into a walk of the notebook's whole id index,
#: which it prefers while the table has no statistics (``id = ANY(…)`` took 5 ms at 11,000
#: events and grew with them; this takes 0.6 ms for 100 ids).
_KNOWN_IDS = """
SELECT e.seq, e.id, e.body FROM unnest(%s::text[]) AS x(id),
LATERAL (SELECT seq, id, body FROM events WHERE notebook = %s AND id = x.id LIMIT 1) AS e
"""

#: The new events, the new head, and the notice sent at commit: one statement.
_STORE_AND_NOTIFY = """
WITH stored AS (
    INSERT INTO events (notebook, seq, id, body)
    SELECT %(nb)s, * FROM unnest(%(seqs)s::bigint[], %(ids)s::text[], %(bodies)s::text[])
), moved AS (
    UPDATE notebooks SET head = %(head)s, updated_at = %(ts)s WHERE id = %(nb)s
)
SELECT pg_notify(%(channel)s, %(notice)s)
"""


async def _head_and_known(
    conn: AsyncConnection[Any], notebook: str, ids: Sequence[str], *, lock: bool
) -> tuple[int, dict[str, tuple[int, str]]]:
    """The head (row-locked for an append) and id -> (seq, body) of ``ids`` already stored.

    The lookup is its own statement, so its snapshot is taken once the lock is held
    and it sees what the append before ours stored.
    """
    cursor = await conn.execute(
        "SELECT head FROM notebooks WHERE id = %s" + (" FOR UPDATE" if lock else ""), (notebook,)
    )
    found = await cursor.fetchone()
    if found is None:
        raise UnknownNotebook(notebook)
    cursor = await conn.execute(_KNOWN_IDS, (list(dict.fromkeys(ids)), notebook))
    return found[0], {event_id: (seq, body) for seq, event_id, body in await cursor.fetchall()}


async def _set_summary(conn: AsyncConnection[Any], notebook: str, summary: Summary) -> None:
    await conn.execute(
        "UPDATE notebooks SET title = %s, cells = %s, live_kernels = %s WHERE id = %s",
        (_text(summary.title), summary.cells, summary.live_kernels, notebook),
    )


async def _notify_events(conn: AsyncConnection[Any], notebook: str, head: int) -> None:
    """Sent at commit, and only if it commits."""
    await conn.execute("SELECT pg_notify(%s, %s)", (EVENTS_CHANNEL, f"{notebook} {head}"))


async def _meta(conn: AsyncConnection[Any], key: str) -> str | None:
    cursor = await conn.execute("SELECT value FROM anode_meta WHERE key = %s", (key,))
    row = await cursor.fetchone()
    return row[0] if row else None


def _text(value: str) -> str:
    """PostgreSQL's TEXT cannot hold NUL. A title may (the log keeps it, JSON-escaped);
    the notebook list's copy shows U+FFFD in its place."""
    return value.replace("\x00", "\ufffd")


class PostgresTokens:
    """Tokens and their signing secret in the shared store (``relay.tokens.TokenTable``).

    A check asks the database whether the token was revoked (one primary-key
    read), so a revocation made through any relay is refused by every relay
    from the next request on. The full revoked set, which only the sweep of
    open streams needs, is cached until a ``NOTIFY anode_tokens`` says it changed.
    """

    def __init__(self, storage: PostgresStorage) -> None:
        self.storage = storage
        self._revoked: frozenset[str] | None = None

    async def secret(self) -> bytes:
        async with self.storage.connection() as conn:
            await conn.execute(
                "INSERT INTO anode_meta (key, value) VALUES ('token_secret', %s)"
                " ON CONFLICT (key) DO NOTHING",
                (new_secret().hex(),),
            )
            value = await _meta(conn, "token_secret")
        assert value is not None
        return bytes.fromhex(value)

    async def close(self) -> None:
        """The storage owns the connections."""

    async def insert(self, record: TokenRecord) -> None:
        async with self.storage.connection() as conn:
            await conn.execute(
                f"INSERT INTO tokens ({COLUMNS}) VALUES (%s, %s, %s, %s, %s, %s, %s)",
                astuple(record),
            )

    async def revoke(self, token_id: str, at: float) -> None:
        async with self.storage.connection() as conn, conn.transaction():
            await conn.execute(
                "UPDATE tokens SET revoked_at = %s WHERE id = %s AND revoked_at IS NULL",
                (at, token_id),
            )
            await conn.execute("SELECT pg_notify(%s, %s)", (TOKENS_CHANNEL, token_id))
        self.changed()

    async def get(self, token_id: str) -> TokenRecord | None:
        async with self.storage.connection() as conn:
            cursor = await conn.execute(f"SELECT {COLUMNS} FROM tokens WHERE id = %s", (token_id,))
            row = await cursor.fetchone()
        return TokenRecord(*row) if row else None

    async def list(self, notebook: str | None) -> list[TokenRecord]:
        query = f"SELECT {COLUMNS} FROM tokens"
        params: tuple[str, ...] = ()
        if notebook is not None:
            query, params = query + " WHERE notebook = %s", (notebook,)
        async with self.storage.connection() as conn:
            cursor = await conn.execute(query + " ORDER BY created_at", params)
            return [TokenRecord(*row) for row in await cursor.fetchall()]

    async def is_revoked(self, token_id: str) -> bool:
        async with self.storage.connection() as conn:
            cursor = await conn.execute(
                "SELECT revoked_at IS NOT NULL FROM tokens WHERE id = %s", (token_id,)
            )
            row = await cursor.fetchone()
        # A signed token whose record is gone is as good as revoked.
        return row is None or bool(row[0])

    async def revoked_ids(self) -> frozenset[str]:
        if self._revoked is None:
            async with self.storage.connection() as conn:
                cursor = await conn.execute("SELECT id FROM tokens WHERE revoked_at IS NOT NULL")
                self._revoked = frozenset(row[0] for row in await cursor.fetchall())
        return self._revoked

    def changed(self) -> None:
        """Some relay revoked a token (or we may have missed that it did): reload the set."""
        self._revoked = None
