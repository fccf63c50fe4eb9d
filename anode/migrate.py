"""``anode migrate``: copy a SQLite store into an empty PostgreSQL one.

Everything moves in one transaction (events, snapshots, notebook summaries,
tokens with their revocations, and the signing secret, so tokens made
before the move still work after it): a failure leaves the target as empty
as it was. A target that holds any notebook or token is refused.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path

from psycopg import AsyncConnection, sql

from relay.storage import StorageError
from relay.storage.postgres import TABLES, PostgresStorage
from relay.storage.sqlite import open_database
from relay.tokens import COLUMNS, load_secret

_SECRET_FILE = "secret.key"
_TOKENS_FILE = "auth.db"


class MigrationRefused(Exception):
    """The target is not empty, or the source is not an Anode store."""


@dataclass(frozen=True, slots=True)
class Moved:
    notebooks: int
    events: int
    snapshots: int
    tokens: int


async def migrate(data_dir: Path, target: PostgresStorage) -> Moved:
    """Copy the store under ``data_dir`` into ``target`` (open and empty)."""
    path = data_dir / "anode.db"
    if not path.exists():
        raise MigrationRefused(f"no Anode store in {data_dir}")
    try:
        source = open_database(path)  # refuses a newer format; repairs an older one
    except StorageError as error:
        raise MigrationRefused(str(error)) from None
    try:
        async with target.connection() as conn, conn.transaction():
            await conn.execute("LOCK TABLE notebooks, events, snapshots, tokens IN EXCLUSIVE MODE")
            for table in TABLES[:-1]:
                cursor = await conn.execute(
                    sql.SQL("SELECT EXISTS (SELECT 1 FROM {})").format(sql.Identifier(table))
                )
                row = await cursor.fetchone()
                if row is not None and row[0]:
                    raise MigrationRefused(
                        f"the target already holds {table}; migrate only into an empty store"
                    )
            notebooks = await _copy(
                conn,
                source,
                "notebooks",
                "id, title, created_at, updated_at, head, cells, live_kernels",
                clean=1,
            )
            events = await _copy(conn, source, "events", "notebook, seq, id, body")
            snapshots = await _copy(conn, source, "snapshots", "notebook, seq, state")
            tokens = await _copy_tokens(conn, data_dir)
    finally:
        source.close()
    return Moved(notebooks, events, snapshots, tokens)


async def _copy(
    conn: AsyncConnection, source: sqlite3.Connection, table: str, columns: str, clean: int = -1
) -> int:
    """Stream one table over with COPY; ``clean``: the column index of a title to make
    storable (PostgreSQL's TEXT holds no NUL)."""
    count = 0
    query = sql.SQL("COPY {} ({}) FROM STDIN").format(sql.Identifier(table), sql.SQL(columns))
    async with conn.cursor().copy(query) as copy:
        for row in source.execute(f"SELECT {columns} FROM {table}"):
            if clean >= 0:
                row = (*row[:clean], row[clean].replace("\x00", "\ufffd"), *row[clean + 1 :])
            await copy.write_row(row)
            count += 1
    return count


async def _copy_tokens(conn: AsyncConnection, data_dir: Path) -> int:
    if not (data_dir / _SECRET_FILE).exists():
        return 0  # a store that never checked a token (``--no-auth`` only)
    await conn.execute(
        "INSERT INTO anode_meta (key, value) VALUES ('token_secret', %s)"
        " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        (load_secret(data_dir).hex(),),
    )
    if not (data_dir / _TOKENS_FILE).exists():
        return 0
    tokens = sqlite3.connect(data_dir / _TOKENS_FILE)
    try:
        return await _copy(conn, tokens, "tokens", COLUMNS)
    finally:
        tokens.close()
