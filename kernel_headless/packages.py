"""Packages inside Pyodide: ``%pip install``, a notebook's requirements, and imports.

- ``%pip install NAME`` runs micropip, pointed at the relay's wheelhouse
  (``anode serve --wheels DIR``: pure-Python wheels, and since PEP 783
  Pyodide wheels from PyPI tagged ``pyemscripten_*``) and any index named.
  It answers with what it installed, pinned (``name==version``), which the
  kernel records in the notebook as its requirements.
- A notebook's requirements are installed before the first cell a kernel runs.
- A cell that imports a package of the Pyodide distribution (numpy, pandas,
  matplotlib…) has it loaded first (``pyodide.loadPackagesFromImports``), from
  the source the host gave Pyodide: its package CDN by default, or a folder
  laid out like a Pyodide distribution (``anode serve --pyodide-packages``).

micropip is not part of Pyodide's core; the host says where its wheel is
(a local path in Node, a URL in the browser) and it is loaded on first use.
"""

from __future__ import annotations

import importlib.util
import re
import sys
from typing import Any

from shared_schema.requirements import canonical

#: A requirement's project name, as written before any version or extra.
_PROJECT = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?")
#: Where a ModuleNotFoundError points a person.
INSTALL_HINT = (
    "Anode: `%pip install {name}` installs it (from the relay's wheelhouse or an index), "
    "and the notebook keeps it as a requirement."
)


class UsageError(Exception):
    pass


class PackageInstaller:
    def __init__(self, micropip_wheel: str | None, index_urls: list[str]) -> None:
        self.micropip_wheel = micropip_wheel
        self.index_urls = index_urls

    async def __call__(self, args: list[str]) -> list[str]:
        """``%pip ARGS``; returns what was installed, pinned, in the order named."""
        if not args or args[0] != "install":
            raise UsageError("only `%pip install NAME ...` is supported")
        names: list[str] = []
        index_urls = list(self.index_urls)
        options = iter(args[1:])
        for arg in options:
            if arg in ("-q", "--quiet", "-U", "--upgrade", "--no-deps"):
                continue
            if arg in ("-i", "--index-url"):
                index_urls = [next(options, "")]
            elif arg == "--extra-index-url":
                index_urls.append(next(options, ""))
            elif arg.startswith("-"):
                raise UsageError(f"%pip install does not support {arg}")
            else:
                names.append(arg)
        if not names:
            raise UsageError("%pip install needs at least one package name")
        micropip = await self._micropip()
        await micropip.install(names, index_urls=[_index_url(url) for url in index_urls] or None)
        pinned = _pinned(micropip, names)
        print(f"Successfully installed {' '.join(pinned or names)}", file=sys.stdout)
        return pinned

    async def install_requirements(self, requirements: list[str]) -> list[str]:
        """Install those of a notebook's requirements not installed yet; returns them."""
        if not requirements:
            return []
        micropip = await self._micropip()
        have = {canonical(name) for name in micropip.list()}
        missing = [item for item in requirements if canonical(_project(item)) not in have]
        if missing:
            urls = [_index_url(url) for url in self.index_urls] or None
            await micropip.install(missing, index_urls=urls)
        return missing

    async def _micropip(self):  # noqa: ANN202 - a module
        try:
            import micropip  # type: ignore[import-not-found]
        except ImportError:
            if not self.micropip_wheel:
                raise UsageError(
                    "%pip is not available: no micropip wheel was given to this kernel"
                ) from None
            from pyodide_js import loadPackage  # type: ignore[import-not-found]

            await loadPackage(self.micropip_wheel)
            import micropip  # type: ignore[import-not-found]
        return micropip


async def load_imported_packages(source: str) -> None:
    """Load the Pyodide-distribution packages ``source`` imports that cannot be imported yet,
    saying on stdout what was loaded (and on stderr what could not be).

    Only modules missing now are asked for: one already installed (by
    ``%pip``), or provided by the kernel itself (its ``IPython`` stand-in), is
    never replaced by the distribution's.
    """
    if "import" not in source:
        return
    try:
        from pyodide.code import find_imports  # type: ignore[import-not-found]
        from pyodide.ffi import create_proxy, to_js  # type: ignore[import-not-found]
        from pyodide_js import loadPackagesFromImports  # type: ignore[import-not-found]
    except ImportError:  # not in Pyodide (tests in CPython): nothing to load
        return
    missing = [name for name in find_imports(source) if not _importable(name)]
    if not missing:
        return
    said: list[tuple[str, str]] = []
    on_message = create_proxy(lambda text: said.append(("message", str(text))))
    on_error = create_proxy(lambda text: said.append(("error", str(text))))
    try:
        options: Any = to_js(
            {"messageCallback": on_message, "errorCallback": on_error},
            dict_converter=_js_object,
        )
        await loadPackagesFromImports("\n".join(f"import {name}" for name in missing), options)
    finally:
        on_message.destroy()
        on_error.destroy()
    for kind, text in said:
        if kind == "error":
            print(text, file=sys.stderr)
        elif text.startswith("Loaded "):
            print(text, file=sys.stdout)


def _importable(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def note_missing_module(error: BaseException) -> None:
    """Add how to install it to a ``ModuleNotFoundError`` a cell raised."""
    if isinstance(error, ModuleNotFoundError) and error.name:
        error.add_note(INSTALL_HINT.format(name=error.name.partition(".")[0]))


def _js_object(entries: Any) -> Any:
    from js import Object  # type: ignore[import-not-found]

    return Object.fromEntries(entries)


def _pinned(micropip: Any, names: list[str]) -> list[str]:
    """``name==version`` for each requirement named, as micropip now has it installed."""
    installed = {canonical(name): (name, info.version) for name, info in micropip.list().items()}
    pinned = []
    for requirement in names:
        found = installed.get(canonical(_project(requirement)))
        if found is not None:
            pinned.append(f"{found[0]}=={found[1]}")
    return pinned


def _project(requirement: str) -> str:
    match = _PROJECT.match(requirement)
    return match.group(0) if match else requirement


def _index_url(url: str) -> str:
    """An index URL as micropip wants it: it appends ``/{name}/`` itself.

    ``…/simple/`` (how indexes are usually written, and how the launcher
    passes the relay's wheelhouse) would become ``…/simple//humanize/``,
    which no index serves. A ``{package_name}`` template is left alone.
    """
    return url if "{package_name}" in url else url.rstrip("/")
