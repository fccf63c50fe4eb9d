"""Packages for kernels: a wheelhouse served as a package index (PEP 503 simple API),
for offline ``%pip``, and a folder laid out like a Pyodide distribution.

``anode serve --wheels DIR`` serves every ``*.whl`` in DIR:

    /wheels/simple/                 the project list
    /wheels/simple/{project}/       links to that project's wheels, with sha256
    /wheels/files/{filename}        the wheels

micropip (the kernels' installer) reads this like any index, so pure-Python
packages install with no internet. The folder is read on every request: drop
a wheel in and it is there. ``anode build-site --wheels DIR`` writes the same
layout as static files (``write_static_index``), for the tab kernel.
"""

from __future__ import annotations

import hashlib
import html
import re
import shutil
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
        return HTMLResponse(projects_page(list(self._wheels())))

    async def project(self, request: Request) -> Response:
        name = normalize(request.path_params["project"])
        wheels = self._wheels().get(name)
        if not wheels:
            raise NotFound(f"no wheels for {name!r} in this wheelhouse", code="unknown_project")
        return HTMLResponse(project_page([(path.name, self._sha256(path)) for path in wheels]))

    def write_static_index(self, out: Path) -> int:
        """Write the index and the wheels into ``out`` as files (the routes' layout); returns
        how many wheels."""
        wheels = self._wheels()
        (out / "simple").mkdir(parents=True, exist_ok=True)
        (out / "files").mkdir(exist_ok=True)
        (out / "simple" / "index.html").write_text(projects_page(list(wheels)))
        for name, paths in wheels.items():
            (out / "simple" / name).mkdir(exist_ok=True)
            page = project_page([(path.name, self._sha256(path)) for path in paths])
            (out / "simple" / name / "index.html").write_text(page)
            for path in paths:
                shutil.copyfile(path, out / "files" / path.name)
        return sum(len(paths) for paths in wheels.values())

    async def file(self, request: Request) -> Response:
        filename = request.path_params["filename"]
        path = self.folder / filename
        if not _WHEEL.fullmatch(filename) or not path.is_file():
            raise NotFound(f"no wheel {filename[:100]!r} in this wheelhouse", code="unknown_wheel")
        return FileResponse(path, media_type="application/octet-stream")


def projects_page(names: list[str]) -> str:
    """The PEP 503 project list: a link per (normalized) project name."""
    links = "".join(f'<a href="{html.escape(name)}/">{html.escape(name)}</a>\n' for name in names)
    return f"<!DOCTYPE html>\n<html><body>\n{links}</body></html>\n"


def project_page(wheels: list[tuple[str, str]]) -> str:
    """A project's PEP 503 page: a link per wheel file name, with its sha256."""
    links = "".join(
        f'<a href="../../files/{html.escape(filename)}#sha256={sha256}">'
        f"{html.escape(filename)}</a>\n"
        for filename, sha256 in wheels
    )
    return f"<!DOCTYPE html>\n<html><body>\n{links}</body></html>\n"
