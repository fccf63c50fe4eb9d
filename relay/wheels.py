"""Packages for kernels: a wheelhouse served as a package index (PEP 503 simple API),
for offline ``%pip``, and a folder laid out like a Pyodide distribution.

``anode serve --wheels DIR`` serves every ``*.whl`` in DIR:

    /wheels/simple/                 the project list
    /wheels/simple/{project}/       links to that project's wheels, with sha256
    /wheels/files/{filename}        the wheels

micropip (the kernels' installer) reads this like any index, so pure-Python
packages install with no internet. The folder is read on every request: drop
a wheel in and it is there.
"""

from __future__ import annotations

import hashlib
import html
import re
from pathlib import Path

from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from .config import PYODIDE_PACKAGES_PATH
from .errors import NotFound

_WHEEL = re.compile(
    r"(?P<name>[A-Za-z0-9_.]+)-(?P<version>[A-Za-z0-9_.!+]+)(-[A-Za-z0-9_.]+){2,3}\.whl"
)


def normalize(name: str) -> str:
    """PEP 503 name normalization."""
    return re.sub(r"[-_.]+", "-", name).lower()


def pyodide_package_routes(source: str | None) -> list[BaseRoute]:
    """A local folder laid out like a Pyodide distribution, at ``/pyodide-packages/``
    (a URL source is the kernels' to reach: nothing to serve)."""
    if source is None or "://" in source:
        return []
    return [Mount(PYODIDE_PACKAGES_PATH.rstrip("/"), StaticFiles(directory=source))]


def wheel_routes(folder: Path | None) -> list[BaseRoute]:
    if folder is None:
        return []
    wheelhouse = Wheelhouse(folder)
    return [
        Route("/wheels/simple/", wheelhouse.projects, methods=["GET", "HEAD"]),
        Route("/wheels/simple/{project}/", wheelhouse.project, methods=["GET", "HEAD"]),
        Route("/wheels/files/{filename}", wheelhouse.file, methods=["GET", "HEAD"]),
    ]


class Wheelhouse:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._hashes: dict[tuple[str, float, int], str] = {}

    def _wheels(self) -> dict[str, list[Path]]:
        found: dict[str, list[Path]] = {}
        for path in sorted(self.folder.glob("*.whl")):
            match = _WHEEL.fullmatch(path.name)
            if match:
                found.setdefault(normalize(match["name"]), []).append(path)
        return found

    def _sha256(self, path: Path) -> str:
        stat = path.stat()
        key = (path.name, stat.st_mtime, stat.st_size)
        if key not in self._hashes:
            self._hashes[key] = hashlib.sha256(path.read_bytes()).hexdigest()
        return self._hashes[key]

    async def projects(self, request: Request) -> Response:
        links = "".join(f'<a href="{name}/">{name}</a>\n' for name in self._wheels())
        return HTMLResponse(f"<!DOCTYPE html>\n<html><body>\n{links}</body></html>\n")

    async def project(self, request: Request) -> Response:
        name = normalize(request.path_params["project"])
        wheels = self._wheels().get(name)
        if not wheels:
            raise NotFound(f"no wheels for {name!r} in this wheelhouse", code="unknown_project")
        links = "".join(
            f'<a href="../../files/{html.escape(path.name)}#sha256={self._sha256(path)}">'
            f"{html.escape(path.name)}</a>\n"
            for path in wheels
        )
        return HTMLResponse(f"<!DOCTYPE html>\n<html><body>\n{links}</body></html>\n")

    async def file(self, request: Request) -> Response:
        filename = request.path_params["filename"]
        path = self.folder / filename
        if not _WHEEL.fullmatch(filename) or not path.is_file():
            raise NotFound(f"no wheel {filename[:100]!r} in this wheelhouse", code="unknown_wheel")
        return FileResponse(path, media_type="application/octet-stream")
