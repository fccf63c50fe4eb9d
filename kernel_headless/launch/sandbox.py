"""Confining a server-side kernel: bubblewrap around the Node host, and a memory cap.

CPython only (the ``anode`` command). Node's permission model
(``node.node_permissions``) keeps a cell away from the host's files,
child processes and native code, but it does not cover signals:
``process.kill(process.ppid, "SIGKILL")`` from a cell would end the relay.
So a Node host also runs inside bubblewrap (``bwrap``, Debian's
``bubblewrap``), in namespaces of its own:

- **PID**: it sees and can signal only itself; the relay and every other
  process of the machine do not exist for it;
- **mount**: an empty root with read-only binds of the system's libraries,
  Node, name resolution and certificates, and exactly the paths the
  permission flags allow (its own code, Pyodide, the snapshot cache read-only):
  no home directory, no data directory, no other ``/etc``;
- **user** (no capabilities), **IPC**, **UTS**, and a session of its own
  (no terminal to type into); the network is shared: the relay and package
  indexes are reached over it.

A kernel's memory is capped with ``RLIMIT_DATA`` (``prlimit``): past the cap
an allocation fails, which Python in the kernel sees as ``MemoryError``; a
kernel whose own machinery runs out dies, and the relay's lease turns the
cell it ran into an error ("kernel lost") while a new kernel takes over.

Where bubblewrap is missing or the machine forbids namespaces, ``auto``
runs the kernel under Node's permission model alone and says so once;
``bwrap`` refuses to start a kernel; ``off`` never tries. SECURITY.md says
what each stops.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache
from pathlib import Path

log = logging.getLogger("anode.kernels")

MODES = ("auto", "bwrap", "off")
DEFAULT_MEMORY_MB = 2048

#: The system's code a Node host needs, bound read-only where it is (symlinks kept as symlinks).
_SYSTEM = ("/usr", "/bin", "/sbin", "/lib", "/lib64", "/lib32", "/libx32")
#: Of /etc, only what resolving names, TLS and time zones read.
_ETC = (
    "/etc/resolv.conf", "/etc/hosts", "/etc/nsswitch.conf", "/etc/host.conf", "/etc/gai.conf",
    "/etc/ssl", "/etc/ca-certificates", "/etc/pki", "/etc/localtime", "/etc/ld.so.cache",
)  # fmt: skip
#: The user a kernel runs as inside its namespace (nobody).
_UID = 65534


class SandboxError(Exception):
    """A kernel cannot be confined as asked (``--kernel-sandbox bwrap`` without bubblewrap)."""


@dataclass(frozen=True, slots=True)
class Sandbox:
    """How kernels are confined on this machine: ``bwrap`` is None when they are not."""

    bwrap: str | None
    #: Why not, when ``bwrap`` is None.
    reason: str = ""


def sandbox(mode: str) -> Sandbox:
    """The confinement ``mode`` gives here; ``SandboxError`` when ``bwrap`` is demanded and not
    usable."""
    if mode not in MODES:
        raise SandboxError(f"the kernel sandbox is one of {', '.join(MODES)}, not {mode!r}")
    if mode == "off":
        return Sandbox(None, "turned off (--kernel-sandbox off)")
    found = _probe()
    if found.bwrap is None and mode == "bwrap":
        raise SandboxError(f"cannot confine kernels with bubblewrap: {found.reason}")
    if found.bwrap is None:
        _warn_once(found.reason)
    return found


def wrap(
    command: list[str],
    box: Sandbox,
    *,
    reads: Iterable[Path],
    writes: Iterable[Path] = (),
    chdir: Path,
    memory_mb: int,
) -> list[str]:
    """``command`` inside the sandbox (when there is one), under the memory cap."""
    wrapped = list(command)
    if box.bwrap is not None:
        wrapped = [
            box.bwrap,
            *_namespaces(),
            *_binds(command[0], reads, writes),
            "--chdir",
            str(chdir),
            "--",
            *wrapped,
        ]
    prlimit = shutil.which("prlimit")
    if memory_mb > 0 and prlimit is not None:
        limit = memory_mb * 1024 * 1024
        wrapped = [prlimit, f"--data={limit}:{limit}", "--", *wrapped]
    return wrapped


def _namespaces() -> list[str]:
    return [
        "--unshare-all", "--share-net", "--unshare-user", "--uid", str(_UID), "--gid", str(_UID),
        "--new-session", "--die-with-parent", "--cap-drop", "ALL",
        "--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp",
    ]  # fmt: skip


def _binds(program: str, reads: Iterable[Path], writes: Iterable[Path]) -> list[str]:
    flags: list[str] = []
    for path in _SYSTEM:
        if os.path.islink(path):
            flags += ["--symlink", os.readlink(path), path]
        elif os.path.isdir(path):
            flags += ["--ro-bind", path, path]
    for path in _ETC:
        flags += ["--ro-bind-try", path, path]
    # Node's own prefix, e.g. ~/.nvm/versions/node/v20/ for its bin/node.
    prefix = Path(program).resolve().parent.parent
    if not any(prefix.is_relative_to(system) for system in _SYSTEM):
        flags += ["--ro-bind", str(prefix), str(prefix)]
    for option, paths in (("--ro-bind", reads), ("--bind", writes)):
        for named in dict.fromkeys(Path(p).absolute() for p in paths):
            # Where it really is, and where it is named (a symlinked node_modules):
            # Node looks a module up by the name and loads it by the real path.
            real = named.resolve()
            for place in dict.fromkeys((real, named)):
                flags += [option, str(real), str(place)]
    return flags


@cache
def _probe() -> Sandbox:
    """Whether bubblewrap can make the namespaces here (tried once per process)."""
    bwrap = shutil.which("bwrap")
    if bwrap is None:
        return Sandbox(None, "bubblewrap is not installed (Debian: apt-get install bubblewrap)")
    true = shutil.which("true") or "/bin/true"
    try:
        tried = subprocess.run(
            [bwrap, *_namespaces(), *_binds(true, (), ()), "--", true],
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        return Sandbox(None, f"bubblewrap did not run ({error})")
    if tried.returncode != 0:
        why = (tried.stderr.strip().splitlines() or [f"exit code {tried.returncode}"])[-1]
        return Sandbox(None, f"bubblewrap cannot make namespaces here ({why})")
    return Sandbox(bwrap)


@cache
def _warn_once(reason: str) -> None:
    log.warning(
        "kernels are NOT confined by bubblewrap: %s. They run under Node's permission model alone,"
        " which does not stop a cell from signalling other processes (SECURITY.md).",
        reason,
    )
