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

from typing import Protocol

from .presence import Entry
from .storage import Storage


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


def build_cluster(storage: Storage) -> Cluster:
    """``LocalCluster`` for a store only this process writes; PostgreSQL's otherwise (imported
    only then: a SQLite relay never loads psycopg, whose objects every full garbage collection
    would walk — 20 ms more on the first open of a big notebook)."""
    if storage.shared:
        from .storage.postgres import PostgresStorage
        from .storage.postgres_cluster import PostgresCluster

        assert isinstance(storage, PostgresStorage)
        return PostgresCluster(storage)
    return LocalCluster()
