"""``.ipynb`` over HTTP: ``POST /api/notebooks/import`` and ``GET /api/notebooks/{nb}/ipynb``.

The reference ``nbformat`` package reads what comes in (upgrading v3 and
older 4.x files, validating each against its own version's schema) and
validates what goes out against nbformat 4.5's. Between the two sits
``shared_schema.ipynb``, the mapping the browser uses too.
"""

from __future__ import annotations

import json
import warnings
from typing import Any
from urllib.parse import quote

import nbformat
from nbformat import reader as nbformat_reader
from nbformat.v4.rwbase import strip_transient
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from shared_schema import SchemaError
from shared_schema.ipynb import ImportPlan, filename, read_notebook, write_notebook
from shared_schema.limits import MAX_TITLE

from .auth import require
from .errors import BadRequest
from .params import int_param, json_body
from .services import Services

MEDIA_TYPE = "application/x-ipynb+json"


async def import_notebook(request: Request) -> Response:
    """Create a notebook from an ``.ipynb`` body, whole or not at all."""
    grant = require(request, "create")
    svc: Services = request.app.state.services
    title = request.query_params.get("title")
    if title is not None and len(title) > MAX_TITLE:
        raise BadRequest(f"title is over {MAX_TITLE} characters", code="invalid_title")
    document = await json_body(request, svc.config.max_body_bytes)
    plan = await run_in_threadpool(_plan, document, title)
    opened = await svc.notebooks.create(plan.title, grant.actor, events=plan.events())
    return JSONResponse(
        {"id": opened.id, "title": plan.title, "cells": len(plan.cells)}, status_code=201
    )


async def export_notebook(request: Request) -> Response:
    """The notebook (as it was at ``?at=N``) as an nbformat 4.5 file."""
    svc: Services = request.app.state.services
    notebook_id = request.path_params["notebook"]
    require(request, "read", notebook_id)
    at: int | None = None
    if request.query_params.get("at", "") != "":
        at = int_param(request, "at", 0, 0, 2**53)
    state = await svc.notebooks.state_at(notebook_id, at)
    document = write_notebook(state)  # before any await: the live state moves on
    body = await run_in_threadpool(_encode_valid, document)
    return Response(
        body,
        media_type=MEDIA_TYPE,
        headers={"Content-Disposition": _attachment(filename(state.title or notebook_id))},
    )


def upgrade(document: dict[str, Any]) -> dict[str, Any]:
    """A v3 or v4 document read and upgraded by nbformat to 4.5; ``SchemaError`` naming
    the first thing nbformat finds wrong (with its cell)."""
    try:
        major, minor = nbformat_reader.get_version(document)
    except (AttributeError, KeyError, TypeError, ValueError):
        raise SchemaError(
            "invalid_notebook", "not a notebook: it has no nbformat version"
        ) from None
    if major not in (3, 4):
        raise SchemaError(
            "invalid_notebook",
            f"nbformat {major} files are not read here: only versions 3 and 4",
            "nbformat",
        )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # nbformat warns of what normalize repairs
            # Against its own version's schema first, so the first problem is named where it
            # is; repeated cell ids are repaired (with a warning), as Jupyter does on open.
            nbformat.validate(nbformat.from_dict(document), version=major, version_minor=minor)
            node = nbformat.versions[major].to_notebook_json(document, minor=minor)
            node = nbformat.convert(node, 4)
            if node.nbformat_minor < nbformat.v4.nbformat_minor:
                node = nbformat.v4.upgrade(node)
            node = strip_transient(node)  # the upgrades' orig_nbformat marks, as a reread drops
    except nbformat.ValidationError as error:
        raise _schema_error(error) from None
    except (AttributeError, KeyError) as error:
        raise SchemaError(
            "invalid_notebook", f"not a readable notebook: it has no {error}"
        ) from None
    except (TypeError, ValueError) as error:
        raise SchemaError("invalid_notebook", f"not a readable notebook: {error}") from None
    return node


def _plan(document: dict[str, Any], title: str | None) -> ImportPlan:
    try:
        return read_notebook(upgrade(document), title=title)
    except SchemaError as error:
        raise BadRequest(_where(error.path) + error.detail, code=error.code) from None


def _encode_valid(document: dict[str, Any]) -> str:
    """The export, checked against nbformat 4.5's schema and encoded as Jupyter writes it."""
    nbformat.validate(document, version=4, version_minor=5)
    return json.dumps(document, ensure_ascii=False, indent=1, sort_keys=True) + "\n"


def _schema_error(error: Exception) -> SchemaError:
    path = "".join(
        f"[{part}]" if isinstance(part, int) else f".{part}"
        for part in getattr(error, "absolute_path", ())
    ).lstrip(".")
    message = getattr(error, "message", None) or str(error).splitlines()[0]
    return SchemaError("invalid_notebook", message[:500], path)


def _where(path: str) -> str:
    """``cells[3].outputs[0].data`` -> ``cell 3 (cells[3].outputs[0].data): ``."""
    if path.startswith("cells["):
        return f"cell {path[6 : path.index(']')]} ({path}): "
    return f"{path}: " if path else ""


def _attachment(name: str) -> str:
    """``Content-Disposition`` for a download: an ASCII name, and the real one (RFC 5987)."""
    ascii_name = name.encode("ascii", "replace").decode().replace('"', "_").replace("?", "_")
    return f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(name, safe='')}"


def ipynb_routes() -> list[Route]:
    return [
        Route("/api/notebooks/import", import_notebook, methods=["POST"]),
        Route("/api/notebooks/{notebook}/ipynb", export_notebook, methods=["GET"]),
    ]
