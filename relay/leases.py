"""Kernel leases: the relay is the one party that decides a kernel is gone.

A kernel announces ``lease_seconds`` in ``kernelSessionStarted`` and then
heartbeats through the presence endpoint. When a live session has not been
heard from for longer than its lease, the relay writes
``kernelSessionExpired``; the materializer then re-queues the work the
session claimed but had not started and fails the work it was running.

Clocks are monotonic and local to this process. A session the relay has not
heard from since it (re)started, or since it took the duty, gets one full
lease from the moment the relay first notices it, so restarting a relay (or
handing the duty to another) never expires healthy kernels.

With several relays, every relay hears every heartbeat (``relay/cluster.py``)
but only the one on duty checks; the expiry is still written idempotently
(one event id per session) and only while the session is live in the
caught-up log, so even two relays that both believed they had the duty would
store it once.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field

from shared_schema import NotebookState, PushedEvent
from shared_schema.events import KernelSessionExpired

from .errors import ApiError
from .notebooks import Authorize, Notebooks

log = logging.getLogger("anode.relay.leases")


@dataclass
class LeaseMonitor:
    notebooks: Notebooks
    clock: Callable[[], float] = time.monotonic
    #: (notebook, session) -> (when its last heartbeat came, and from whom).
    _beats: dict[tuple[str, str], tuple[float, str]] = field(default_factory=dict)
    #: (notebook, session) -> when this process first noticed it live.
    _noticed: dict[tuple[str, str], float] = field(default_factory=dict)

    def heartbeat(self, notebook: str, session_id: str, actor: str) -> None:
        """Note a beat. It keeps the session only if ``actor`` announced it (checked in
        ``check``, since a beat may come before its ``kernelSessionStarted`` lands)."""
        self._beats[(notebook, session_id)] = (self.clock(), actor)

    async def adopt_live_sessions(self) -> None:
        """On taking the duty (a lone relay: at start-up), open every notebook whose log has
        live kernel sessions; each gets a full lease from now."""
        self._noticed.clear()
        for info in await self.notebooks.list_notebooks():
            if info.live_kernels > 0:
                try:
                    await self.notebooks.open(info.id)
                except Exception:  # one notebook the relay cannot open must not keep it down
                    log.exception("cannot open notebook %r to watch its kernels", info.id[:80])

    async def check(self) -> None:
        """Expire every live session whose lease ran out."""
        now = self.clock()
        live: set[tuple[str, str]] = set()
        for opened in self.notebooks.loaded():
            for session in opened.state.live_kernels():
                key: tuple[str, str] = (opened.id, session.id)
                live.add(key)
                seen = self._noticed.setdefault(key, now)
                beat = self._beats.get(key)
                # Only the beats of the credential that announced the session keep it.
                if beat is not None and beat[1] == session.actor:
                    seen = max(seen, beat[0])
                if now - seen > session.lease_seconds:
                    log.info("kernel session %s of %s missed its lease", session.id, opened.id)
                    try:
                        await self.notebooks.append_as_relay(
                            opened.id,
                            KernelSessionExpired(session_id=session.id),
                            event_id=expiry_id(session.id),
                            authorize=_still_live(session.id),
                        )
                    except _Moot:  # it ended, or another relay expired it, meanwhile
                        pass
                    except ApiError:  # pragma: no cover - the notebook vanished under us
                        log.exception("could not expire %s", session.id)
        for key in set(self._noticed) - live:
            del self._noticed[key]
        self.forget_stale_beats(keep=live)

    def forget_stale_beats(self, keep: AbstractSet[tuple[str, str]] = frozenset()) -> None:
        """Forget beats of sessions that ended (or, on a relay without the duty, that
        stopped beating), but keep those that arrived before their kernelSessionStarted
        landed: they are recent."""
        now = self.clock()
        for key in set(self._beats) - keep:
            if now - self._beats[key][0] > 60.0:
                del self._beats[key]


def expiry_id(session_id: str) -> str:
    """The one event id a session's expiry is stored under, whichever relay writes it."""
    return "lapsed-" + hashlib.sha256(session_id.encode()).hexdigest()[:40]


class _Moot(Exception):
    """The session is no longer live in the log the append would land on."""


def _still_live(session_id: str) -> Authorize:
    def check(state: NotebookState, pushed: list[PushedEvent]) -> None:
        session = state.kernels.get(session_id)
        if session is None or session.status != "live":
            raise _Moot(session_id)

    return check
