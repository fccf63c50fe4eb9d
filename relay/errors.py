"""Errors as data on the wire: every 4xx is ``{"error": code, "detail": ...}``.

Handlers raise these small classes; one exception handler in ``app`` turns
them into JSON. Nothing a client sends may produce a 5xx.
"""

from __future__ import annotations

from typing import Any

from starlette.responses import JSONResponse


class ApiError(Exception):
    status = 400
    code = "bad_request"
    headers: dict[str, str] = {}

    def __init__(
        self, detail: str, *, code: str | None = None, extra: dict[str, Any] | None = None
    ):
        super().__init__(detail)
        self.detail = detail
        if code is not None:
            self.code = code
        self.extra = extra or {}

    def body(self) -> dict[str, Any]:
        return {"error": self.code, "detail": self.detail, **self.extra}


class BadRequest(ApiError):
    status = 400
    code = "bad_request"


class NotFound(ApiError):
    status = 404
    code = "not_found"


class Conflict(ApiError):
    status = 409
    code = "conflict"


class PayloadTooLarge(ApiError):
    status = 413
    code = "payload_too_large"


class TooManyRequests(ApiError):
    """429 with ``Retry-After``: a token went over one of its rate limits."""

    status = 429
    code = "rate_limited"

    def __init__(self, detail: str, retry_after: float, *, code: str | None = None) -> None:
        super().__init__(detail, code=code, extra={"retry_after": round(retry_after, 3)})
        self.headers = {"Retry-After": str(max(1, int(retry_after + 0.999)))}


class Unavailable(ApiError):
    status = 503
    code = "unavailable"


def store_unavailable() -> JSONResponse:
    """503: the relay's store (a PostgreSQL server) cannot be reached right now."""
    return JSONResponse(
        {"error": "store_unavailable", "detail": "the relay cannot reach its store; try again"},
        status_code=503,
        headers={"Retry-After": "1"},
    )
