"""Start a headless kernel from CPython: the Node host, or a browser page.

This module runs in CPython (the ``anode`` command), never in Pyodide. It
builds the host's configuration and starts the host as a child process.

The Node host runs under Node's permission model (see ``node_permissions``
and "The sandbox" in docs/kernels.md): it may read only Pyodide, its own
files and the snapshot cache, write only the snapshot cache, start its
worker thread and nothing else. It starts with an almost empty environment;
its two secrets (the relay credential and the key that signs cached
snapshots) go in through that environment, which the host's main thread
reads and clears before any cell can run.
"""

from __future__ import annotations

import json
import os
import re
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
NODE_MODULES = PROJECT_ROOT / "node_modules"
#: What Pyodide imports in Node: itself, and ``ws`` (its Node glue imports it).
NODE_PACKAGES = ("pyodide", "ws")

#: Environment variables the host's main thread reads, then deletes.
TOKEN_ENV = "ANODE_KERNEL_TOKEN"
SNAPSHOT_KEY_ENV = "ANODE_SNAPSHOT_KEY"
#: The only variables of our own environment a Node host inherits.
_INHERITED_ENV = ("PATH", "LANG", "LC_ALL", "LC_CTYPE", "TZ")
#: The Node host's exit code when the relay refuses its credential (sysexits' EX_NOPERM).
EXIT_UNAUTHORIZED = 77

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
    #: The relay credential (``at1.…``), sent as ``Authorization: Bearer``; None without auth.
    token: str | None = field(default=None, repr=False)

    def host_config(self) -> dict:
        """What the host (``node.mjs`` or the browser page) is started with.

        Never the token: the config reaches the kernel's worker, where cells run.
        """
        config = asdict(self)
        del config["token"]
        config["relay"] = self.relay.rstrip("/")
        config["cache_dir"] = str(self.cache_dir)
        config["python_dirs"] = [str(PROJECT_ROOT / name) for name in PYTHON_PACKAGES]
        config["index_urls"] = self.index_urls or [f"{config['relay']}/wheels/simple/", "https://pypi.org/simple/"]
        wheel = next(iter(sorted(MICROPIP_DIR.glob("micropip-*.whl"))), None)
        config["micropip_wheel"] = str(wheel) if wheel else None
        return config


def snapshot_dir(cache_dir: Path) -> Path:
    """Where the Node host keeps its Pyodide snapshots: the one place it may write."""
    return Path(cache_dir) / "node-snapshots"


def snapshot_key(cache_dir: Path) -> str:
    """The key that signs the Node host's snapshots, made (mode 0600) on first use.

    It lives beside ``snapshot_dir``, not in it, so a kernel (which may write
    there) can never read it: a snapshot that a cell wrote in place of the
    real one does not carry a valid signature, and no kernel loads it.
    """
    path = Path(cache_dir) / "node-snapshot.key"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        # Written whole under a private name, then linked into place: two
        # launchers starting at once agree on one key, and neither reads half of it.
        temporary = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as file:
            file.write(secrets.token_hex(32))
        try:
            os.link(temporary, path)
            _remove_unsigned_snapshots(Path(cache_dir))
        except FileExistsError:
            pass
        finally:
            temporary.unlink()
    key = path.read_text().strip()
    if len(key) < 32:
        raise LaunchError(f"{path} is too short to be a snapshot key; delete it to make a new one")
    return key


def _remove_unsigned_snapshots(cache_dir: Path) -> None:
    """Snapshots of the layout before signing (~30 MB each) would never be read again."""
    for stale in cache_dir.glob("kernel-pyodide-*.snapshot"):
        if _OLD_SNAPSHOT.fullmatch(stale.name):
            stale.unlink(missing_ok=True)


_OLD_SNAPSHOT = re.compile(r"kernel-pyodide-\d[\w.]*-[0-9a-f]{16}\.snapshot")


def node_permissions(spec: KernelSpec) -> list[str]:
    """Node's permission flags for a kernel: what its process may touch, and nothing more.

    Read: the host's scripts and the kernel's Python (``kernel_headless/``,
    ``shared_schema/``), Pyodide and ``ws`` in node_modules, micropip's wheel,
    the snapshot directory. Write: the snapshot directory. Worker threads: yes
    (Pyodide runs in one). Child processes, native addons, WASI, the
    inspector: no (the model forbids what is not allowed).
    """
    reads = [PACKAGE_DIR, *(PROJECT_ROOT / name for name in PYTHON_PACKAGES if name != "kernel_headless")]
    reads += [(NODE_MODULES / name).resolve() for name in NODE_PACKAGES]
    reads += [MICROPIP_DIR, snapshot_dir(spec.cache_dir)]
    flags = ["--experimental-permission", "--allow-worker"]
    flags += [f"--allow-fs-read={_directory(path)}" for path in dict.fromkeys(reads)]
    flags += [f"--allow-fs-write={_directory(snapshot_dir(spec.cache_dir))}"]
    # Every thread would print both, on every start.
    flags += ["--disable-warning=ExperimentalWarning", "--disable-warning=SecurityWarning"]
    return flags


#: V8 flags for a kernel. ``--no-wasm-async-compilation``: Pyodide's WebAssembly
#: is compiled in one synchronous step instead of on background threads. V8
#: otherwise finishes that background work on the worker's event loop right
#: after ``loadPyodide`` returns, which stalls the loop's next turn by 70-190
#: ms (measured here: 1 ms with the flag); the load itself is no slower, and
#: hot code is still tiered up to optimized code, so cells run as fast.
NODE_V8_FLAGS = ("--no-wasm-async-compilation",)


def _directory(path: Path) -> str:
    """A directory as a permission flag wants it: absolute, with a trailing slash."""
    return str(Path(path).resolve()).rstrip("/") + "/"


def node_command(spec: KernelSpec) -> list[str]:
    node = shutil.which("node")
    if node is None:
        raise LaunchError("Node.js is not installed (a kernel runs Pyodide under Node); run `make setup`")
    if not (NODE_MODULES / "pyodide").is_dir():
        raise LaunchError("Pyodide is missing from node_modules; run `make setup`")
    snapshots = snapshot_dir(spec.cache_dir)
    snapshots.mkdir(parents=True, exist_ok=True)
    config = spec.host_config()
    config["snapshot_dir"] = str(snapshots)
    return [node, *NODE_V8_FLAGS, *node_permissions(spec), str(NODE_HOST), json.dumps(config)]


def node_environment(spec: KernelSpec) -> dict[str, str]:
    """The Node host's whole environment: a few harmless variables and its two secrets.

    Nothing else of ours (API keys, cloud credentials, ``NODE_OPTIONS``)
    reaches a process that runs other people's code.
    """
    env = {name: os.environ[name] for name in _INHERITED_ENV if name in os.environ}
    env[SNAPSHOT_KEY_ENV] = snapshot_key(spec.cache_dir)
    if spec.token:
        env[TOKEN_ENV] = spec.token
    return env


def start_node_kernel(spec: KernelSpec, **popen: object) -> subprocess.Popen:
    """Start a Node kernel as a child process (its stdout says when it is ready)."""
    command = node_command(spec)
    env = node_environment(spec)
    return subprocess.Popen(command, cwd=PROJECT_ROOT, env=env, **popen)  # type: ignore[call-overload]


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
