"""Reading untrusted request input: JSON bodies and query parameters.

Every failure is a ``BadRequest`` (or 413) naming the parameter, never a 500.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from starlette.requests import Request

from .errors import BadRequest, PayloadTooLarge

#: A query integer: ASCII digits only (``int()`` would also take ``1_000``,
#: `` 7 `` and non-ASCII digits).
_INTEGER = re.compile(r"-?[0-9]+")

#: A ``\uD800``-``\uDFFF`` escape: only a body holding one can decode to a
#: lone surrogate, which no UTF-8 store or stream can carry.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


async def json_body(request: Request, max_bytes: int) -> dict[str, Any]:
    """The request's JSON object body, read up to ``max_bytes``.

    The Content-Type is not checked: the body must parse as JSON whatever it
    says, which keeps ``curl -d`` working and costs nothing in safety (no
    credential rides on cookies).
    """
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_bytes:
        raise PayloadTooLarge(f"the body is {declared} bytes; the limit is {max_bytes}")
    chunks = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_bytes:
            raise PayloadTooLarge(f"the body is over the limit of {max_bytes} bytes")
        chunks.append(chunk)
    try:
        text = b"".join(chunks).decode("utf-8-sig")  # JSON on the wire is UTF-8 (RFC 8259)
    except UnicodeDecodeError as error:
        raise BadRequest(f"the body is not UTF-8: {error}", code="invalid_json") from None
    try:
        body = json.loads(text, parse_constant=_reject_constant, parse_float=_finite_float)
    except (ValueError, RecursionError) as error:
        raise BadRequest(
            f"the body is not valid JSON: {str(error)[:200]}", code="invalid_json"
        ) from None
    if not isinstance(body, dict):
        raise BadRequest("the body must be a JSON object", code="invalid_body")
    if _SURROGATE_ESCAPE.search(text):
        _reject_lone_surrogates(body)
    return body


def only_fields(body: dict[str, Any], allowed: frozenset[str] | set[str]) -> None:
    """400 ``unexpected_field`` naming the first field of ``body`` not in ``allowed``."""
    unknown = body.keys() - allowed
    if unknown:
        raise BadRequest(f"unknown field {sorted(unknown)[0][:64]!r}", code="unexpected_field")


def int_param(request: Request, name: str, default: int, minimum: int, maximum: int) -> int:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw) if _INTEGER.fullmatch(raw) else None
    except ValueError:  # more digits than the interpreter converts
        value = None
    if value is None:
        raise BadRequest(
            f"{name} must be an integer, not {raw[:40]!r}",
            code="invalid_param",
            extra={"param": name},
        )
    if not minimum <= value <= maximum:
        raise BadRequest(
            f"{name} must be between {minimum} and {maximum}, not {raw[:40]}",
            code="invalid_param",
            extra={"param": name},
        )
    return value


def float_param(
    request: Request, name: str, default: float, minimum: float, maximum: float
) -> float:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise BadRequest(
            f"{name} must be a number, not {raw[:40]!r}",
            code="invalid_param",
            extra={"param": name},
        ) from None
    if not math.isfinite(value) or not minimum <= value <= maximum:
        raise BadRequest(
            f"{name} must be between {minimum:g} and {maximum:g}, not {raw[:40]}",
            code="invalid_param",
            extra={"param": name},
        )
    return value


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _finite_float(literal: str) -> float:
    value = float(literal)
    if not math.isfinite(value):
        raise ValueError(f"{literal[:40]} is out of range for a number")
    return value


def _reject_lone_surrogates(body: dict[str, Any]) -> None:
    """A ``\\uD800`` without its pair decodes to a str that cannot be encoded as UTF-8."""
    try:
        json.dumps(body, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        raise BadRequest(
            "the body holds a lone surrogate escape (\\ud800-\\udfff), which is not text",
            code="invalid_json",
        ) from None
