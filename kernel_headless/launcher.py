"""Start a headless kernel from CPython: the Node host, or a browser page.

This module runs in CPython (the ``anode`` command), never in Pyodide. It
builds the host's configuration and starts the host as a child process.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
PROJECT_ROOT = PACKAGE_DIR.parent
NODE_HOST = PACKAGE_DIR / "host" / "node.mjs"
MICROPIP_DIR = PROJECT_ROOT / "vendor" / "micropip"

#: Python packages the kernel's interpreter loads.
PYTHON_PACKAGES = ("shared_schema", "kernel_headless")

HOSTS = ("node", "browser")


class LaunchError(Exception):
    """A kernel cannot start here (no Node, no Pyodide, ...); the message says why."""


def default_cache_dir() -> Path:
    """``$ANODE_CACHE``, else ``$XDG_CACHE_HOME/anode``, else ``~/.cache/anode``."""
    if os.environ.get("ANODE_CACHE"):
        return Path(os.environ["ANODE_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "anode"


def new_session_id() -> str:
    return "ks-" + secrets.token_urlsafe(12)


@dataclass
class KernelSpec:
    relay: str
    notebook: str
    host: str = "node"
    session_id: str = field(default_factory=new_session_id)
    lease_seconds: float = 5.0
    label: str = ""
    cache_dir: Path = field(default_factory=default_cache_dir)
    #: Package indexes for %pip, tried in order (the relay's wheelhouse first).
    index_urls: list[str] = field(default_factory=list)
    output_cap_bytes: int = 5_000_000

    def host_config(self) -> dict:
        """What the host (``node.mjs`` or the browser page) is started with."""
        config = asdict(self)
        config["relay"] = self.relay.rstrip("/")
        config["cache_dir"] = str(self.cache_dir)
        config["python_dirs"] = [str(PROJECT_ROOT / name) for name in PYTHON_PACKAGES]
        config["index_urls"] = self.index_urls or [f"{config['relay']}/wheels/simple/", "https://pypi.org/simple/"]
        wheel = next(iter(sorted(MICROPIP_DIR.glob("micropip-*.whl"))), None)
        config["micropip_wheel"] = str(wheel) if wheel else None
        return config


def node_command(spec: KernelSpec) -> list[str]:
    node = shutil.which("node")
    if node is None:
        raise LaunchError("Node.js is not installed (a kernel runs Pyodide under Node); run `make setup`")
    if not (PROJECT_ROOT / "node_modules" / "pyodide").is_dir():
        raise LaunchError("Pyodide is missing from node_modules; run `make setup`")
    return [node, str(NODE_HOST), json.dumps(spec.host_config())]


def start_node_kernel(spec: KernelSpec, **popen: object) -> subprocess.Popen:
    """Start a Node kernel as a child process (its stdout says when it is ready)."""
    return subprocess.Popen(node_command(spec), cwd=PROJECT_ROOT, **popen)  # type: ignore[call-overload]


def run_kernel(spec: KernelSpec) -> int:
    """Run one kernel in the foreground until it ends (Ctrl+C ends it cleanly)."""
    if spec.host == "browser":
        from .browser import run_browser_kernel

        return run_browser_kernel(spec)
    process = start_node_kernel(spec)
    try:
        return process.wait()
    except KeyboardInterrupt:
        # From a terminal the host got the same SIGINT (one process group); sent
        # to us alone, it did not: pass it on, so the host ends its session.
        process.send_signal(signal.SIGINT)
        try:
            return process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            return 130
    finally:
        sys.stdout.flush()
