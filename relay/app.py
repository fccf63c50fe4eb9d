"""The relay as an ASGI app: routes, middleware and lifespan in one place."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from .api import routes
from .auth import CheckCredentials
from .config import RelayConfig
from .errors import ApiError, store_unavailable
from .headers import SecurityHeaders, meta_policy
from .services import Services
from .static import static_routes
from .storage import StoreUnavailable
from .timeouts import BodyDeadline
from .wheels import pyodide_package_routes, wheel_routes

log = logging.getLogger("anode.relay")


def build_middleware_stack(config: RelayConfig) -> list[Middleware]:
    """Outermost first. CORS only for the origins named with ``--allow-origin``:
    tokens travel in a header, never a cookie, but under ``--no-auth`` a
    wildcard would let any web page drive the relay."""
    page_policy = meta_policy(config.static_root / "index.html", frame_ancestors="'none'")
    stack = [
        Middleware(SecurityHeaders, default_policy=page_policy),
        Middleware(BodyDeadline, seconds=config.request_body_seconds),
        Middleware(CheckCredentials),
    ]
    if config.allowed_origins:
        stack.insert(
            0,
            Middleware(
                CORSMiddleware,
                allow_origins=list(config.allowed_origins),
                allow_methods=["GET", "POST", "DELETE"],
                allow_headers=["Authorization", "Content-Type", "Last-Event-ID"],
                expose_headers=["Retry-After"],
                max_age=600,
            ),
        )
    return stack


#: Something that runs beside the relay for its whole life (e.g. the kernel
#: manager of ``anode serve``): entered after the services start, left before they stop.
Extension = Callable[[Services], AbstractAsyncContextManager[None]]


def create_app(
    config: RelayConfig, services: Services | None = None, extensions: Sequence[Extension] = ()
) -> Starlette:
    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        svc = services or Services.build(config)
        await svc.start()
        app.state.services = svc
        try:
            async with AsyncExitStack() as stack:
                for extension in extensions:
                    await stack.enter_async_context(extension(svc))
                yield
        finally:
            await svc.stop()

    return Starlette(
        routes=[
            *routes(),
            *wheel_routes(config.wheels_dir),
            *pyodide_package_routes(config.pyodide_packages),
            *static_routes(config.static_root),
        ],
        middleware=build_middleware_stack(config),
        exception_handlers={
            ApiError: _api_error,
            StoreUnavailable: _store_unavailable,
            HTTPException: _http_error,
            Exception: _server_error,
        },
        lifespan=lifespan,
    )


async def _api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return JSONResponse(exc.body(), status_code=exc.status, headers=exc.headers)


_HTTP_CODES = {404: "not_found", 405: "method_not_allowed"}


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    code = _HTTP_CODES.get(exc.status_code, "http_error")
    detail = {
        404: f"no route for {request.url.path}",
        405: f"{request.method} is not allowed here",
    }.get(exc.status_code, str(exc.detail))
    return JSONResponse(
        {"error": code, "detail": detail}, status_code=exc.status_code, headers=exc.headers
    )


async def _store_unavailable(request: Request, exc: Exception) -> Response:
    log.warning("the store is unavailable: %s", exc)
    return store_unavailable()


async def _server_error(request: Request, exc: Exception) -> Response:
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return JSONResponse(
        {"error": "internal", "detail": "the relay hit an internal error"}, status_code=500
    )
