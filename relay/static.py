"""The browser client as static files: the page, its Python, vendored npm assets.

URL layout (the same in ``anode build-site`` output):

    /                       index.html
    /sw.js                  client/js/sw.js, the service worker (at the root: it controls the site)
    /config.json            {"relay": ""}: the relay is this origin (build-site writes its own)
    /client/python.json     the client's Python in one answer: {"files": [{"target", "text"}]}
    /client/...             the client's Python
    /shared_schema/...      the shared schema, loaded by the client in Pyodide
    /vendor/pyodide/...     node_modules/pyodide
    /vendor/pyscript/...    node_modules/@pyscript/core/dist (PyScript, which starts the client)
    /vendor/katex/...       node_modules/katex/dist (KaTeX's CSS and fonts; code: markdown bundle)
    /vendor/micropip/...    the micropip wheel ``make setup`` downloads (kernels' %pip)
    /vendor/bundles/...     the client's npm libraries (CodeMirror, marked, DOMPurify, KaTeX),
                            bundled by ``make setup``
    /kernel_headless/...    the kernel's Python and host files (the browser kernel page)
    /snapshot/<key>.gz      the page's Pyodide memory snapshot, made by ``make setup``
                            (``anode/page_snapshot.py``): a first visit starts from it
    /snapshot/index.json    {"snapshots": [names]}: which ones there are
"""

from __future__ import annotations

import hashlib
import json
import mimetypes
import os
from pathlib import Path
from typing import Any

from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from .errors import NotFound
from .headers import meta_policy

# The platform's MIME table may lack these; browsers refuse wasm or modules
# served as anything else.
mimetypes.add_type("application/wasm", ".wasm")
mimetypes.add_type("text/javascript", ".mjs")
mimetypes.add_type("text/javascript", ".js")
mimetypes.add_type("text/x-python", ".py")

VENDORED = {
    "pyodide": Path("node_modules/pyodide"),
    "pyscript": Path("node_modules/@pyscript/core/dist"),
    "katex": Path("node_modules/katex/dist"),
    "micropip": Path("vendor/micropip"),
    "bundles": Path("vendor/bundles"),
}


#: What the page, the kernels and PyScript load from a vendored package. Its
#: other files (Pyodide's console pages, which load scripts from public
#: CDNs; source maps; type declarations; READMEs) are not served.
VENDORED_SUFFIXES = frozenset(
    {".js", ".mjs", ".wasm", ".zip", ".json", ".whl", ".css", ".woff2", ".woff", ".ttf"}
)


#: Where ``make setup`` leaves the page's snapshot, under the project root.
PAGE_SNAPSHOTS = Path("vendor/snapshot")


class _Snapshots(StaticFiles):
    """The page's snapshots: gzipped bytes the page unpacks itself (not a Content-Encoding),
    named by the hash of what they hold, so never stale under their name."""

    def lookup_path(self, path: str) -> tuple[str, os.stat_result | None]:
        if not path.endswith(".gz") or "/" in path.strip("/"):
            return "", None
        return super().lookup_path(path)

    def file_response(self, *args: Any, **kwargs: Any) -> Response:
        response = super().file_response(*args, **kwargs)
        response.headers["content-type"] = "application/octet-stream"
        response.headers["cache-control"] = "public, max-age=31536000, immutable"
        return response


class _VendoredFiles(StaticFiles):
    """A vendored package's folder, serving only ``VENDORED_SUFFIXES``."""

    def lookup_path(self, path: str) -> tuple[str, os.stat_result | None]:
        if Path(path).suffix not in VENDORED_SUFFIXES:
            return "", None  # StaticFiles answers 404
        return super().lookup_path(path)


def static_routes(root: Path) -> list[BaseRoute]:
    routes: list[BaseRoute] = [
        Route("/", _index_page(root), methods=["GET", "HEAD"]),
        Route("/sw.js", _service_worker(root), methods=["GET", "HEAD"]),
        Route("/config.json", _site_config, methods=["GET", "HEAD"]),
        Route("/client/frame.html", _output_frame(root), methods=["GET", "HEAD"]),
        Route("/client/python.json", _python_bundle(root), methods=["GET", "HEAD"]),
    ]
    for folder in ("client", "shared_schema", "kernel_headless"):
        if (root / folder).is_dir():
            routes.append(Mount(f"/{folder}", StaticFiles(directory=root / folder), name=folder))
    for name, relative in VENDORED.items():
        if (root / relative).is_dir():
            routes.append(
                Mount(f"/vendor/{name}", _VendoredFiles(directory=root / relative), name=name)
            )
    routes.append(Route("/snapshot/index.json", _snapshot_index(root), methods=["GET", "HEAD"]))
    if (root / PAGE_SNAPSHOTS).is_dir():
        routes.append(Mount("/snapshot", _Snapshots(directory=root / PAGE_SNAPSHOTS)))
    return routes


