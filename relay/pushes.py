"""A push's body, parsed once into typed events: the one place its shape is checked.

What the events may do — roles, actors, relay-only events, claims, caps —
is the policy's (``auth.EventPolicy``), which runs on the state they would
land on. What a push may look like is here.
"""

from __future__ import annotations

from typing import Any

from shared_schema import PushedEvent, SchemaError, parse_pushed
from shared_schema.events import Event

from .errors import BadRequest, Conflict
from .params import only_fields


def parse_push(body: dict[str, Any], max_events: int) -> list[PushedEvent]:
    """``{"events": [...]}`` as typed events; a 4xx naming the first problem, and its path."""
    only_fields(body, {"events"})
    raw_events = body.get("events")
    if not isinstance(raw_events, list):
        raise BadRequest('the body must be {"events": [...]}', code="invalid_body")
    if not raw_events:
        raise BadRequest("a push needs at least one event", code="empty_batch")
    if len(raw_events) > max_events:
        raise BadRequest(
            f"a push holds at most {max_events} events, not {len(raw_events)}",
            code="batch_too_large",
        )
    pushed: list[PushedEvent] = []
    by_id: dict[str, Event] = {}
    for index, raw in enumerate(raw_events):
        try:
            item = parse_pushed(raw)
        except SchemaError as error:
            where = f"events[{index}].{error.path}".rstrip(".")
            raise BadRequest(
                f"{where}: {error.detail}", code=error.code, extra={"path": where}
            ) from None
        if by_id.setdefault(item.id, item.event) != item.event:
            raise Conflict(
                f"event id {item.id!r} appears twice in this batch with different content",
                code="event_id_reused",
                extra={"path": f"events[{index}].id"},
            )
        pushed.append(item)
    return pushed
