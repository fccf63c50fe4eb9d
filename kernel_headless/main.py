"""The entry point a host's worker calls once Pyodide is up.

    kernel = kernel_headless.main.start(config_json, post)   # announces the session
    worker.onmessage = (message) => kernel.receive(message)
    exit_code = await kernel.serve()

``start`` already pushes the session's announcement (no event loop needed),
so the relay sees the kernel while the host finishes setting up.

Only JSON strings cross the JavaScript boundary, both ways.
"""

from __future__ import annotations

import json

from shared_schema import NotebookState

from .bridge import HostBridge, Post
from .packages import PackageInstaller
from .session import Kernel, KernelConfig


class Started:
    """What the host holds: ``receive`` for its messages, ``serve`` to run."""

    def __init__(self, kernel: Kernel) -> None:
        self.kernel = kernel
        self.receive = kernel.bridge.receive

    async def serve(self) -> int:
        return await self.kernel.serve()


def start(config_json: str, post: Post) -> Started:
    data = json.loads(config_json)
    installer = PackageInstaller(data.get("micropip_wheel"), list(data.get("index_urls", [])))
    kernel = Kernel(HostBridge(post), KernelConfig.from_json(config_json), installer=installer)
    if data.get("state") is not None:  # a tab host: the page's state, its log follows from there
        kernel.state = NotebookState.load(data["state"])
    kernel.announce()
    return Started(kernel)