def _snapshot_index(root: Path):
    """The page snapshots this relay ships (none before ``make setup`` made one)."""
    folder = root / PAGE_SNAPSHOTS

    async def snapshot_index(request) -> Response:
        return JSONResponse(page_snapshots(folder), headers={"cache-control": "no-cache"})

    return snapshot_index


def page_snapshots(folder: Path) -> dict[str, list[str]]:
    """``snapshot/index.json``: the page snapshots in ``folder`` (the page asks for one only
    once this lists it, so that a missing one is no 404 in the console)."""
    names = sorted(path.name for path in folder.glob("*.gz")) if folder.is_dir() else []
    return {"snapshots": names}


def _index_page(root: Path):
    page = root / "index.html"

    async def index(request) -> Response:
        if not page.is_file():
            raise NotFound("this relay serves no client (index.html is missing)", code="no_client")
        # Its address may carry ?token=: no cache keeps a copy under it.
        return FileResponse(
            page, media_type="text/html; charset=utf-8", headers={"cache-control": "no-store"}
        )

    return index


def _output_frame(root: Path):
    """``client/frame.html`` with its own policy as a header too, framed only by the page."""
    page = root / "client" / "frame.html"
    policy = meta_policy(page, frame_ancestors="'self'")

    async def frame(request) -> Response:
        if policy is None:
            raise NotFound(
                "this relay serves no client (client/frame.html is missing)", code="no_client"
            )
        return FileResponse(
            page, media_type="text/html; charset=utf-8", headers={"content-security-policy": policy}
        )

    return frame


def _service_worker(root: Path):
    script = root / "client" / "js" / "sw.js"

    async def service_worker(request) -> Response:
        if not script.is_file():
            raise NotFound(
                "this relay serves no client (client/js/sw.js is missing)", code="no_client"
            )
        # Never cached by HTTP: a new worker must be seen on the next visit.
        return FileResponse(
            script, media_type="text/javascript", headers={"cache-control": "no-cache"}
        )

    return service_worker


def python_bundle(root: Path) -> bytes:
    """``client/python.json``: every file ``client/pyscript.json``'s ``anode_files`` lists,
    as ``{"files": [{"target", "text"}]}``. The page loads its Python in this one request
    (``client/js/startup.js``), not one per file: each request of a start passes through
    the service worker, and forty of them cost a cached start about 0.1 s."""
    client = root / "client"
    config = json.loads((client / "pyscript.json").read_text(encoding="utf-8"))
    files = []
    for url, target in config["anode_files"].items():
        path = (client / url).resolve()
        if not path.is_relative_to(root.resolve()):
            raise ValueError(f"client/pyscript.json lists {url!r}, outside the site")
        files.append({"target": target, "text": path.read_text(encoding="utf-8")})
    return json.dumps({"files": files}, ensure_ascii=False).encode()


def _python_bundle(root: Path):
    async def bundle(request) -> Response:
        if not (root / "client" / "pyscript.json").is_file():
            raise NotFound("this relay serves no client (client/pyscript.json is missing)",
                           code="no_client")  # fmt: skip
        body = python_bundle(root)  # read again each time: the relay serves the working tree
        etag = f'"{hashlib.sha256(body).hexdigest()[:32]}"'
        headers = {"cache-control": "no-cache", "etag": etag}
        if etag in request.headers.get("if-none-match", ""):
            return Response(status_code=304, headers=headers)
        return Response(body, media_type="application/json", headers=headers)

    return bundle


async def _site_config(request) -> Response:
    """What ``client/relay.py`` reads to find its relay: here, the page's own origin."""
    return JSONResponse({"relay": ""}, headers={"cache-control": "no-cache"})
