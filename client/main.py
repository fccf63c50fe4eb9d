"""The page's entry point: ``client/boot.js`` starts Pyodide and calls ``boot``.

It only hands the page's root element and the two npm bundles over to
``client.app``. A failure to start is shown on the page, not only in the
console, so a person sees why the notebook did not appear.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

import js

from client.app import main

logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(name)s: %(message)s")


async def boot(cm: Any, md: Any) -> None:
    """Run the client: ``cm`` is vendor/bundles/editor.js, ``md`` vendor/bundles/markdown.js."""
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
