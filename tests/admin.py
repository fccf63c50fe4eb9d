"""An in-process relay client that carries the admin token ``anode serve`` would print."""

from __future__ import annotations

from starlette.testclient import TestClient

from relay.app import create_app
from relay.config import RelayConfig


class AdminClient(TestClient):
    """``TestClient`` over ``create_app(config)``; once the app has started, it sends the admin
    token."""

    def __init__(self, config: RelayConfig) -> None:
        super().__init__(create_app(config), raise_server_exceptions=False)

    def __enter__(self) -> AdminClient:
        super().__enter__()
        tokens = self.app.state.services.tokens  # type: ignore[attr-defined]
        if tokens is not None:
            self.headers["Authorization"] = f"Bearer {tokens.serve_token()}"
        return self
