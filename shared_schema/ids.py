"""The names of the things every part of Anode talks about.

One place for the id types, so the relay, the browser client and the kernel
agree on what a ``CellId`` is without importing each other.
"""

from __future__ import annotations

import re
import secrets
from typing import NewType, TypeGuard

NotebookId = NewType("NotebookId", str)
CellId = NewType("CellId", str)
ExecutionId = NewType("ExecutionId", str)
SessionId = NewType("SessionId", str)
EventId = NewType("EventId", str)
Seq = NewType("Seq", int)
Actor = NewType("Actor", str)

#: Ids are short, URL-safe and never contain a path separator. Always used
#: with ``fullmatch``: ``match`` with ``$`` would let a trailing newline through.
ID_PATTERN = re.compile(r"[A-Za-z0-9_-]{1,64}")

#: The actor the relay writes its own events as (lease expiry, notebook creation).
RELAY_ACTOR = Actor("relay")


def new_session_id() -> SessionId:
    """A fresh kernel session id (``ks-`` and 16 URL-safe random characters)."""
    return SessionId("ks-" + secrets.token_urlsafe(12))


def is_valid_id(value: object) -> TypeGuard[str]:
    """True for a string usable as any Anode id (notebook, cell, event, ...)."""
    return isinstance(value, str) and ID_PATTERN.fullmatch(value) is not None
