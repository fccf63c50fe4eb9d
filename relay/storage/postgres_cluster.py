"""``PostgresCluster``: how relays on one PostgreSQL store hear each other (``relay.cluster``)."""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
from collections.abc import Awaitable
from typing import Any

import psycopg

from ..cluster import ClusterHandlers
from ..presence import Entry
from .postgres import EVENTS_CHANNEL, PRESENCE_CHANNEL, TOKENS_CHANNEL, PostgresStorage

log = logging.getLogger("anode.relay.cluster")

#: The advisory lock whose holder has the duty (``"anode-duty"`` as an integer).
DUTY_LOCK = 0x616E6F64652D64
DUTY_RETRY_SECONDS = 1.0
_RECONNECT_SECONDS = 0.5


class PostgresCluster:
    def __init__(self, storage: PostgresStorage) -> None:
        self.storage = storage
        self.on_duty = False
        #: Tells this relay's own presence notices from its peers'.
        self.relay_id = secrets.token_hex(8)
        self._tasks: list[asyncio.Task] = []
        self._listening = asyncio.Event()
        self._following: set[asyncio.Task] = set()

    async def start(self, handlers: ClusterHandlers) -> None:
        self._tasks = [
            asyncio.create_task(self._listen(handlers), name="anode-cluster-listen"),
            asyncio.create_task(self._hold_duty(handlers), name="anode-cluster-duty"),
        ]
        # Serve only once notices arrive, so no push made meanwhile goes unseen.
        await asyncio.wait_for(self._listening.wait(), 10)

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            try:
                await task
            except (asyncio.CancelledError, Exception):
                pass
        self.on_duty = False

    async def share_presence(self, notebook: str, entry: Entry | None, client_id: str) -> None:
        notice: dict[str, Any] = {"from": self.relay_id, "nb": notebook, "client_id": client_id}
        if entry is not None:
            notice.update(
                actor=entry.actor, kind=entry.kind, state=entry.state, ttl=entry.ttl, gone=False
            )
        else:
            notice["gone"] = True
        # An entry's state is at most a few KB (``max_presence_state_bytes``),
        # far under NOTIFY's 8,000-byte payload limit.
        payload = json.dumps(notice, separators=(",", ":"), ensure_ascii=False)
        async with self.storage.connection() as conn:
            await conn.execute("SELECT pg_notify(%s, %s)", (PRESENCE_CHANNEL, payload))

    # --- the listener ---------------------------------------------------------------

    async def _listen(self, handlers: ClusterHandlers) -> None:
        first = True
        while True:
            try:
                conn = await _connect(self.storage.url)
                async with conn:
                    for channel in (EVENTS_CHANNEL, PRESENCE_CHANNEL, TOKENS_CHANNEL):
                        await conn.execute(f"LISTEN {channel}")
                    if not first:
                        await handlers.on_reconnect()
                    first = False
                    self._listening.set()
                    async for notice in conn.notifies():
                        await self._dispatch(handlers, notice.channel, notice.payload)
            except asyncio.CancelledError:
                raise
            except Exception as error:  # the database went away: keep trying
                log.warning("lost the store's notices (%s); reconnecting", error)
            await asyncio.sleep(_RECONNECT_SECONDS)

    async def _dispatch(self, handlers: ClusterHandlers, channel: str, payload: str) -> None:
        try:
            if channel == EVENTS_CHANNEL:
                notebook, _, head = payload.rpartition(" ")
                # In a task: a slow read for one notebook must not hold the others' notices.
                self._spawn(handlers.on_events(notebook, int(head)))
            elif channel == PRESENCE_CHANNEL:
                notice = json.loads(payload)
                if notice["from"] != self.relay_id:
                    handlers.on_presence(
                        notice["nb"], _entry(notice), notice["client_id"], notice.get("actor", "")
                    )
            elif channel == TOKENS_CHANNEL:
                handlers.on_revocation()
        except (ValueError, KeyError, TypeError):
            log.warning("ignoring a malformed %s notice", channel)

    def _spawn(self, work: Awaitable[None]) -> None:
        async def run() -> None:
            try:
                await work
            except Exception:
                log.exception("following another relay failed")

        task = asyncio.create_task(run())
        self._following.add(task)
        task.add_done_callback(self._following.discard)

    # --- the duty -------------------------------------------------------------------

    async def _hold_duty(self, handlers: ClusterHandlers) -> None:
        while True:
            try:
                conn = await _connect(self.storage.url)
                async with conn:
                    while not self.on_duty:
                        cursor = await conn.execute("SELECT pg_try_advisory_lock(%s)", (DUTY_LOCK,))
                        row = await cursor.fetchone()
                        if row is not None and row[0]:
                            self.on_duty = True
                            log.info("this relay now watches kernel leases")
                            await handlers.on_duty()
                        else:
                            await asyncio.sleep(DUTY_RETRY_SECONDS)
                    while True:  # keep the lock's connection alive, and notice if it dies
                        await asyncio.sleep(DUTY_RETRY_SECONDS)
                        await conn.execute("SELECT 1")
            except asyncio.CancelledError:
                raise
            except Exception as error:
                if self.on_duty:
                    log.warning("lost the duty connection (%s)", error)
                self.on_duty = False
            await asyncio.sleep(_RECONNECT_SECONDS)


async def _connect(url: str) -> psycopg.AsyncConnection:
    """A connection of our own; TCP keepalives notice a peer that vanished without a word
    (a listener would otherwise wait for notices forever)."""
    return await psycopg.AsyncConnection.connect(
        url,
        autocommit=True,
        keepalives=1,
        keepalives_idle=10,
        keepalives_interval=5,
        keepalives_count=3,
    )


def _entry(notice: dict[str, Any]) -> Entry | None:
    if notice["gone"]:
        return None
    ttl = float(notice["ttl"])
    return Entry(
        client_id=notice["client_id"],
        actor=notice["actor"],
        kind=notice["kind"],
        state=notice["state"],
        expires_at=0.0,  # set by the board that takes it, on its own clock
        ttl=ttl,
    )
