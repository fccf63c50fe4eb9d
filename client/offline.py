"""Opening the page with no network: a service worker keeps the page's own files.

``client/js/sw.js`` is served at the site's root (``/sw.js``: a service worker
controls only its own folder and below). Once the page is up,
``keep_for_offline`` registers it and hands it every URL the page loaded
(the Performance API lists them: the page, its Python, PyScript, Pyodide
and its standard library, the editor bundles); the worker stores those of
its own site, never the relay's API. From then on a reload finds the page
even when neither the relay nor the static host answers, and the notebook
comes from IndexedDB as before. ``<body data-offline="ready">`` says the
files are kept (tests wait on it).

How the worker answers is in ``client/js/sw.js``: the network first (so a new
version is seen at once), the cache when the network fails.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re

import js
from pyodide.ffi import create_proxy

from .browser import js_object, site_root

log = logging.getLogger("anode.client.offline")

WORKER = "./sw.js"


async def tab_kernel_urls() -> list[str]:
    """What this tab's kernel loads (``client.tab_kernel``), so that a cell runs offline
    even in a tab whose kernel never started while online."""
    root = site_root()
    manifest = "kernel_headless/files.json"
    try:
        response = await js.fetch(root + manifest)
        files = json.loads(str(await response.text()))
        paths = [*files["python_files"], files["micropip_wheel"]]
    except Exception as error:  # a site without the kernel's files: nothing more to keep
        log.debug("no tab kernel files to keep: %s", error)
        return []
    # All of Pyodide the kernel's worker loads: a page that booted from its own snapshot
    # never fetched the lock file or the standard library itself.
    pyodide = [
        f"vendor/pyodide/{name}"
        for name in (
            "pyodide.mjs",
            "pyodide.asm.mjs",
            "pyodide.asm.wasm",
            "python_stdlib.zip",
            "pyodide-lock.json",
        )
    ]
    fixed = ["client/js/tab_frame.js", "kernel_headless/host/tab_worker.js", manifest]
    return [root + path for path in (*fixed, *pyodide, *paths)]


def loaded_urls() -> list[str]:
    """The page's own address (without its query), every resource it fetched, and the fonts it may
    need."""
    page = js.URL.new(js.location.href)
    page.search = ""
    page.hash = ""
    urls = [str(page.href)]
    for entry in js.performance.getEntriesByType("resource"):
        urls.append(str(entry.name))
    urls.extend(font_urls())
    return list(dict.fromkeys(urls))


def font_urls() -> list[str]:
    """The first (woff2) source of every @font-face in the page's style sheets: KaTeX's fonts.

    A browser fetches a font only when text first uses it, so without this a
    formula first opened offline would have no fonts.
    """
    urls: list[str] = []
    for sheet in js.document.styleSheets:
        try:
            rules = sheet.cssRules
        except Exception:  # another origin's sheet: not readable (and not ours to keep)
            continue
        for rule in rules:
            if rule.constructor.name != "CSSFontFaceRule":
                continue
            found = re.search(r'url\("?([^")]+)"?\)', str(rule.style.getPropertyValue("src")))
            if found:
                urls.append(str(js.URL.new(found.group(1), sheet.href or js.location.href).href))
    return urls


async def keep_for_offline() -> None:
    """Register the service worker and have it keep what the page loaded (best effort)."""
    container = getattr(js.navigator, "serviceWorker", None)
    if container is None or not js.isSecureContext:
        return  # plain http on another host than localhost: no service workers
    try:
        await container.register(WORKER)
        registration = await container.ready
        worker = registration.active
        channel = js.MessageChannel.new()
        answered: asyncio.Future = asyncio.get_event_loop().create_future()

        def reply(event) -> None:
            if not answered.done():
                answered.set_result(str(event.data))

        proxy = create_proxy(reply)
        channel.port1.onmessage = proxy
        urls = loaded_urls() + await tab_kernel_urls()
        message = js_object({"type": "keep", "urls": json.dumps(list(dict.fromkeys(urls)))})
        worker.postMessage(message, js.Array.of(channel.port2))
        try:
            kept = await asyncio.wait_for(answered, 120)
        finally:
            proxy.destroy()
    except Exception as error:  # blocked (a test's choice, a browser setting), or a failed fetch
        log.debug("offline copy unavailable: %s", error)
        return
    js.document.body.dataset.offline = "ready"
    log.debug("kept %s files for offline use", kept)
