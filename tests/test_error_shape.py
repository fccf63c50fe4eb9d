"""One error shape for every 4xx, and no 5xx for anything a client can send.

The test walks the app's own route table, so a new route is covered the day
it is added: every route and every method it answers gets malformed requests
(bad notebook ids, broken bodies, nonsense query parameters and headers),
plus methods it does not answer. A route this test does not know how to
reach fails the test, rather than slipping by unexercised.

It runs against a real uvicorn (``relay_thread``): streaming routes answer
on a real socket, and HEAD and odd bytes go through the server a browser
would meet.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterator
from typing import Any
from urllib.parse import unquote, urlsplit

import httpx
import pytest
from starlette.routing import BaseRoute, Match, Mount, Route

#: Over the 100,000 bytes of the deepest body below, so that one reaches the parser.
MAX_BODY = 200_000
#: What fills a ``{notebook}`` in a path: one that exists is added at run time.
NOTEBOOK_IDS = ["no-such-notebook", "%2e%2e", "a" * 65, "%00", "caf%C3%A9", "%ff"]
BODIES: list[bytes] = [
    b"",
    b"{",
    b"[]",
    b'"text"',
    b"null",
    b"{}",
    b'{"unexpected": 1}',
    b'{"events": "x", "title": 5, "client_id": ["x"]}',
    b'{"events": [1], "id": "../x", "kind": "robot"}',
    # Well-formed for one route each but for text that is not Unicode: a lone
    # surrogate, escaped or as raw bytes, must not reach storage or a stream.
    b'{"events": [{"id": "x", "name": "cellCreated", "v": 1,'
    b' "args": {"cell_id": "c", "source": "\\ud800"}}]}',
    b'{"events": [{"id": "y", "name": "cellCreated", "v": 1,'
    b' "args": {"cell_id": "c", "source": "\xed\xa0\x80"}}]}',
    b'{"title": "\\udc00"}',
    b'{"client_id": "t", "state": {"s": "\\ud800"}}',
    b'{"a": NaN}',
    b'{"a": 1e999}',
    b"\xff\xfe{}",
    b"[" * 100_000,
    b'{"a": "' + b"x" * MAX_BODY + b'"}',
]
QUERIES = [
    "after=-1",
    "after=x",
    "after=%C2%B2",
    "limit=0",
    "limit=99999999",
    "wait=abc",
    "wait=-1",
    "wait=nan",
    "wait=31536000",
    "at=-1",
    "at=x",
    "at=99999999",
    "after=%ff&limit=%00&wait=%ff&at=%ff",
]
HEADERS: list[dict[str, Any]] = [
    {"last-event-id": "abc"},
    {"last-event-id": b"\xb2"},
    {"last-event-id": "9" * 40},
    {"content-type": "text/plain", "accept": "text/event-stream"},
]
#: Methods no route of ours answers at the same path: each must be a JSON 405.
OTHER_METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"]


def _fill(path: str, route: BaseRoute, notebook: str) -> Iterator[str]:
    """Every concrete path for a route template, or a failure naming what is unknown."""
    params = set(getattr(route, "param_convertors", {}))
    if isinstance(route, Mount):
        params.discard("path")
        base = path.rstrip("/")
        for tail in [
            "no-such-file.py",
            "%2e%2e/%2e%2e/pyproject.toml",
            "..%2F..%2Fpyproject.toml",
            "%00",
            "a" * 300,
        ]:
            yield f"{base}/{tail}"
        return
    unknown = params - {"notebook", "token"}
    if unknown:
        pytest.fail(f"test_error_shape cannot fill {sorted(unknown)} in {path}: teach it")
    if "token" in params:
        for token_id in ["tk-0000000000000000", *NOTEBOOK_IDS]:
            yield path.replace("{token}", token_id)
        return
    if "notebook" not in params:
        yield path
        return
    for notebook_id in [notebook, *NOTEBOOK_IDS]:
        yield path.replace("{notebook}", notebook_id)


def _methods(route: BaseRoute) -> set[str]:
    if isinstance(route, Route):
        return set(route.methods or ())
    if isinstance(route, Mount):
        return {"GET", "HEAD"}  # what StaticFiles serves
    pytest.fail(f"test_error_shape does not know how to exercise {route!r}: teach it")


def _dispatched_to(routes: list[BaseRoute], method: str, url: str) -> BaseRoute | None:
    """The route Starlette picks for this request: the first full match."""
    scope = {"type": "http", "method": method, "path": unquote(urlsplit(url).path), "root_path": ""}
    for route in routes:
        match, _ = route.matches(scope)
        if match is Match.FULL:
            return route
    return None


def _check(response: httpx.Response, method: str, url: str, problems: list[str]) -> None:
    where = f"{method} {url[:120]} -> {response.status_code}"
    if response.status_code >= 500:
        problems.append(f"{where}: a 5xx")
        return
    if response.status_code < 400:
        return
    if response.headers.get("content-type") != "application/json":
        problems.append(f"{where}: content-type {response.headers.get('content-type')!r}")
        return
    if method == "HEAD":
        return  # no body to read; the type says it would have been JSON
    try:
        body = json.loads(response.read())
    except ValueError:
        problems.append(f"{where}: not JSON: {response.read()[:100]!r}")
        return
    if (
        not isinstance(body, dict)
        or not isinstance(body.get("error"), str)
        or not body["error"]
        or not isinstance(body.get("detail"), str)
        or not body["detail"]
    ):
        problems.append(f"{where}: not {{error, detail}}: {body!r:.200}")


def _send(http: httpx.Client, method: str, url: str, problems: list[str], **kwargs: Any) -> int:
    """Send one request, reading the body only of errors (a 200 may be a stream)."""
    try:
        with http.stream(method, url, **kwargs) as response:
            _check(response, method, url, problems)
            return response.status_code
    except httpx.HTTPError as error:
        problems.append(f"{method} {url[:120]}: {type(error).__name__}: {error}")
        return 0


@pytest.mark.slow
def test_every_route_answers_malformed_requests_with_the_json_error_shape(relay_thread) -> None:
    relay = relay_thread(max_body_bytes=MAX_BODY)
    routes: list[BaseRoute] = relay.server.config.app.routes
    assert any(isinstance(route, Route) and route.path.startswith("/api/") for route in routes)

    problems: list[str] = []
    exercised: dict[tuple[int, str], int] = defaultdict(int)
    statuses: set[int] = set()
    # A fresh connection per request: relay_thread's socket is made without
    # IPPROTO_TCP, so asyncio leaves Nagle on, and a kept-alive connection
    # waits out the client's delayed ACK (about 40 ms) on every response.
    no_keepalive = httpx.Limits(max_keepalive_connections=0)
    with httpx.Client(
        base_url=relay.url, timeout=10, limits=no_keepalive, headers=relay.headers
    ) as http:
        notebook = http.post("/api/notebooks", json={"title": "target"}).json()["id"]
        for route in routes:
            path = getattr(route, "path", "")
            for url in _fill(path, route, notebook):
                for method in sorted(_methods(route)):
                    if method in ("GET", "HEAD", "DELETE"):
                        requests = [{"url": f"{url}?{query}"} for query in QUERIES]
                        requests += [{"url": url, "headers": headers} for headers in HEADERS]
                    else:
                        requests = [{"url": url, "content": body} for body in BODIES]
                        requests.append(
                            {"url": url, "content": iter([BODIES[-1][:2000], BODIES[-1][2000:]])}
                        )
                    for request in requests:
                        status = _send(http, method, problems=problems, **request)
                        if isinstance(route, Mount) and "pyproject" in url and status != 404:
                            problems.append(
                                f"{method} {url}: {status}, a path out of the mount must be 404"
                            )
                        statuses.add(status)
                        dispatched = _dispatched_to(routes, method, request["url"])
                        if dispatched is not None:
                            exercised[(id(dispatched), method)] += 1
                for method in sorted(set(OTHER_METHODS) - _allowed_at(routes, url)):
                    status = _send(http, method, url, problems, content=b"{}")
                    statuses.add(status)
                    if status != 405:
                        problems.append(f"{method} {url}: {status}, expected 405")
        for url in ["/api/no-such-route", "/api/notebooks/x/y/z", "/no/such/page.js"]:
            if _send(http, "GET", url, problems) != 404:
                problems.append(f"GET {url}: expected 404")

    missing = [
        f"{method} {getattr(route, 'path', route)!s}"
        for route in routes
        for method in sorted(_methods(route))
        if exercised[(id(route), method)] == 0
    ]
    assert not missing, f"routes never reached: {missing}"
    assert not problems, "\n".join(problems[:50])
    # The walk reached handlers, not just the router.
    assert {400, 404, 405, 413} <= statuses, statuses


def _allowed_at(routes: list[BaseRoute], url: str) -> set[str]:
    """Methods some route answers at ``url`` (a Mount matches any method; its app decides)."""
    allowed: set[str] = set()
    for method in OTHER_METHODS:
        route = _dispatched_to(routes, method, url)
        if route is not None and method in _methods(route):
            allowed.add(method)
    return allowed
