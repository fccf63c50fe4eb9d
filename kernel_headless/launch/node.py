"""The Node host of a kernel, started from CPython.

This module runs in CPython (the ``anode`` command), never in Pyodide. It
builds the host's command line and starts the host as a child process.

The Node host runs under Node's permission model (see ``node_permissions``
and "The sandbox" in docs/kernels.md) and, where the machine allows, inside
bubblewrap (``sandbox.py``): it may read only Pyodide, its own files and the
snapshot cache, write nothing, start its worker thread and nothing else, and
see no other process. It starts with an almost empty environment; its
relay credential goes in through that environment, which the host's main
thread reads and clears before any cell can run.

The Pyodide memory snapshot it starts from is made by a process of its own
(``host/snapshot_maker.mjs``) that loads the kernel's code and no cell:
kernels only read the cache, so nothing that ran after a cell ever reaches
another kernel. A kernel ends its session cleanly when its stdin closes
(``NodeKernelProcess`` turns SIGTERM and SIGINT into that), since no signal
crosses into its PID namespace.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from .sandbox import SandboxError, sandbox, wrap
from .spec import MICROPIP_DIR, PACKAGE_DIR, PROJECT_ROOT, KernelSpec, LaunchError, python_files

NODE_HOST = PACKAGE_DIR / "host" / "node.mjs"
SNAPSHOT_MAKER = PACKAGE_DIR / "host" / "snapshot_maker.mjs"
NODE_MODULES = PROJECT_ROOT / "node_modules"
#: What Pyodide imports in Node: itself, and ``ws`` (its Node glue imports it).
NODE_PACKAGES = ("pyodide", "ws")

#: The environment variable the host's main thread reads, then deletes.
TOKEN_ENV = "ANODE_KERNEL_TOKEN"
#: The only variables of our own environment a Node host inherits.
_INHERITED_ENV = ("PATH", "LANG", "LC_ALL", "LC_CTYPE", "TZ")
#: A snapshot maker that has not finished after this long is taken for dead.
_MAKER_STALE_SECONDS = 120.0
#: The Node host's snapshots as the first layout named them, in the cache's root.
_OLD_NODE_SNAPSHOT = re.compile(r"kernel-pyodide-\d[\w.]*-[0-9a-f]{16}\.snapshot")


def snapshot_dir(cache_dir: Path) -> Path:
    """Where Node hosts find their Pyodide snapshots: written only by the snapshot maker."""
    return Path(cache_dir) / "kernel-snapshots"


def snapshot_file(cache_dir: Path) -> Path:
    """The snapshot for this Pyodide and this kernel code: its name hashes both."""
    version = json.loads((NODE_MODULES / "pyodide" / "package.json").read_text())["version"]
    digest = hashlib.sha256(version.encode())
    for relative in python_files():
        digest.update(relative.encode() + b"\0" + (PROJECT_ROOT / relative).read_bytes() + b"\0")
    return snapshot_dir(cache_dir) / f"kernel-pyodide-{version}-{digest.hexdigest()[:16]}.snapshot"


def ensure_snapshot(spec: KernelSpec, *, wait: bool = False) -> Path:
    """The snapshot file for ``spec``'s kernels, starting the maker when there is none.

    Without ``wait`` it returns at once: a kernel started meanwhile starts
    cold, and later ones from the snapshot. One maker at a time per cache:
    a lock file beside the snapshot holds its pid, and a lock whose maker is
    gone (its launcher stopped, and took it along) is taken over.
    """
    target = snapshot_file(spec.cache_dir)
    if target.exists():
        return target
    _forget_unsafe_caches(Path(spec.cache_dir))
    target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    lock = target.with_suffix(".making")
    try:
        os.close(os.open(lock, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except FileExistsError:
        if wait:
            _wait_for(lambda: target.exists() or _maker_gone(lock), 120.0)
        if not target.exists() and _maker_gone(lock):
            lock.unlink(missing_ok=True)
            return ensure_snapshot(spec, wait=wait)
        return target
    try:
        maker = subprocess.Popen(
            _maker_command(spec, target), cwd=PROJECT_ROOT, env=_base_environment(),
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip
    except BaseException:
        lock.unlink(missing_ok=True)
        raise
    lock.write_text(str(maker.pid))
    finisher = threading.Thread(target=_finish_snapshot, args=(maker, target, lock), daemon=True)
    finisher.start()
    if wait:
        finisher.join()
    return target


def _maker_gone(lock: Path) -> bool:
    """Whether the maker that holds ``lock`` is no longer running (or the lock is gone)."""
    try:
        pid = lock.read_text().strip()
        age = time.time() - lock.stat().st_mtime
    except FileNotFoundError:
        return True
    if not pid.isdigit():  # written a moment after the lock is made
        return age > _MAKER_STALE_SECONDS
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # someone else's process: alive
        pass
    return False


def _finish_snapshot(maker: subprocess.Popen, target: Path, lock: Path) -> None:
    try:
        maker.wait()
    finally:
        lock.unlink(missing_ok=True)
    if maker.returncode == 0:
        _prune_snapshots(target)


def _prune_snapshots(current: Path, keep: int = 3) -> None:
    """Every change to the kernel's Python makes a new ~30 MB snapshot; keep the newest few."""
    older = sorted(
        (path for path in current.parent.glob("kernel-pyodide-*.snapshot") if path != current),
        key=lambda path: path.stat().st_mtime,
        reverse=True,
    )
    for stale in older[keep - 1 :]:
        stale.unlink(missing_ok=True)


