"""The objects one relay process runs on, built by the app's lifespan.

Nothing lives in module globals: tests build as many relays as they like.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field

from .config import RelayConfig
from .hub import Hub, Signal
from .leases import LeaseMonitor
from .notebooks import Notebooks
from .presence import PresenceBoard, encode
from .ratelimit import PushLimiter, StreamCounter
from .revocations import Revocations
from .storage import Storage
from .storage.sqlite import SQLiteStorage
from .tokens import TokenStore

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
    #: Set when the relay begins to shut down: long polls answer at once.
    closing: asyncio.Event = field(default_factory=asyncio.Event)
    _housekeeping: asyncio.Task | None = field(default=None, repr=False)

    @classmethod
    def build(cls, config: RelayConfig, storage: Storage | None = None) -> Services:
        storage = storage or SQLiteStorage(config.database_path, sync=config.sqlite_sync)
        hub = Hub(queue_size=config.subscriber_queue)
        notebooks = Notebooks(storage, hub, config)
        presence = PresenceBoard(
            publish=lambda nb, signal: hub.publish(nb, Signal(encode(signal))),
            max_per_actor=config.max_presence_per_actor if config.auth else 0,
        )
        leases = LeaseMonitor(notebooks)
        tokens = TokenStore(config.data_dir) if config.auth else None
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
        )

    async def start(self) -> None:
        await self.storage.open()
        await self.leases.adopt_live_sessions()
        self._housekeeping = asyncio.create_task(self._keep_house(), name="anode-housekeeping")

    async def stop(self) -> None:
        if self._housekeeping is not None:
            self._housekeeping.cancel()
            try:
                await self._housekeeping
            except asyncio.CancelledError:
                pass
        await self.notebooks.close()
        await self.storage.close()
        if self.tokens is not None:
            self.tokens.close()

    async def _keep_house(self) -> None:
        """Expire kernel leases, stale presence and revoked credentials' streams, a few times a
        second."""
        while True:
            await asyncio.sleep(self.config.lease_check_seconds)
            try:
                await self.leases.check()
                self.presence.sweep()
                self.revocations.sweep()
            except Exception:  # keep the loop alive whatever one round hit
                log.exception("housekeeping failed")
