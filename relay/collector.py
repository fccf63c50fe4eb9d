"""Bulk loads without the cyclic garbage collector.

Opening a big notebook decodes megabytes of JSON into fresh dicts and lists:
every few hundred of them, Python's cyclic collector wakes and walks them
all, and a 100,000-event notebook spent most of its cold open there (about
100 ms of GC pauses against 40 ms of work, measured in ``bench.relay --only
open``). What a load makes holds no reference cycles, so reference counting
frees it as usual; the collector is paused for the load only, and resumes
when the last of any concurrent loads ends.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

_paused = 0


@contextmanager
def collector_paused() -> Iterator[None]:
    global _paused
    if _paused == 0 and not gc.isenabled():
        yield  # someone else turned it off: leave it as it is
        return
    _paused += 1
    gc.disable()
    try:
        yield
    finally:
        _paused -= 1
        if _paused == 0:
            gc.enable()
