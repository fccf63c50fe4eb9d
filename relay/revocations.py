"""Ending what a credential holds open once it no longer checks out.

A request checks its token when it starts; a live stream or a long poll
would otherwise outlive a revocation for as long as it stays open. Each one
registers here with a callback that ends it, and the relay's housekeeping
(a few times a second) ends those whose token was revoked — by this relay,
another relay process or the CLI: the token store notices other writers'
revocations — or has expired.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from .tokens import Grant, TokenStore

End = Callable[[], None]


@dataclass
class Revocations:
    tokens: TokenStore | None
    clock: Callable[[], float] = time.time
    #: token id -> (its expiry, the callbacks that end what it holds open)
    _open: dict[str, tuple[int | None, list[End]]] = field(default_factory=dict)

    @contextmanager
    def watch(self, grant: Grant, end: End) -> Iterator[None]:
        """While inside, ``end()`` is called (once) if ``grant``'s token is revoked or expires."""
        if self.tokens is None:  # --no-auth: nothing to revoke
            yield
            return
        ends = self._open.setdefault(grant.token_id, (grant.expires_at, []))[1]
        ends.append(end)
        try:
            yield
        finally:
            if end in ends:
                ends.remove(end)
            if not ends:
                self._open.pop(grant.token_id, None)

    async def sweep(self) -> None:
        """End everything held by a token that was revoked or has expired."""
        if self.tokens is None or not self._open:
            return
        revoked = await self.tokens.revoked_ids()
        now = self.clock()
        for token_id, (expires_at, ends) in list(self._open.items()):
            if token_id in revoked or (expires_at is not None and expires_at <= now):
                del self._open[token_id]
                for end in ends:
                    end()
