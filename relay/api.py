"""The HTTP API under ``/api``: thin handlers over ``Notebooks`` and the presence board.

Handlers parse and check input, call one service method, and shape JSON.
The event log's wire format is built by joining stored JSON bodies, so a
pull never re-encodes events.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Coroutine, Iterator
from contextlib import contextmanager
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from shared_schema import SCHEMA_VERSION, SchemaError, fields
from shared_schema.ids import is_valid_id
from shared_schema.limits import MAX_TITLE

from . import __version__
from .auth import ACTIONS, EventPolicy, Forbidden, Unauthorized, credential, require
from .config import RelayConfig
from .errors import BadRequest, TooManyRequests
from .ipynb import ipynb_routes
from .notebooks import Notebooks
from .params import float_param, int_param, json_body, only_fields
from .presence import Entry, NotYours, TooManyEntries
from .pushes import parse_push
from .services import Services
from .stream import stream
from .token_api import token_routes

PRESENCE_KINDS = ("user", "kernel")


def services(request: Request) -> Services:
    return request.app.state.services


async def health(request: Request) -> Response:
    return JSONResponse(
        {
            "status": "ok",
            "version": __version__,
            "schema_version": SCHEMA_VERSION,
            "auth": services(request).tokens is not None,
            "kernels": "auto" if services(request).config.auto_kernels else "none",
            # Where kernels load Pyodide's packages from: a URL, a path on this relay, or
            # None for Pyodide's CDN.
            "pyodide_packages": services(request).config.pyodide_packages_url(""),
        }
    )


async def whoami(request: Request) -> Response:
    grant = credential(request)
    return JSONResponse(
        {
            "actor": grant.actor,
            "role": grant.role,
            "notebook": grant.notebook,
            "token_id": grant.token_id,
            "expires_at": grant.expires_at,
            "auth": services(request).tokens is not None,
        }
    )


async def list_notebooks(request: Request) -> Response:
    grant = require(request, "read")
    infos = [
        info for info in await services(request).notebooks.list_notebooks() if grant.covers(info.id)
    ]
    return JSONResponse(
        {
            "notebooks": [
                {
                    "id": info.id,
                    "title": info.title,
                    "head": info.head,
                    "cells": info.cells,
                    "live_kernels": info.live_kernels,
                    "created_at": info.created_at,
                    "updated_at": info.updated_at,
                }
                for info in infos
            ]
        }
    )


async def create_notebook(request: Request) -> Response:
    grant = require(request, "create")
    config = services(request).config
    body = await json_body(request, config.max_body_bytes)
    only_fields(body, {"title", "id"})
    title = body.get("title", "")
    if not isinstance(title, str) or len(title) > MAX_TITLE:
        raise BadRequest(
            f"title must be a string of at most {MAX_TITLE} characters", code="invalid_title"
        )
    notebook_id = body.get("id")
    if notebook_id is not None and not is_valid_id(notebook_id):
        raise BadRequest(
            "id must be 1-64 characters of A-Z, a-z, 0-9, '_' or '-'", code="invalid_notebook_id"
        )
    opened = await services(request).notebooks.create(title, grant.actor, notebook_id)
    return JSONResponse(
        {"id": opened.id, "title": title, "head": opened.state.seq}, status_code=201
    )


async def push_events(request: Request) -> Response:
    svc = services(request)
    notebook_id = request.path_params["notebook"]
    grant = require(request, "push", notebook_id)
    await svc.notebooks.open(notebook_id)  # 404 before reading a body for nothing
    svc.push_limiter.take(grant.token_id)
    body = await json_body(request, svc.config.max_body_bytes)
    pushed = parse_push(body, svc.config.max_batch_events)
    policy = EventPolicy(grant, svc.config.max_outputs_per_execution)
    seqs, head = await svc.notebooks.push(notebook_id, pushed, grant.actor, policy)
    return JSONResponse({"head": head, "seqs": seqs})


async def pull_events(request: Request) -> Response:
    svc = services(request)
    config = svc.config
    notebook_id = request.path_params["notebook"]
    grant = require(request, "read", notebook_id)
    after = int_param(request, "after", 0, 0, 2**53)
    limit = int_param(request, "limit", config.default_pull_limit, 1, config.max_pull_limit)
    wait = float_param(request, "wait", 0.0, 0.0, config.max_wait_seconds)
    notebooks: Notebooks = svc.notebooks
    rows, head = await notebooks.pull(notebook_id, after, limit)
    if not rows and wait > 0:
        revoked = asyncio.Event()
        with svc.revocations.watch(grant, revoked.set):
            waiting = notebooks.wait_for_events(notebook_id, after, wait)
            await _wait_unless_gone(request, waiting, svc.closing, revoked)
        if revoked.is_set():
            raise Unauthorized("token has been revoked or has expired")
        rows, head = await notebooks.pull(notebook_id, after, limit)
    payload = '{"events":[' + ",".join(row.body for row in rows) + '],"head":' + str(head) + "}"
    return Response(payload, media_type="application/json")


async def _wait_unless_gone(
    request: Request, waiting: Coroutine[Any, Any, None], *stop: asyncio.Event
) -> None:
    """Await a long poll, but stop early when the client hangs up or a ``stop`` is set
    (the relay shuts down, the token is revoked).

    A kernel's long poll would otherwise hold its task (and a relay's
    graceful shutdown) for up to ``wait`` seconds after nobody listens.
    """

    async def hung_up() -> None:
        while (await request.receive())["type"] != "http.disconnect":
            pass

    tasks: list[asyncio.Future[Any]] = [
        asyncio.ensure_future(waiting),
        asyncio.ensure_future(hung_up()),
    ]
    tasks += [asyncio.ensure_future(event.wait()) for event in stop]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()


async def post_presence(request: Request) -> Response:
    """Post, replace or remove one ephemeral entry: bounded in size, depth, count and
    rate, and owned by the credential that first posted it."""
    svc = services(request)
    config = svc.config
    notebook_id = request.path_params["notebook"]
    grant = require(request, "presence", notebook_id)
    opened = await svc.notebooks.open(notebook_id)
    svc.presence_limiter.take(grant.token_id)
    body = await json_body(request, config.max_presence_bytes)
    only_fields(body, {"client_id", "kind", "state", "ttl", "gone"})
    client_id = body.get("client_id")
    if not is_valid_id(client_id):
        raise BadRequest(
            "client_id must be an id (1-64 of A-Z, a-z, 0-9, '_', '-')", code="invalid_client_id"
        )
    actor = grant.actor
    if body.get("gone") is True:
        with _presence_owned(client_id):
            svc.presence.leave(notebook_id, client_id, actor)
        await svc.cluster.share_presence(notebook_id, None, client_id)
        return JSONResponse({"ok": True})
    kind = body.get("kind", "user")
    if kind not in PRESENCE_KINDS:
        raise BadRequest(f"kind must be one of {', '.join(PRESENCE_KINDS)}", code="invalid_kind")
    state = _presence_state(body.get("state", {}), config)
    ttl = body.get("ttl", config.presence_ttl_seconds)
    if (
        isinstance(ttl, bool)
        or not isinstance(ttl, (int, float))
        or not 0.5 <= ttl <= config.max_presence_ttl_seconds
    ):
        raise BadRequest(
            f"ttl must be a number of seconds from 0.5 to {config.max_presence_ttl_seconds:g}",
            code="invalid_ttl",
        )
    session_id = None
    if kind == "kernel":
        session_id = state.get("session_id")
        if not is_valid_id(session_id):
            raise BadRequest("a kernel heartbeat needs state.session_id", code="invalid_session_id")
        session = opened.state.kernels.get(session_id)
        if grant.role not in ACTIONS["heartbeat"]:
            # An editor runs a kernel only in its own tab: it heartbeats that session alone.
            require(request, "push", notebook_id)
            if session is None or session.host != "tab" or session.actor != actor:
                raise Forbidden(
                    f"a {grant.role} token heartbeats only its own tab kernel's session,"
                    " once the log holds it",
                    code="role_forbids",
                )
        if session is not None and session.actor != actor:
            raise Forbidden(
                f"kernel session {session_id!r} belongs to another kernel: only its own "
                "credential heartbeats it",
                code="not_your_session",
            )
    entry = Entry(
        client_id=client_id,
        actor=actor,
        kind=kind,
        state=state,
        expires_at=time.monotonic() + float(ttl),
        ttl=float(ttl),
    )
    with _presence_owned(client_id):
        svc.presence.post(notebook_id, entry)
    if session_id is not None:
        svc.leases.heartbeat(notebook_id, session_id, actor)
    await svc.cluster.share_presence(notebook_id, entry, client_id)
    return JSONResponse({"ok": True})


def _presence_state(state: object, config: RelayConfig) -> dict[str, Any]:
    """A presence entry's state: a small, shallow JSON object."""
    if not isinstance(state, dict):
        raise BadRequest("state must be an object", code="invalid_state")
    try:
        fields.json_object(config.max_presence_state_bytes, max_depth=config.max_presence_depth)(
            state
        )
    except SchemaError as error:
        raise BadRequest(
            f"state {error.detail} (at most {config.max_presence_state_bytes} bytes,"
            f" {config.max_presence_depth} levels deep)",
            code="invalid_state",
        ) from None
    return state


