"""Opening the store a command names: SQLite under ``--data``, or PostgreSQL by ``--store``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import click

from relay.storage import StorageError, is_postgres_url, redact
from relay.tokens import SQLiteTokens, TokenStore

from .options import fail

if TYPE_CHECKING:
    from relay.storage.postgres import PostgresStorage

store_option = click.option(
    "--store",
    "store_url",
    metavar="URL",
    envvar="ANODE_STORE",
    show_envvar=True,
    help=(
        "A PostgreSQL URL (postgresql://user@host/db) that several relays share, instead of "
        "SQLite under --data."
    ),
)


def check_store_url(store_url: str) -> None:
    if not is_postgres_url(store_url):
        fail(f"{store_url!r} is not a PostgreSQL URL like postgresql://user@host/dbname")


@asynccontextmanager
async def postgres(store_url: str) -> AsyncIterator[PostgresStorage]:
    """The PostgreSQL store, open (its schema made on first use), or one clear failure."""
    from relay.storage.postgres import PostgresStorage

    check_store_url(store_url)
    storage = PostgresStorage(store_url, pool_size=2)
    try:
        await storage.open()
    except StorageError as error:
        fail(str(error))
    try:
        yield storage
    finally:
        await storage.close()


@asynccontextmanager
async def token_store(data_dir: Path, store_url: str | None) -> AsyncIterator[TokenStore]:
    """The tokens of the store a command names, open."""
    if store_url is not None:
        from relay.storage.postgres import PostgresTokens

        async with postgres(store_url) as storage:
            store = await TokenStore(PostgresTokens(storage)).open()
            yield store
        return
    if not (data_dir / "anode.db").exists():
        fail(f"no Anode store in {data_dir} (start one with: anode serve --data {data_dir})")
    try:
        store = await TokenStore(SQLiteTokens(data_dir)).open()
    except (OSError, RuntimeError) as error:
        fail(f"cannot open the token store in {data_dir}: {error}")
    try:
        yield store
    finally:
        await store.close()


def where(data_dir: Path, store_url: str | None) -> str:
    """The store, as messages name it (never with its password)."""
    return redact(store_url) if store_url else str(data_dir)
