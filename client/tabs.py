"""This tab's number, held with a Web Lock, so tabs of one browser can share IndexedDB.

Every tab of the client holds the lock ``anode-tab:<n>`` for as long as it
lives, with ``n`` kept in ``sessionStorage`` (so a reload keeps its number).
The number owns the tab's records in IndexedDB (``client.model.TAB_SPAN``):
pending events and drafts. A tab pushes only its own pending events; on
opening a notebook it adopts the records of numbers no tab holds, which are
what a closed or crashed tab left behind. A duplicated tab copies
``sessionStorage``; finding its number held, it takes a new one.

The browser releases a tab's locks when the tab goes, even when it crashes.
Without the Web Locks API (an insecure context) every number counts as held:
nothing is adopted but records from before tab numbers.
"""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass
from typing import Any

import js
from pyodide.ffi import create_proxy

from .browser import js_object

PREFIX = "anode-tab:"
KEY = "anode-tab"
#: Tab numbers run 1..LIMIT-1 (``model.TAB_SPAN * LIMIT`` stays below 2**53).
LIMIT = 2**20


@dataclass(frozen=True)
class Tab:
    number: int
    #: The numbers other live tabs hold (``None``: cannot tell, so count every number as live).
    others: frozenset[int] | None


_held: list[Any] = []  # the lock callbacks: alive as long as the page


def _session_number() -> int | None:
    try:
        value = js.sessionStorage.getItem(KEY)
    except Exception:  # storage blocked
        return None
    return (
        int(value)
        if isinstance(value, str) and value.isdigit() and 0 < int(value) < LIMIT
        else None
    )


async def claim_tab() -> Tab:
    """Take this tab's number and hold its lock for the page's life."""
    locks = getattr(js.navigator, "locks", None)
    if locks is None:
        return Tab(_session_number() or random.randrange(1, LIMIT), None)
    preferred = _session_number()
    for _ in range(8):
        snapshot = await locks.query()
        names = [str(lock.name) for lock in [*snapshot.held, *snapshot.pending]]
        taken = {
            int(name[len(PREFIX) :])
            for name in names
            if name.startswith(PREFIX) and name[len(PREFIX) :].isdigit()
        }
        number = preferred if preferred and preferred not in taken else random.randrange(1, LIMIT)
        preferred = None
        if number in taken or not await _hold(locks, number):
            continue
        try:
            js.sessionStorage.setItem(KEY, str(number))
        except Exception:
            pass
        return Tab(number, frozenset(taken))
    return Tab(random.randrange(1, LIMIT), None)


async def _hold(locks: Any, number: int) -> bool:
    """Take ``anode-tab:<number>`` if no one holds it, and keep it until the page goes."""
    granted: asyncio.Future = asyncio.get_event_loop().create_future()

    def never(_resolve: Any, _reject: Any) -> None:
        """A promise that never settles: the lock is held as long as the page lives."""

    executor = create_proxy(never)

    def held(lock: Any) -> Any:
        if not granted.done():
            granted.set_result(lock is not None)
        return js.Promise.new(executor) if lock is not None else None

    callback = create_proxy(held)
    _held.extend((executor, callback))
    locks.request(f"{PREFIX}{number}", js_object({"ifAvailable": True}), callback)
    return await granted
