"""The page's entry point: PyScript runs this file (see index.html).

It only finds the page's root element and the two npm bundles (CodeMirror;
marked, DOMPurify and KaTeX), then hands over to ``client.app``. A failure
to start is shown on the page, not only in the console, so a person sees why
the notebook did not appear.
"""

import asyncio
import logging
import sys

import js
from pyscript.js_modules import editor as cm  # vendor/bundles/editor.js
from pyscript.js_modules import markdown as md  # vendor/bundles/markdown.js

from client.app import main

logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(name)s: %(message)s")


async def _boot() -> None:
    root = js.document.getElementById("app")
    try:
        await main(root, cm, md)
    except Exception as error:
        js.document.body.dataset.anode = "failed"
        message = js.document.createElement("pre")
        message.className = "boot-error"
        message.textContent = f"Anode could not start: {type(error).__name__}: {error}"
        root.replaceChildren(message)
        raise


_boot_task = asyncio.ensure_future(_boot())
