"""An in-process relay client that carries the admin token ``anode serve`` would print."""

from __future__ import annotations

import asyncio
from typing import Any

from starlette.testclient import TestClient

from relay.app import create_app
from relay.config import RelayConfig
from relay.tokens import TokenStore


class SyncTokens:
    """A relay's token store, called from a test's own thread: each call runs to its end.

    Only for the SQLite token table, whose connection belongs to no event loop.
    """

    def __init__(self, store: TokenStore) -> None:
        self.store = store

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.store, name)
        if not asyncio.iscoroutinefunction(attr):
            return attr

        def call(*args: Any, **kwargs: Any) -> Any:
            return asyncio.run(attr(*args, **kwargs))

        return call


class AdminClient(TestClient):
    """``TestClient`` over ``create_app(config)``; once the app has started, it sends the admin
    token."""

    def __init__(self, config: RelayConfig) -> None:
        super().__init__(create_app(config), raise_server_exceptions=False)

    def __enter__(self) -> AdminClient:
        super().__enter__()
        tokens = self.app.state.services.tokens  # type: ignore[attr-defined]
        if tokens is not None:
            self.headers["Authorization"] = f"Bearer {SyncTokens(tokens).serve_token()}"
        return self
