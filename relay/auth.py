"""Who is asking, and may they: a credential on every request, a role check on every event.

Route handlers call ``require(request, notebook_id, action)``; the push
handler also hands ``EventPolicy`` to ``Notebooks.push``, which runs it under
the notebook's write lock so that the state it checks is the state the
batch lands on. Roles:

- ``admin`` — every notebook, creates notebooks and tokens;
- ``owner`` — everything on one notebook, sharing included;
- ``editor`` — edit cells, request, cancel and interrupt executions;
- ``viewer`` — read, follow live, post presence;
- ``kernel`` — kernel, execution-lifecycle and output events, and only for
  sessions it announced and executions those sessions claimed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

from starlette.requests import Request

from shared_schema import NotebookState
from shared_schema import events as ev
from shared_schema.events import Event

from .errors import ApiError, PayloadTooLarge
from .tokens import ALL_NOTEBOOKS, Grant, InvalidToken, TokenStore

#: The credential every request carries when the relay runs with ``--no-auth``.
NO_AUTH = Grant(token_id="anonymous", notebook=ALL_NOTEBOOKS, role="admin", expires_at=None)

#: Which writer classes of ``shared_schema`` events each role may push.
ROLE_WRITERS: dict[str, frozenset[str]] = {
    "admin": frozenset({"editor", "kernel"}),
    "owner": frozenset({"editor", "kernel"}),
    "editor": frozenset({"editor"}),
    "viewer": frozenset(),
    "kernel": frozenset({"kernel"}),
}

#: What each action on a notebook needs.
ACTIONS: dict[str, frozenset[str]] = {
    "read": frozenset({"admin", "owner", "editor", "viewer", "kernel"}),
    "push": frozenset({"admin", "owner", "editor", "kernel"}),
    "presence": frozenset({"admin", "owner", "editor", "viewer", "kernel"}),
    "heartbeat": frozenset({"admin", "owner", "kernel"}),
    "share": frozenset({"admin", "owner"}),
    "create": frozenset({"admin"}),
}


class Unauthorized(ApiError):
    status = 401
    code = "unauthorized"
    headers = {"WWW-Authenticate": 'Bearer realm="anode"'}


class Forbidden(ApiError):
    status = 403
    code = "forbidden"


def credential(request: Request) -> Grant:
    """The checked grant of this request (``NO_AUTH`` when auth is off); 401 otherwise."""
    cached = request.scope.get("anode.grant")
    if cached is not None:
        return cached
    tokens: TokenStore | None = request.app.state.services.tokens
    if tokens is None:
        grant = NO_AUTH
    else:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthorized("this relay needs a token: send the header 'Authorization: Bearer <token>'")
        try:
            grant = tokens.check(token.strip())
        except InvalidToken as error:
            raise Unauthorized(str(error)) from None
    request.scope["anode.grant"] = grant
    return grant


def require(request: Request, action: str, notebook_id: str | None = None) -> Grant:
    """The request's grant, if it may do ``action`` (on ``notebook_id``); 401/403 otherwise."""
    grant = credential(request)
    if notebook_id is not None and not grant.covers(notebook_id):
        raise Forbidden("this token is for another notebook", code="wrong_notebook")
    if grant.role not in ACTIONS[action]:
        raise Forbidden(f"a {grant.role} token may not {_ACTION_WORDS[action]}", code="role_forbids")
    return grant


_ACTION_WORDS = {
    "read": "read this notebook",
    "push": "change this notebook",
    "presence": "post presence",
    "heartbeat": "heartbeat as a kernel",
    "share": "manage this notebook's tokens",
    "create": "create notebooks",
}


@dataclass
class EventPolicy:
    """Checks one batch against one grant, event by event, in log order.

    A kernel token may speak only for sessions it announced and executions
    those sessions claimed; claims made earlier in the same batch count, so
    a kernel's claim-and-start push passes whole (the materializer still
    decides who won the race).
    """

    grant: Grant
    #: Output entries one execution may hold (``RelayConfig.max_outputs_per_execution``).
    max_outputs: int

    def __call__(self, state: NotebookState, events: Iterable[Event]) -> None:
        writers = ROLE_WRITERS[self.grant.role]
        own_sessions: set[str] = set()
        own_claims: set[str] = set()
        added: dict[str, int] = {}
        for index, event in enumerate(events):
            if event.writer not in writers:
                raise Forbidden(
                    f"events[{index}]: a {self.grant.role} token may not write {event.name}",
                    code="role_forbids",
                    extra={"path": f"events[{index}].name"},
                )
            if self.grant.role == "kernel":
                self._check_kernel_event(state, index, event, own_sessions, own_claims)
            if isinstance(event, ev.OutputAdded):
                self._check_output_cap(state, index, event.execution_id, added)

    def _check_output_cap(self, state: NotebookState, index: int, execution_id: str, added: dict[str, int]) -> None:
        execution = state.executions.get(execution_id)
        count = added.get(execution_id, 0) + 1 + (len(execution.outputs) if execution else 0)
        if count > self.max_outputs:
            raise PayloadTooLarge(
                f"events[{index}]: execution {execution_id!r} already holds {self.max_outputs} outputs",
                code="too_many_outputs",
                extra={"path": f"events[{index}]"},
            )
        added[execution_id] = added.get(execution_id, 0) + 1

    def _check_kernel_event(
        self, state: NotebookState, index: int, event: Event, own_sessions: set[str], own_claims: set[str]
    ) -> None:
        actor = self.grant.actor
        session_id = getattr(event, "session_id", None)
        if isinstance(event, ev.KernelSessionStarted):
            known = state.kernels.get(event.session_id)
            if known is not None and known.actor != actor:
                raise _not_yours(index, f"kernel session {event.session_id!r} belongs to another kernel")
            own_sessions.add(event.session_id)
            return
        if session_id is not None:
            known = state.kernels.get(session_id)
            if session_id not in own_sessions and (known is None or known.actor != actor):
                raise _not_yours(index, f"kernel session {session_id!r} was not announced by this kernel")
            own_sessions.add(session_id)
            if isinstance(event, ev.ExecutionAssigned):
                own_claims.add(event.execution_id)
            return
        execution_id = getattr(event, "execution_id", None)
        if execution_id is None or execution_id in own_claims:
            return
        execution = state.executions.get(execution_id)
        holder = None if execution is None else state.kernels.get(execution.kernel_session or "")
        if holder is None or holder.actor != actor:
            raise _not_yours(index, f"execution {execution_id!r} was not claimed by this kernel")


def _not_yours(index: int, detail: str) -> Forbidden:
    return Forbidden(f"events[{index}]: {detail}", code="not_your_session", extra={"path": f"events[{index}]"})
