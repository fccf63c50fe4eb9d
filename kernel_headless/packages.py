"""``%pip install`` inside Pyodide: micropip, pointed at the relay's wheelhouse.

micropip is not part of Pyodide's core; the host tells us where its wheel is
(a local path in Node, a URL in the browser) and it is loaded on first use.
Pure-Python wheels install offline from the wheelhouse the relay serves
(``anode serve --wheels DIR``); more indexes can be configured.
"""

from __future__ import annotations

import sys


class UsageError(Exception):
    pass


class PackageInstaller:
    def __init__(self, micropip_wheel: str | None, index_urls: list[str]) -> None:
        self.micropip_wheel = micropip_wheel
        self.index_urls = index_urls

    async def __call__(self, args: list[str]) -> None:
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
        print(f"Successfully installed {' '.join(names)}", file=sys.stdout)

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


def _index_url(url: str) -> str:
    """An index URL as micropip wants it: it appends ``/{name}/`` itself.

    ``…/simple/`` (how indexes are usually written, and how the launcher
    passes the relay's wheelhouse) would become ``…/simple//humanize/``,
    which no index serves. A ``{package_name}`` template is left alone.
    """
    return url if "{package_name}" in url else url.rstrip("/")