def _forget_unsafe_caches(cache_dir: Path) -> None:
    """Delete the snapshot cache of older versions, which kernels could write to."""
    shutil.rmtree(cache_dir / "node-snapshots", ignore_errors=True)
    (cache_dir / "node-snapshot.key").unlink(missing_ok=True)
    for stale in cache_dir.glob("kernel-pyodide-*.snapshot"):  # the layout before that
        if _OLD_NODE_SNAPSHOT.fullmatch(stale.name):  # not the browser host's (-browser-)
            stale.unlink(missing_ok=True)


def _wait_for(done: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not done() and time.monotonic() < deadline:
        time.sleep(0.1)


def node_permissions(spec: KernelSpec, *, writes: tuple[Path, ...] = ()) -> list[str]:
    """Node's permission flags for a kernel: what its process may touch, and nothing more.

    Read: the host's scripts and the kernel's Python (``kernel_headless/``,
    ``shared_schema/``), Pyodide and ``ws`` in node_modules, micropip's wheel,
    the snapshot directory. Write: nothing (``writes`` is for the snapshot
    maker). Worker threads: yes (Pyodide runs in one). Child processes,
    native addons, WASI, the inspector: no (the model forbids what is not allowed).
    """
    flags = ["--experimental-permission", "--allow-worker"]
    reads = [*_readable(spec), *writes]
    flags += [f"--allow-fs-read={name}" for name in _directories(reads)]
    flags += [f"--allow-fs-write={name}" for name in _directories(writes)]
    # Every thread would print both, on every start.
    flags += ["--disable-warning=ExperimentalWarning", "--disable-warning=SecurityWarning"]
    return flags


def _readable(spec: KernelSpec) -> list[Path]:
    reads = [
        PACKAGE_DIR,
        PROJECT_ROOT / "shared_schema",
    ]
    reads += [NODE_MODULES / name for name in NODE_PACKAGES]
    reads += [MICROPIP_DIR, snapshot_dir(spec.cache_dir)]
    return list(dict.fromkeys(path for path in reads if path.exists()))


#: V8 flags for a kernel. ``--no-wasm-async-compilation``: Pyodide's WebAssembly
#: is compiled in one synchronous step instead of on background threads. V8
#: otherwise finishes that background work on the worker's event loop right
#: after ``loadPyodide`` returns, which stalls the loop's next turn by 70-190
#: ms (measured here: 1 ms with the flag); the load itself is no slower, and
#: hot code is still tiered up to optimized code, so cells run as fast.
NODE_V8_FLAGS = ("--no-wasm-async-compilation",)


def _directories(paths: Iterable[Path]) -> list[str]:
    """Directories as permission flags want them: absolute, with a trailing slash, under
    their real path and the name they are reached by (a symlinked node_modules)."""
    names: dict[str, None] = {}
    for path in paths:
        for form in (Path(path).resolve(), Path(path).absolute()):
            names[str(form).rstrip("/") + "/"] = None
    return list(names)


def _node() -> str:
    node = shutil.which("node")
    if node is None:
        raise LaunchError(
            "Node.js is not installed (a kernel runs Pyodide under Node); run `make setup`"
        )
    if not (NODE_MODULES / "pyodide").is_dir():
        raise LaunchError("Pyodide is missing from node_modules; run `make setup`")
    return node


def _confined(spec: KernelSpec, command: list[str], *, writes: tuple[Path, ...] = ()) -> list[str]:
    try:
        box = sandbox(spec.sandbox)
    except SandboxError as error:
        raise LaunchError(str(error)) from None
    return wrap(
        command,
        box,
        reads=_readable(spec),
        writes=writes,
        chdir=PACKAGE_DIR,
        memory_mb=spec.memory_mb,
    )


def node_command(spec: KernelSpec, snapshot: Path, scratch: Path) -> list[str]:
    """The confined Node host for ``spec``: it reads ``snapshot`` (if it is there yet) and
    writes only to ``scratch``, its own folder for the packages it downloads."""
    node = _node()
    config = spec.host_config()
    config["snapshot_file"] = str(snapshot)
    config["package_cache_dir"] = str(scratch)
    config["shutdown_on_eof"] = True
    writes = (scratch,)
    flags = node_permissions(spec, writes=writes)
    command = [node, *NODE_V8_FLAGS, *flags, str(NODE_HOST), json.dumps(config)]
    return _confined(spec, command, writes=writes)


def _maker_command(spec: KernelSpec, target: Path) -> list[str]:
    """The snapshot maker: the kernel's code and Pyodide, no cell, no relay, no token."""
    node = _node()
    writes = (target.parent,)
    config = {"python_files": python_files(), "snapshot_file": str(target)}
    command = [
        node,
        *NODE_V8_FLAGS,
        *node_permissions(spec, writes=writes),
        str(SNAPSHOT_MAKER),
        json.dumps(config),
    ]
    return _confined(spec, command, writes=writes)


def _base_environment() -> dict[str, str]:
    return {name: os.environ[name] for name in _INHERITED_ENV if name in os.environ}


def node_environment(spec: KernelSpec) -> dict[str, str]:
    """The Node host's whole environment: a few harmless variables and its credential.

    Nothing else of ours (API keys, cloud credentials, ``NODE_OPTIONS``)
    reaches a process that runs other people's code.
    """
    env = _base_environment()
    if spec.token:
        env[TOKEN_ENV] = spec.token
    return env


class NodeKernelProcess(subprocess.Popen):
    """A Node host's process. SIGTERM and SIGINT close its stdin, which the host takes
    as "end your session and exit": inside its PID namespace no signal reaches it.

    Its scratch folder (the packages it downloaded) goes when it has exited.
    """

    scratch: Path | None = None

    def wait(self, timeout: float | None = None) -> int:
        code = super().wait(timeout)
        self._remove_scratch()
        return code

    def poll(self) -> int | None:
        code = super().poll()
        if code is not None:
            self._remove_scratch()
        return code

    def _remove_scratch(self) -> None:
        if self.scratch is not None:
            shutil.rmtree(self.scratch, ignore_errors=True)
            self.scratch = None

    def send_signal(self, sig: int) -> None:
        if sig in (signal.SIGTERM, signal.SIGINT) and self.stdin is not None:
            if not self.stdin.closed:
                self.stdin.close()
            return
        super().send_signal(sig)

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)


def start_node_kernel(spec: KernelSpec, **popen: object) -> NodeKernelProcess:
    """Start a Node kernel as a child process (its stdout says when it is ready).

    The snapshot maker starts beside it when the cache has no snapshot yet.
    """
    _node()  # no Node, no Pyodide: say so before anything starts
    scratch = Path(tempfile.mkdtemp(prefix="anode-kernel-packages-"))  # 0700, its own
    try:
        command = node_command(spec, ensure_snapshot(spec), scratch)
        env = node_environment(spec)
        process = NodeKernelProcess(  # type: ignore[call-overload]
            command, cwd=PROJECT_ROOT, env=env, stdin=subprocess.PIPE, start_new_session=True,
            **popen,
        )  # fmt: skip
    except BaseException:
        shutil.rmtree(scratch, ignore_errors=True)
        raise
    process.scratch = scratch
    return process
