"""What every kernel host is started with, and where the kernel's files are.

CPython only, like the rest of ``kernel_headless.launch``. The hosts
(``node.py``, ``browser.py``) build on this module and not on each other.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

from shared_schema.ids import SessionId, new_session_id

from .sandbox import DEFAULT_MEMORY_MB

#: ``kernel_headless/``: the kernel's Python (which runs in Pyodide) and its hosts' scripts.
PACKAGE_DIR = Path(__file__).resolve().parent.parent
PROJECT_ROOT = PACKAGE_DIR.parent
MICROPIP_DIR = PROJECT_ROOT / "vendor" / "micropip"
#: The Node host's exit code when the relay refuses its credential (sysexits' EX_NOPERM).
EXIT_UNAUTHORIZED = 77
#: Python packages the kernel's interpreter loads (less this CPython-only folder).
PYTHON_PACKAGES = ("shared_schema", "kernel_headless")
HOSTS = ("node", "browser")


class LaunchError(Exception):
    """A kernel cannot start here (no Node, no Pyodide, ...); the message says why."""


def default_cache_dir() -> Path:
    """``$ANODE_CACHE``, else ``$XDG_CACHE_HOME/anode``, else ``~/.cache/anode``."""
    if os.environ.get("ANODE_CACHE"):
        return Path(os.environ["ANODE_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "anode"


#: The micropip wheel ``make setup`` puts in vendor/micropip (the Makefile's MICROPIP).
MICROPIP_WHEEL = "micropip-0.11.1-py3-none-any.whl"
#: What the tab host reads to load the kernel (``client/tab_kernel.py``); kept current by
#: ``python -m kernel_headless.launch.spec`` (tests/test_tab_kernel.py checks it).
TAB_MANIFEST = PACKAGE_DIR / "files.json"


def tab_manifest() -> dict[str, object]:
    """The kernel's files as a tab loads them: its Python, and micropip for ``%pip``."""
    return {"python_files": python_files(), "micropip_wheel": f"vendor/micropip/{MICROPIP_WHEEL}"}


def python_files() -> list[str]:
    """The kernel's Python, as paths under the project (``pkg/mod.py``), sorted.

    The one list every host loads into Pyodide and the snapshot's name
    hashes: ``shared_schema`` and ``kernel_headless`` without this folder,
    which runs in CPython only.
    """
    launch = Path(__file__).resolve().parent
    files = []
    for package in PYTHON_PACKAGES:
        for path in (PROJECT_ROOT / package).rglob("*.py"):
            relative = path.relative_to(PROJECT_ROOT)
            hidden = any(part == "__pycache__" or part.startswith(".") for part in relative.parts)
            if not hidden and not path.is_relative_to(launch):
                files.append(relative.as_posix())
    return sorted(files)


@dataclass
class KernelSpec:
    relay: str
    notebook: str
    host: str = "node"
    session_id: SessionId = field(default_factory=new_session_id)
    lease_seconds: float = 5.0
    label: str = ""
    cache_dir: Path = field(default_factory=default_cache_dir)
    #: Package indexes for %pip, tried in order (the relay's wheelhouse first).
    index_urls: list[str] = field(default_factory=list)
    #: The folder (URL, ending in ``/``) laid out like a Pyodide distribution that packages
    #: load from by import; None: Pyodide's CDN.
    pyodide_packages: str | None = None
    output_cap_bytes: int = 5_000_000
    #: ``auto``, ``bwrap`` or ``off`` (``sandbox.MODES``): how a Node host is confined.
    sandbox: str = "auto"
    #: The kernel's memory cap in MiB (0: none).
    memory_mb: int = DEFAULT_MEMORY_MB
    #: The relay credential (``at1.…``), sent as ``Authorization: Bearer``; None without auth.
    token: str | None = field(default=None, repr=False)

    def host_config(self) -> dict:
        """What the host (``node.mjs`` or the browser page) is started with.

        Never the token: the config reaches the kernel's worker, where cells run.
        """
        config = asdict(self)
        for local in ("token", "sandbox", "memory_mb"):
            del config[local]
        config["relay"] = self.relay.rstrip("/")
        config["cache_dir"] = str(self.cache_dir)
        config["python_files"] = python_files()
        config["index_urls"] = self.index_urls or [
            f"{config['relay']}/wheels/simple/",
            "https://pypi.org/simple/",
        ]
        wheel = next(iter(sorted(MICROPIP_DIR.glob("micropip-*.whl"))), None)
        config["micropip_wheel"] = str(wheel) if wheel else None
        return config


if __name__ == "__main__":
    TAB_MANIFEST.write_text(json.dumps(tab_manifest(), indent=1) + "\n")
