"""Who is asking, and may they: a credential on every request, a role check on every event.

Route handlers call ``require(request, notebook_id, action)``; the push
handler also hands ``EventPolicy`` to ``Notebooks.push``, which runs it under
the notebook's write lock so that the state it checks is the state the
batch lands on. Roles:

- ``admin`` — every notebook, creates notebooks and tokens;
- ``owner`` — everything on one notebook, sharing included;
- ``editor`` — edit cells, request, cancel and interrupt executions, and run
  its own tab kernel: kernel events only for ``tab`` sessions it announced,
  for executions those sessions claimed (``Execution.claimable_by``: its own
  requests asked of a tab);
- ``viewer`` — read, follow live, post presence;
- ``kernel`` — kernel, execution-lifecycle and output events, and only for
  sessions it announced and executions those sessions claimed.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from shared_schema import NotebookState, PushedEvent, limits
from shared_schema import events as ev
from shared_schema.events import Event
from shared_schema.materializer import rebase_work
from shared_schema.state import Execution, KernelSession

from .errors import ApiError, BadRequest, PayloadTooLarge, store_unavailable
from .storage import StoreUnavailable
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


class CheckCredentials:
    """Checks the bearer token of every API request before its handler runs.

    The check may ask the store whether the token was revoked (on PostgreSQL,
    by any relay), which is I/O; handlers then read the outcome, synchronously,
    through ``credential``.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].startswith("/api/"):
            tokens: TokenStore | None = scope["app"].state.services.tokens
            header = Headers(scope=scope).get("authorization", "")
            scheme, _, token = header.partition(" ")
            if tokens is None:
                scope[_GRANT] = NO_AUTH
            elif scheme.lower() == "bearer" and token.strip():
                try:
                    scope[_GRANT] = await tokens.check(token.strip())
                except InvalidToken as error:
                    scope[_PROBLEM] = str(error)
                except StoreUnavailable:  # raised outside the app's exception handlers
                    await store_unavailable()(scope, receive, send)
                    return
        await self.app(scope, receive, send)


_GRANT = "anode.grant"
_PROBLEM = "anode.credential_problem"


def credential(request: Request) -> Grant:
    """The checked grant of this request (``NO_AUTH`` when auth is off); 401 otherwise."""
    grant = request.scope.get(_GRANT)
    if grant is not None:
        return grant
    raise Unauthorized(
        request.scope.get(_PROBLEM)
        or "this relay needs a token: send the header 'Authorization: Bearer <token>'"
    )


