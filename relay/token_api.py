"""Sharing over HTTP: an owner (or admin) issues, lists and revokes a notebook's tokens."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from .auth import Forbidden, require
from .errors import BadRequest, NotFound
from .params import json_body, only_fields
from .tokens import MAX_LABEL, NOTEBOOK_ROLES, TokenStore

#: The longest a token made over HTTP may live (a year); ``anode token create`` has no cap.
MAX_EXPIRES_IN = 366 * 86400


def _store(request: Request) -> TokenStore:
    tokens = request.app.state.services.tokens
    if tokens is None:
        raise BadRequest(
            "this relay runs without auth (--no-auth): there are no tokens", code="auth_disabled"
        )
    return tokens


async def create_token(request: Request) -> Response:
    notebook_id = request.path_params["notebook"]
    require(request, "share", notebook_id)
    tokens = _store(request)
    svc = request.app.state.services
    await svc.notebooks.open(notebook_id)
    body = await json_body(request, 4096)
    only_fields(body, {"role", "expires_in", "label"})
    role = body.get("role")
    if role not in NOTEBOOK_ROLES:
        raise BadRequest(f"role must be one of {', '.join(NOTEBOOK_ROLES)}", code="invalid_role")
    expires_in = body.get("expires_in")
    if expires_in is not None and (
        isinstance(expires_in, bool)
        or not isinstance(expires_in, int)
        or not 1 <= expires_in <= MAX_EXPIRES_IN
    ):
        raise BadRequest(
            f"expires_in must be null or whole seconds from 1 to {MAX_EXPIRES_IN}",
            code="invalid_expires_in",
        )
    label = body.get("label", "")
    if not isinstance(label, str) or len(label) > MAX_LABEL:
        raise BadRequest(
            f"label must be a string of at most {MAX_LABEL} characters", code="invalid_label"
        )
    record, token = await tokens.issue(notebook_id, role, expires_in, label)
    return JSONResponse({**record.to_json(), "token": token}, status_code=201)


async def list_tokens(request: Request) -> Response:
    notebook_id = request.path_params["notebook"]
    require(request, "share", notebook_id)
    records = await _store(request).list(notebook_id)
    return JSONResponse({"tokens": [record.to_json() for record in records]})


async def revoke_token(request: Request) -> Response:
    grant = require(request, "share", None)
    tokens = _store(request)
    record = await tokens.get(request.path_params["token"])
    if record is None or not grant.covers(record.notebook):
        # Another notebook's token looks exactly like no token: ids are not an oracle.
        raise NotFound("no such token", code="unknown_token")
    if record.role == "admin" and grant.role != "admin":
        raise Forbidden("only an admin may revoke an admin token", code="role_forbids")
    revoked = await tokens.revoke(record.id)
    assert revoked is not None
    return JSONResponse(revoked.to_json())


def token_routes() -> list[Route]:
    return [
        Route("/api/notebooks/{notebook}/tokens", create_token, methods=["POST"]),
        Route("/api/notebooks/{notebook}/tokens", list_tokens, methods=["GET"]),
        Route("/api/tokens/{token}", revoke_token, methods=["DELETE"]),
    ]
