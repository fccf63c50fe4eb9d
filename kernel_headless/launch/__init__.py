"""Starting kernels from CPython: the ``anode`` command's side of ``kernel_headless``.

Everything else in ``kernel_headless`` runs in Pyodide; this folder never
does, and it is not loaded into a kernel (``spec.python_files``).

- ``spec.py``: what a host is started with (``KernelSpec``), and the kernel's files;
- ``node.py``: the Node host, its memory snapshot and its confinement flags;
- ``sandbox.py``: bubblewrap and the memory cap around a Node host;
- ``browser.py``: the headless Chromium host (Playwright).
"""

from __future__ import annotations

import signal
import subprocess
import sys
from types import FrameType

from .node import start_node_kernel
from .spec import EXIT_UNAUTHORIZED, KernelSpec, LaunchError

__all__ = ["EXIT_UNAUTHORIZED", "KernelSpec", "LaunchError", "run_kernel"]


def run_kernel(spec: KernelSpec) -> int:
    """Run one kernel in the foreground until it ends (Ctrl+C ends it cleanly)."""
    if spec.host == "browser":
        from .browser import run_browser_kernel

        return run_browser_kernel(spec)
    process = start_node_kernel(spec)

    def end_session(signum: int, frame: FrameType | None) -> None:
        process.send_signal(signal.SIGTERM)  # the host ends its session, then exits

    previous = signal.signal(signal.SIGTERM, end_session)
    try:
        return process.wait()
    except KeyboardInterrupt:
        process.send_signal(signal.SIGINT)
        try:
            return process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            return 130
    finally:
        signal.signal(signal.SIGTERM, previous)
        sys.stdout.flush()