def require(request: Request, action: str, notebook_id: str | None = None) -> Grant:
    """The request's grant, if it may do ``action`` (on ``notebook_id``); 401/403 otherwise."""
    grant = credential(request)
    if notebook_id is not None and not grant.covers(notebook_id):
        raise Forbidden("this token is for another notebook", code="wrong_notebook")
    if grant.role not in ACTIONS[action]:
        raise Forbidden(
            f"a {grant.role} token may not {_ACTION_WORDS[action]}", code="role_forbids"
        )
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
    those sessions claimed. A claim earlier in the same batch counts for the
    events after it only when the materializer will let it win (the
    execution is still pending, unclaimed, and the session live), so a
    kernel's claim-and-start push passes whole and no batch can borrow an
    execution another kernel runs. Every event that can add an output counts
    towards the cap, and every edit towards the rebase budget.
    """

    grant: Grant
    #: Output entries one execution may hold (``RelayConfig.max_outputs_per_execution``).
    max_outputs: int

    def __call__(self, state: NotebookState, pushed: Iterable[PushedEvent]) -> None:
        writers = ROLE_WRITERS[self.grant.role]
        batch = _BatchView()
        for index, item in enumerate(pushed):
            event = item.event
            if item.claims_actor:
                self._refuse_claimed_actor(index, item.claimed_actor)
            if event.writer == "relay":
                raise BadRequest(
                    f"events[{index}]: {event.name} is written only by the relay",
                    code="relay_only_event",
                    extra={"path": f"events[{index}].name"},
                )
            tab_event = (  # (a kernel token's events are checked as a kernel's anyway)
                self.grant.role != "kernel"
                and event.writer == "kernel"
                and batch.is_tab_event(state, event)
            )
            if event.writer not in writers and not (tab_event and self.grant.role == "editor"):
                raise Forbidden(
                    f"events[{index}]: a {self.grant.role} token may not write {event.name}"
                    + (" (but for its own tab kernel)" if self.grant.role == "editor" else ""),
                    code="role_forbids",
                    extra={"path": f"events[{index}].name"},
                )
            if self.grant.role == "kernel" or tab_event:
                self._check_kernel_event(state, index, event, batch)
            if isinstance(event, (ev.OutputAdded, ev.StreamAppended)):
                self._check_output_cap(state, index, event, batch)
            elif isinstance(event, ev.CellSourceEdited):
                _check_rebase(state, index, event, batch)
            elif isinstance(event, ev.ExecutionAssigned):
                batch.note_claim(state, event)
            elif isinstance(event, ev.KernelSessionStarted):
                batch.note_session(event, self.grant.actor)
            elif isinstance(event, ev.ExecutionRequested):
                batch.note_request(state, event, self.grant.actor)

    def _refuse_claimed_actor(self, index: int, claimed: object) -> None:
        """The relay sets ``actor`` from the credential: a body that names one is refused,
        and one speaking for someone else is forbidden."""
        where = f"events[{index}].actor"
        if claimed != self.grant.actor:
            raise Forbidden(
                f"{where}: this credential writes as {self.grant.actor!r},"
                f" not {str(claimed)[:80]!r}",
                code="actor_mismatch",
                extra={"path": where},
            )
        raise BadRequest(
            f"{where}: actor is set by the relay, not by the author",
            code="relay_field",
            extra={"path": where},
        )

    def _check_output_cap(
        self,
        state: NotebookState,
        index: int,
        event: ev.OutputAdded | ev.StreamAppended,
        batch: _BatchView,
    ) -> None:
        """Refuse the event that would take its execution past the cap.

        A ``streamAppended`` adds an output unless the last one is the same
        stream (the materializer appends to it then), so alternating stdout
        and stderr counts every switch.
        """
        execution_id = event.execution_id
        if execution_id not in batch.outputs:
            execution = state.executions.get(execution_id)
            outputs = execution.outputs if execution else []
            last = outputs[-1] if outputs else None
            stream = (
                last["name"] if last is not None and last.get("output_type") == "stream" else None
            )
            batch.outputs[execution_id] = (len(outputs), stream)
        count, stream = batch.outputs[execution_id]
        adds = not isinstance(event, ev.StreamAppended) or event.stream != stream
        last_stream = event.stream if isinstance(event, ev.StreamAppended) else None
        batch.outputs[execution_id] = (count + adds, last_stream)
        if adds and count + 1 > self.max_outputs:
            raise PayloadTooLarge(
                f"events[{index}]: execution {execution_id!r} already holds {self.max_outputs} "
                "outputs",
                code="too_many_outputs",
                extra={"path": f"events[{index}]"},
            )

    def _check_kernel_event(
        self, state: NotebookState, index: int, event: Event, batch: _BatchView
    ) -> None:
        actor = self.grant.actor
        session_id = getattr(event, "session_id", None)
        if isinstance(event, ev.KernelSessionStarted):
            known = state.kernels.get(event.session_id)
            if known is not None and known.actor != actor:
                raise _not_yours(
                    index, f"kernel session {event.session_id!r} belongs to another kernel"
                )
            batch.own_sessions.add(event.session_id)
            return
        if session_id is not None:
            known = state.kernels.get(session_id)
            if session_id not in batch.own_sessions and (known is None or known.actor != actor):
                raise _not_yours(
                    index, f"kernel session {session_id!r} was not announced by this kernel"
                )
            batch.own_sessions.add(session_id)
        execution_id = getattr(event, "execution_id", None)
        if (
            execution_id is None
            or isinstance(event, ev.ExecutionAssigned)
            or execution_id in batch.won_claims
        ):
            return
        execution = state.executions.get(execution_id)
        holder = None if execution is None else state.kernels.get(execution.kernel_session or "")
        if holder is None or holder.actor != actor or execution_id in batch.claimed:
            # (claimed earlier in this batch, and not won: another kernel holds it)
            raise _not_yours(index, f"execution {execution_id!r} was not claimed by this kernel")


@dataclass
class _BatchView:
    """What the events checked so far in one batch change for the ones after them."""

    own_sessions: set[str] = field(default_factory=set)
    #: Sessions announced, and executions requested, earlier in the batch (a tab's offline
    #: runs arrive as one batch: request, claim, start, outputs, completion).
    started: dict[str, KernelSession] = field(default_factory=dict)
    requested: dict[str, Execution] = field(default_factory=dict)
    #: Executions claimed earlier in the batch, and those of them whose claim wins.
    claimed: set[str] = field(default_factory=set)
    won_claims: set[str] = field(default_factory=set)
    #: Won claims: execution id -> the session that holds it now.
    claims: dict[str, str] = field(default_factory=dict)
    #: execution id -> (outputs it will hold, the stream its last output is, or None)
    outputs: dict[str, tuple[int, str | None]] = field(default_factory=dict)
    #: cell id -> components of the batch's earlier edits to it; the batch's rebase work so far.
    edits: dict[str, list[int]] = field(default_factory=dict)
    rebase_work: int = 0

    def session(self, state: NotebookState, session_id: str) -> KernelSession | None:
        return state.kernels.get(session_id) or self.started.get(session_id)

    def note_session(self, event: ev.KernelSessionStarted, actor: str) -> None:
        if event.session_id not in self.started:
            self.started[event.session_id] = KernelSession(
                id=event.session_id, host=event.host, lease_seconds=event.lease_seconds, actor=actor
            )

    def note_request(self, state: NotebookState, event: ev.ExecutionRequested, actor: str) -> None:
        cell = state.cells.get(event.cell_id)
        known = event.execution_id in state.executions or event.execution_id in self.requested
        if not known and (cell is None or not cell.deleted):  # a cell made in this batch is live
            self.requested[event.execution_id] = Execution(
                id=event.execution_id,
                cell_id=event.cell_id,
                source="",
                requested_by=actor,
                runner=event.runner,
            )

    def note_claim(self, state: NotebookState, event: ev.ExecutionAssigned) -> None:
        """Mirror the materializer: the claim wins if the execution is pending, the session
        live, and the request lets this session run it."""
        execution = state.executions.get(event.execution_id) or self.requested.get(
            event.execution_id
        )
        session = self.session(state, event.session_id)
        if (
            execution is not None
            and execution.status == "pending"
            and event.execution_id not in self.claimed
            and session is not None
            and session.status == "live"
            and execution.claimable_by(session)
        ):
            self.won_claims.add(event.execution_id)
            self.claims[event.execution_id] = event.session_id
        self.claimed.add(event.execution_id)

    def is_tab_event(self, state: NotebookState, event: Event) -> bool:
        """A kernel event of a tab kernel: its session's, or about an execution one holds."""
        if isinstance(event, ev.KernelSessionStarted):
            return event.host == "tab"
        session_id = getattr(event, "session_id", None)
        if session_id is None:
            execution_id = getattr(event, "execution_id", None) or ""
            execution = state.executions.get(execution_id)
            session_id = self.claims.get(execution_id) or (
                execution.kernel_session if execution is not None else None
            )
        session = self.session(state, session_id or "")
        return session is not None and session.host == "tab"


