"""The security headers every response carries, and the policy each kind of response gets.

The page's Content-Security-Policy is written once, in ``index.html``'s meta
tag (a static site has nothing else), and an output frame's in
``client/frame.html``'s; the relay reads them from there and sends them as
headers too, with ``frame-ancestors`` (which a meta tag cannot carry). API
answers are data, never documents: they get a policy that allows nothing.
"""

from __future__ import annotations

import re
from pathlib import Path

from starlette.types import ASGIApp, Message, Receive, Scope, Send

#: Sent with every response. COOP/COEP make the page cross-origin isolated,
#: which SharedArrayBuffer (interrupting an in-browser kernel) requires; no
#: ``Referer`` ever leaves a page, so not even a ``?token=`` address leaks.
SECURITY_HEADERS = [
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"cross-origin-embedder-policy", b"require-corp"),
    (b"cross-origin-resource-policy", b"same-origin"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
]

#: What ``/api/`` answers may do as documents: nothing.
API_POLICY = "default-src 'none'; frame-ancestors 'none'; sandbox"

_META_POLICY = re.compile(r'<meta http-equiv="Content-Security-Policy" content="([^"]+)">')


def meta_policy(page: Path, frame_ancestors: str) -> str | None:
    """The CSP in ``page``'s meta tag plus ``frame-ancestors`` (None without a page)."""
    try:
        found = _META_POLICY.search(page.read_text(encoding="utf-8"))
    except OSError:
        return None
    return f"{found.group(1)}; frame-ancestors {frame_ancestors}" if found else None


class SecurityHeaders:
    """Pure ASGI middleware: ``SECURITY_HEADERS`` on every response, and a CSP on every
    response that has none of its own (``API_POLICY`` under ``/api/``, ``default`` elsewhere)."""

    def __init__(self, app: ASGIApp, default_policy: str | None) -> None:
        self.app = app
        self.default_policy = (default_policy or API_POLICY).encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        policy = API_POLICY.encode() if scope["path"].startswith("/api/") else self.default_policy

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                if not any(name.lower() == b"content-security-policy" for name, _ in headers):
                    headers.append((b"content-security-policy", policy))
                message["headers"] = headers + SECURITY_HEADERS
            await send(message)

        await self.app(scope, receive, send_with_headers)