@contextmanager
def _presence_owned(client_id: str) -> Iterator[None]:
    """Turn the board's refusals into 403 / 429."""
    try:
        yield
    except NotYours:
        raise Forbidden(
            f"presence entry {client_id!r} was posted by another credential: only it may change "
            "or remove it",
            code="not_your_presence",
        ) from None
    except TooManyEntries:
        raise TooManyRequests(
            "this credential already holds as many presence entries as it may here;"
            " remove one (gone) or let it expire",
            retry_after=5.0,
            code="too_many_presence_entries",
        ) from None


async def get_snapshot(request: Request) -> Response:
    svc = services(request)
    notebook_id = request.path_params["notebook"]
    require(request, "read", notebook_id)
    at: int | None = None
    if request.query_params.get("at", "") != "":
        at = int_param(request, "at", 0, 0, 2**53)
    form = request.query_params.get("form", "public")
    if form not in ("public", "internal"):
        raise BadRequest("form must be 'public' or 'internal'", code="invalid_form")
    body = await svc.notebooks.snapshot_json(notebook_id, at, internal=form == "internal")
    return Response(body, media_type="application/json")


def routes() -> list[Route]:
    # The router tries routes in order: the log's push and pull, asked most, come first.
    return [
        Route("/api/notebooks/{notebook}/events", push_events, methods=["POST"]),
        Route("/api/notebooks/{notebook}/events", pull_events, methods=["GET"]),
        Route("/api/health", health, methods=["GET"]),
        Route("/api/whoami", whoami, methods=["GET"]),
        Route("/api/notebooks", list_notebooks, methods=["GET"]),
        Route("/api/notebooks", create_notebook, methods=["POST"]),
        *ipynb_routes(),
        Route("/api/notebooks/{notebook}/stream", stream, methods=["GET"]),
        Route("/api/notebooks/{notebook}/presence", post_presence, methods=["POST"]),
        Route("/api/notebooks/{notebook}/snapshot", get_snapshot, methods=["GET"]),
        *token_routes(),
    ]
