"""Sharing the event loop with long CPU work: a turn for everyone else every few ms.

Folding a long log or encoding a big snapshot is Python holding the GIL, so
a thread would stall the loop just the same; instead the work is cut between
steps that each leave the data whole, and gives the loop a turn between them.
"""

from __future__ import annotations

import asyncio
import time


class Turns:
    """Call ``await turns.maybe_yield()`` between steps: the loop gets a turn every ``every`` s."""

    def __init__(self, every: float) -> None:
        self._every = every
        self._until = time.perf_counter() + every

    async def maybe_yield(self) -> None:
        if time.perf_counter() >= self._until:
            await asyncio.sleep(0)
            self._until = time.perf_counter() + self._every