def _check_rebase(
    state: NotebookState, index: int, event: ev.CellSourceEdited, batch: _BatchView
) -> None:
    """Refuse an edit too stale to rebase within the budget (``limits.MAX_REBASE_WORK``)."""
    cell = state.cells.get(event.cell_id)
    if cell is None:
        return
    components = len(event.ops)
    # The batch's earlier edits to this cell land as revisions cell.rev + 1, + 2, ...:
    # this one is rebased over those made from its base revision on, and the log's.
    earlier = batch.edits.setdefault(event.cell_id, [])
    work = rebase_work(cell, event.base_rev, components) if event.base_rev <= cell.rev else 0
    first = max(event.base_rev - cell.rev, 0)
    work += sum(length + components + limits.REBASE_STEP_COST for length in earlier[first:])
    batch.rebase_work += work
    if work > limits.MAX_REBASE_WORK or batch.rebase_work > limits.MAX_BATCH_REBASE_WORK:
        budget = (
            limits.MAX_REBASE_WORK
            if work > limits.MAX_REBASE_WORK
            else limits.MAX_BATCH_REBASE_WORK
        )
        raise PayloadTooLarge(
            f"events[{index}]: rebasing this edit from revision {event.base_rev} of cell"
            f" {event.cell_id!r} would cost more than the budget of {budget} (see "
            "docs/protocol.md);"
            " rebase it on a newer revision",
            code="edit_too_stale",
            extra={"path": f"events[{index}]"},
        )
    earlier.append(components)


def _not_yours(index: int, detail: str) -> Forbidden:
    return Forbidden(
        f"events[{index}]: {detail}", code="not_your_session", extra={"path": f"events[{index}]"}
    )
