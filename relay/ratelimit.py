"""Per-token limits that live in memory: pushes per second and open streams.

A token bucket per credential: ``rate`` pushes a second on average, with
bursts up to ``burst``. Buckets idle long enough to be full again are
forgotten, so memory follows the tokens in use, not every token ever seen.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from .errors import TooManyRequests


@dataclass
class _Bucket:
    level: float
    at: float


@dataclass
class PushLimiter:
    rate: float  # pushes per second; 0 turns the limit off
    burst: int
    clock: Callable[[], float] = time.monotonic
    #: What is counted, for the 429's message.
    what: str = "pushes"
    _buckets: dict[str, _Bucket] = field(default_factory=dict)

    def take(self, key: str) -> None:
        """Spend one push for ``key``, or raise 429 saying when to retry."""
        if self.rate <= 0:
            return
        now = self.clock()
        bucket = self._buckets.get(key)
        if bucket is None:
            if len(self._buckets) > 10_000:
                self._forget_full(now)
            bucket = self._buckets[key] = _Bucket(float(self.burst), now)
        bucket.level = min(float(self.burst), bucket.level + (now - bucket.at) * self.rate)
        bucket.at = now
        if bucket.level < 1.0:
            raise TooManyRequests(
                f"more than {self.rate:g} {self.what} a second on this token; slow down",
                retry_after=(1.0 - bucket.level) / self.rate,
            )
        bucket.level -= 1.0

    def _forget_full(self, now: float) -> None:
        refill = self.burst / self.rate
        self._buckets = {k: b for k, b in self._buckets.items() if now - b.at < refill}


@dataclass
class StreamCounter:
    """Open SSE streams per token, capped at ``limit`` (0: no cap)."""

    limit: int
    _open: Counter[str] = field(default_factory=Counter)

    def check(self, key: str) -> None:
        """429 if ``key`` has no stream to spare."""
        if self.limit and self._open[key] >= self.limit:
            raise TooManyRequests(
                f"this token already has {self.limit} open streams; close one first",
                retry_after=5.0,
                code="too_many_streams",
            )

    def enter(self, key: str) -> None:
        self._open[key] += 1

    def leave(self, key: str) -> None:
        self._open[key] -= 1
        if self._open[key] <= 0:
            del self._open[key]
