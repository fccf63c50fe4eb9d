"""The objects one relay process runs on, built by the app's lifespan.

Nothing lives in module globals: tests build as many relays as they like.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field

from .cluster import Cluster, build_cluster
from .config import RelayConfig
from .hub import Hub, Signal
from .leases import LeaseMonitor
from .notebooks import Notebooks
from .presence import Entry, PresenceBoard, encode
from .ratelimit import PushLimiter, StreamCounter
from .revocations import Revocations
from .storage import Storage
from .storage.sqlite import SQLiteStorage
from .tokens import SQLiteTokens, TokenStore, TokenTable

log = logging.getLogger("anode.relay")


@dataclass
class Services:
    config: RelayConfig
    storage: Storage
    hub: Hub
    notebooks: Notebooks
    presence: PresenceBoard
    leases: LeaseMonitor
    #: None when the relay runs without auth (``--no-auth``).
    tokens: TokenStore | None
    revocations: Revocations
    push_limiter: PushLimiter
    presence_limiter: PushLimiter
    streams: StreamCounter
    cluster: Cluster
    #: Set when the relay begins to shut down: long polls answer at once.
    closing: asyncio.Event = field(default_factory=asyncio.Event)
    _housekeeping: asyncio.Task | None = field(default=None, repr=False)

    @classmethod
    def build(cls, config: RelayConfig, storage: Storage | None = None) -> Services:
        storage = storage or open_storage(config)
        hub = Hub(queue_size=config.subscriber_queue)
        notebooks = Notebooks(storage, hub, config)
        presence = PresenceBoard(
            publish=lambda nb, signal: hub.publish(nb, Signal(encode(signal))),
            max_per_actor=config.max_presence_per_actor if config.auth else 0,
        )
        leases = LeaseMonitor(notebooks)
        tokens = TokenStore(token_table(config, storage)) if config.auth else None
        # The limits are per token: without tokens every caller would share one budget.
        per_token = config.auth
        return cls(
            config,
            storage,
            hub,
            notebooks,
            presence,
            leases,
            tokens,
            Revocations(tokens),
            PushLimiter(config.push_rate if per_token else 0, config.push_burst),
            PushLimiter(
                config.presence_rate if per_token else 0,
                max(1, int(config.presence_rate * 2)),
                what="presence posts",
            ),
            StreamCounter(config.max_streams_per_token if per_token else 0),
            build_cluster(storage),
        )

    async def start(self) -> None:
        await self.storage.open()
        if self.tokens is not None:
            await self.tokens.open()
        await self.cluster.start(self)
        self._housekeeping = asyncio.create_task(self._keep_house(), name="anode-housekeeping")

    async def stop(self) -> None:
        if self._housekeeping is not None:
            self._housekeeping.cancel()
            try:
                await self._housekeeping
            except asyncio.CancelledError:
                pass
        await self.cluster.stop()
        await self.notebooks.close()
        if self.tokens is not None:
            await self.tokens.close()
        await self.storage.close()

    # --- what the other relays tell this one (``relay.cluster.ClusterHandlers``) ---

    async def on_events(self, notebook: str, head: int) -> None:
        await self.notebooks.follow(notebook, head, open_it=self.cluster.on_duty)

    def on_presence(self, notebook: str, entry: Entry | None, client_id: str, actor: str) -> None:
        self.presence.apply(notebook, entry, client_id, actor)
        session_id = entry.state.get("session_id") if entry and entry.kind == "kernel" else None
        if isinstance(session_id, str):
            self.leases.heartbeat(notebook, session_id, entry.actor if entry else actor)

    def on_revocation(self) -> None:
        if self.tokens is not None:
            self.tokens.changed()

    async def on_reconnect(self) -> None:
        self.on_revocation()
        await self.notebooks.refresh_all()

    async def on_duty(self) -> None:
        """This relay now watches every kernel lease: load every notebook with a live one."""
        await self.leases.adopt_live_sessions()

    async def _keep_house(self) -> None:
        """Expire kernel leases, stale presence and revoked credentials' streams, a few times a
        second."""
        while True:
            await asyncio.sleep(self.config.lease_check_seconds)
            try:
                if self.cluster.on_duty:
                    await self.leases.check()
                else:  # it hears every relay's heartbeats, but checks none
                    self.leases.forget_stale_beats()
                self.presence.sweep()
                await self.revocations.sweep()
            except Exception:  # keep the loop alive whatever one round hit
                log.exception("housekeeping failed")


def open_storage(config: RelayConfig) -> Storage:
    """The store the config names: PostgreSQL by URL, else SQLite under the data directory.

    psycopg is imported only for PostgreSQL (see ``relay.cluster.build_cluster``)."""
    if config.store_url is not None:
        from .storage.postgres import PostgresStorage

        return PostgresStorage(config.store_url)
    return SQLiteStorage(config.database_path, sync=config.sqlite_sync)


def token_table(config: RelayConfig, storage: Storage) -> TokenTable:
    if storage.shared:
        from .storage.postgres import PostgresStorage, PostgresTokens

        assert isinstance(storage, PostgresStorage)
        return PostgresTokens(storage)
    return SQLiteTokens(config.data_dir)
