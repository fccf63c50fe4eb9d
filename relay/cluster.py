"""What ties several relay processes on one PostgreSQL store together.

Each relay keeps two connections of its own beside its pool:

- a **listener** (``LISTEN anode_events, anode_presence, anode_tokens``):
  a notice that another relay stored events makes this one fold them and fan
  them out to its own streams and long polls; a presence post reaches its
  board (and its lease monitor, for kernel heartbeats); a revocation makes it
  reload the revoked set that ends open streams. After the listener
  reconnects, every loaded notebook is caught up, since notices sent while it
  was away are gone.
- a **duty** connection holding a session advisory lock: the one relay that
  holds it writes the decisions that depend on time (a lapsed lease becomes
  ``kernelSessionExpired``) and starts auto kernels. If that relay dies, its
  connection closes, the lock is free, and another relay takes the duty
  within ``DUTY_RETRY_SECONDS``.

A single relay on SQLite uses ``LocalCluster``: it alone is every relay.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
from collections.abc import Awaitable
from typing import Any, Protocol

import psycopg

from .presence import Entry
from .storage.postgres import (
    EVENTS_CHANNEL,
    PRESENCE_CHANNEL,
    TOKENS_CHANNEL,
    PostgresStorage,
)

log = logging.getLogger("anode.relay.cluster")

#: The advisory lock whose holder has the duty (``"anode-duty"`` as an integer).
DUTY_LOCK = 0x616E6F64652D64
DUTY_RETRY_SECONDS = 1.0
_RECONNECT_SECONDS = 0.5


class Cluster(Protocol):
    #: Whether this relay writes the time-based decisions (lapsed leases) and starts kernels.
    on_duty: bool

    async def start(self, handlers: ClusterHandlers) -> None: ...

    async def stop(self) -> None: ...

    async def share_presence(self, notebook: str, entry: Entry | None, client_id: str) -> None:
        """Tell the other relays of a presence post (``entry``) or leave (None)."""


class ClusterHandlers(Protocol):
    """What a relay does with its peers' notices (``Services`` implements it)."""

    async def on_events(self, notebook: str, head: int) -> None: ...

    def on_presence(
        self, notebook: str, entry: Entry | None, client_id: str, actor: str
    ) -> None: ...

    def on_revocation(self) -> None: ...

    async def on_reconnect(self) -> None: ...

    async def on_duty(self) -> None: ...


class LocalCluster:
    """One relay: it has the duty, and nobody to tell."""

    on_duty = True

    async def start(self, handlers: ClusterHandlers) -> None:
        await handlers.on_duty()

    async def stop(self) -> None:
        pass

    async def share_presence(self, notebook: str, entry: Entry | None, client_id: str) -> None:
        pass


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


def build_cluster(storage: object) -> Cluster:
    if isinstance(storage, PostgresStorage):
        return PostgresCluster(storage)
    return LocalCluster()
