"""The two wire shapes of an event: as an author pushes it, and as the log stores it.

Pushed:  ``{"id", "name", "v", "args"}`` — the author's UUID is the idempotency key.
Stored:  the same plus ``seq``, ``actor`` and ``ts``, which only the relay sets.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from . import events
from .errors import SchemaError
from .events import Event
from .ids import Actor, EventId, Seq, is_valid_id

PUSH_KEYS = frozenset({"id", "name", "v", "args"})
RELAY_KEYS = frozenset({"seq", "actor", "ts"})
#: Of the relay's keys, ``actor`` is kept on a pushed event for the relay's
#: policy to refuse (``relay.auth``: 403 for someone else, 400 for oneself).
_CLAIMABLE = frozenset({"actor"})
_NO_ACTOR = object()


@dataclass(frozen=True, slots=True)
class PushedEvent:
    id: EventId
    event: Event
    #: The ``actor`` the body named, if it named one: the relay sets ``actor``,
    #: so its policy refuses any (``relay.auth``); the value says how.
    claimed_actor: object = _NO_ACTOR

    @property
    def claims_actor(self) -> bool:
        return self.claimed_actor is not _NO_ACTOR

    def to_json(self) -> dict[str, Any]:
        """The event as pushed: ``{"id", "name", "v", "args"}``."""
        return {"id": self.id, **self.event.to_json()}


@dataclass(frozen=True, slots=True)
class StoredEvent:
    """An event as it sits in the log. ``event`` is ``None`` when this schema
    does not know it (written by a newer version): folding skips it."""

    seq: Seq
    id: EventId
    name: str
    v: int
    args: dict[str, Any]
    actor: Actor
    ts: float
    event: Event | None

    def to_json(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "id": self.id,
            "name": self.name,
            "v": self.v,
            "args": self.args,
            "actor": self.actor,
            "ts": self.ts,
        }


def parse_pushed(value: Any) -> PushedEvent:
    """Validate one event of a push batch (untrusted JSON)."""
    if not isinstance(value, dict):
        raise SchemaError("invalid_event", "an event must be an object")
    relay_set = (RELAY_KEYS - _CLAIMABLE) & value.keys()
    if relay_set:
        key = sorted(relay_set)[0]
        raise SchemaError("relay_field", f"{key} is set by the relay, not by the author", key)
    unknown = value.keys() - PUSH_KEYS - _CLAIMABLE
    if unknown:
        key = str(sorted(unknown)[0])[:64]
        raise SchemaError("unexpected_field", f"an event has no field {key!r}", key)
    for key in ("id", "name", "v"):
        if key not in value:
            raise SchemaError("missing_field", f"an event needs {key}", key)
    if not is_valid_id(value["id"]):
        raise SchemaError(
            "invalid_id", "id must be 1-64 characters of A-Z, a-z, 0-9, '_' or '-'", "id"
        )
    event = events.decode(value["name"], value["v"], value.get("args", {}))
    return PushedEvent(EventId(value["id"]), event, value.get("actor", _NO_ACTOR))


def stored_from_json(value: dict[str, Any], *, trusted: bool = False) -> StoredEvent:
    """Read an event the relay served. Unknown names or newer versions fold as no-ops.

    ``trusted`` is for the relay reading its own store, whose events it
    validated before writing them: it skips the per-argument checks
    (``events.decode_trusted``). Anything read off the network is untrusted.
    """
    decode = events.decode_trusted if trusted else events.decode
    try:
        event: Event | None = decode(value["name"], value["v"], value["args"])
    except SchemaError as error:
        if error.code not in ("unknown_event", "unsupported_version"):
            raise
        event = None
    return StoredEvent(
        seq=Seq(value["seq"]),
        id=EventId(value["id"]),
        name=value["name"],
        v=value["v"],
        args=value["args"],
        actor=Actor(value["actor"]),
        ts=float(value["ts"]),
        event=event,
    )


def stored(seq: int, event_id: str, event: Event, actor: str, ts: float) -> StoredEvent:
    """A stored event built from a validated one (the relay's path, no re-validation)."""
    return StoredEvent(
        seq=Seq(seq),
        id=EventId(event_id),
        name=event.name,
        v=event.version,
        args=event.to_args(),
        actor=Actor(actor),
        ts=ts,
        event=event,
    )
