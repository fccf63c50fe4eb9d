"""The ``anode`` command: serve a notebook, inspect and reset its storage.

Every option can also come from an environment variable (``ANODE_DATA``,
``ANODE_PORT``, ...). Problems a person can fix (a port in use, an
unwritable data directory, a data file from a newer Anode) are one clear
line and exit code 2, never a traceback.
"""

from __future__ import annotations

import asyncio
import errno
import ipaddress
import re
import socket
import sqlite3
import sys
from pathlib import Path
from types import FrameType

import click

from relay import __version__
from relay.config import RelayConfig
from relay.storage import StorageError
from relay.storage.sqlite import open_database

from .ipynb_commands import export_notebook, import_notebook
from .options import data_option, kernel_memory_option, kernel_sandbox_option, relay_option
from .options import fail as _fail
from .site import build_site
from .stores import postgres, store_option, token_store, where
from .token_commands import token

DATA_FILES = ("anode.db", "anode.db-wal", "anode.db-shm")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="anode")
def main() -> None:
    """Anode: a real-time collaborative Python notebook in the browser."""


main.add_command(token)
main.add_command(build_site)
main.add_command(import_notebook)
main.add_command(export_notebook)


@main.command()
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    envvar="ANODE_HOST",
    show_envvar=True,
    help="Interface to bind.",
)
@click.option(
    "--port",
    default=8000,
    show_default=True,
    type=click.IntRange(0, 65535),
    envvar="ANODE_PORT",
    show_envvar=True,
    help="Port to bind (0: any free port).",
)
@data_option
@store_option
@click.option(
    "--sync",
    type=click.Choice(["normal", "full"]),
    default="normal",
    show_default=True,
    help="SQLite durability: normal survives a crash of the relay; full also a power loss.",
)
@click.option(
    "--kernels",
    type=click.Choice(["auto", "none"]),
    default="auto",
    show_default=True,
    envvar="ANODE_KERNELS",
    show_envvar=True,
    help=(
        "auto: start a Node kernel for a notebook with work waiting and none live; none: start "
        "kernels yourself (anode kernel)."
    ),
)
@click.option(
    "--kernel-idle",
    default=300.0,
    show_default=True,
    type=click.FloatRange(1),
    help="Seconds an auto-started kernel may sit idle before it is stopped.",
)
@kernel_sandbox_option
@kernel_memory_option
@click.option(
    "--wheels",
    "wheels_dir",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    envvar="ANODE_WHEELS",
    show_envvar=True,
    help="A folder of wheels served at /wheels/simple/, so kernels can %pip install offline.",
)
@click.option(
    "--pyodide-packages",
    "pyodide_packages",
    metavar="DIR|URL",
    envvar="ANODE_PYODIDE_PACKAGES",
    show_envvar=True,
    help=(
        "Where kernels load Pyodide's packages (numpy, pandas…) from when a cell imports them: "
        "a folder laid out like a Pyodide distribution (pyodide-lock.json + wheels), served at "
        "/pyodide-packages/, or its URL. Default: Pyodide's CDN."
    ),
)
@click.option(
    "--no-auth",
    is_flag=True,
    envvar="ANODE_NO_AUTH",
    show_envvar=True,
    help="Serve without tokens, for local hacking: refused unless --host is a loopback address.",
)
@click.option(
    "--allow-origin",
    "allowed_origins",
    multiple=True,
    metavar="ORIGIN",
    help=(
        "Let pages from ORIGIN (e.g. https://notebooks.example, a site from `anode build-site`) "
        "call the API. Repeatable."
    ),
)
@click.option(
    "--push-rate",
    default=200.0,
    show_default=True,
    type=click.FloatRange(0),
    help="Pushes a second allowed per token (bursts of twice that); 0: no limit.",
)
@click.option(
    "--request-timeout",
    default=30.0,
    show_default=True,
    type=click.FloatRange(1, 3600),
    help="Seconds a client may take to send a request's body (its head: at most 10); then 408.",
)
@click.option(
    "--log-level",
    default="warning",
    show_default=True,
    type=click.Choice(["debug", "info", "warning", "error"]),
    help="How much the server logs.",
)
def serve(
    host: str,
    port: int,
    data_dir: Path,
    store_url: str | None,
    sync: str,
    kernels: str,
    kernel_idle: float,
    kernel_sandbox: str,
    kernel_memory: int,
    wheels_dir: Path | None,
    pyodide_packages: str | None,
    no_auth: bool,
    allowed_origins: tuple[str, ...],
    push_rate: float,
    request_timeout: float,
    log_level: str,
) -> None:
    """Serve the notebook (relay and client) on HOST:PORT.

    Secure by default: the URL it prints carries an admin token, and the API
    answers 401 to anyone without a token.
    """
    import logging

    import uvicorn

    from anode.kernels import KernelManager
    from relay.app import create_app
    from relay.timeouts import protocol_with_head_deadline

    if no_auth and not _is_loopback(host):
        _fail(
            f"--no-auth serves anyone who can reach {host}; it is allowed only on a loopback "
            "address such as 127.0.0.1"
        )
    for origin in allowed_origins:
        if not _ORIGIN.fullmatch(origin):
            _fail(
                f"--allow-origin {origin!r} is not an origin like https://site.example or http://127.0.0.1:8080"
            )
    if store_url is not None:
        asyncio.run(_check_postgres(store_url))
    else:
        _check_data_dir(data_dir)
    sock = _bind(host, port)
    config = RelayConfig(
        data_dir=data_dir.resolve(),
        store_url=store_url,
        sqlite_sync=sync,  # type: ignore[arg-type]
        wheels_dir=wheels_dir.resolve() if wheels_dir else None,
        pyodide_packages=_package_source(pyodide_packages),
        auth=not no_auth,
        auto_kernels=kernels == "auto",
        allowed_origins=tuple(origin.rstrip("/") for origin in allowed_origins),
        push_rate=push_rate,
        push_burst=max(1, int(push_rate * 2)),
        request_head_seconds=min(10.0, request_timeout),
        request_body_seconds=request_timeout,
    )
    bound_port = sock.getsockname()[1]
    shown_host = "127.0.0.1" if host in ("0.0.0.0", "") else ("[::1]" if host == "::" else host)
    local_host = (
        "127.0.0.1" if host in ("0.0.0.0", "") else ("[::1]" if host == "::" else shown_host)
    )
    extensions = []
    if kernels == "auto":
        manager = KernelManager(
            f"http://{local_host}:{bound_port}",
            pyodide_packages=config.pyodide_packages_url(f"http://{local_host}:{bound_port}"),
            idle_seconds=kernel_idle,
            sandbox=kernel_sandbox,
            memory_mb=kernel_memory,
        )
        extensions.append(manager.running)
    logging.basicConfig(level=log_level.upper(), format="anode: %(message)s")
    click.echo(f"Anode {__version__} — notebooks in {where(config.data_dir, store_url)}")
    if kernels == "none":
        click.echo(
            "Kernels: start one per notebook with `anode kernel --notebook ID --token TOKEN`."
        )
    else:
        click.echo(f"Kernels: {_confinement(kernel_sandbox, kernel_memory)}.")
    if no_auth:
        click.echo(
            "Auth is OFF (--no-auth): anyone who can reach this port may read and change every "
            "notebook."
        )
        click.echo(f"Open http://{shown_host}:{bound_port}/ in your browser (Ctrl+C stops).")
    else:
        token = asyncio.run(_serve_token(config.data_dir, store_url))
        click.echo(
            f"Open http://{shown_host}:{bound_port}/?token={token} in your browser (Ctrl+C stops)."
        )
    sys.stdout.flush()
    app = create_app(config, extensions=extensions)
    server = _server_class()(
        uvicorn.Config(
            app,
            log_level=log_level,
            access_log=log_level == "debug",
            lifespan="on",
            timeout_graceful_shutdown=2,
            http=protocol_with_head_deadline(config.request_head_seconds),
        )
    )
    server.run(sockets=[sock])


@main.command()
@click.option("--notebook", required=True, help="The notebook to serve (its id).")
@relay_option
@click.option(
    "--host",
    "kernel_host",
    type=click.Choice(["node", "browser"]),
    default="node",
    show_default=True,
    help="Run Pyodide in Node, or in a headless Chromium page.",
)
@click.option(
    "--lease",
    default=5.0,
    show_default=True,
    type=click.FloatRange(0.5, 3600),
    help="Seconds without a heartbeat before the relay declares this kernel lost.",
)
@click.option("--label", default="", help="A name shown beside the kernel in the notebook.")
@click.option(
    "--index-url",
    "index_urls",
    multiple=True,
    help="A package index for %pip (repeatable; default: the relay's wheelhouse, then PyPI).",
)
@click.option(
    "--pyodide-packages",
    "pyodide_packages",
    metavar="URL",
    envvar="ANODE_PYODIDE_PACKAGES",
    show_envvar=True,
    help="Where Pyodide's packages load from by import (default: what the relay serves, else "
    "Pyodide's CDN).",
)
@click.option(
    "--token",
    envvar="ANODE_TOKEN",
    show_envvar=True,
    help=(
        "A kernel (or owner) token for the notebook: `anode token create --notebook ID --role "
        "kernel`."
    ),
)
@kernel_sandbox_option
@kernel_memory_option
def kernel(
    notebook: str,
    relay: str,
    kernel_host: str,
    lease: float,
    label: str,
    index_urls: tuple[str, ...],
    pyodide_packages: str | None,
    token: str | None,
    kernel_sandbox: str,
    kernel_memory: int,
) -> None:
    """Run a headless Pyodide kernel for one notebook (several may serve one notebook)."""
    from kernel_headless.launch import EXIT_UNAUTHORIZED, KernelSpec, LaunchError, run_kernel

    spec = KernelSpec(
        relay=relay,
        notebook=notebook,
        host=kernel_host,
        lease_seconds=lease,
        label=label,
        index_urls=list(index_urls),
        pyodide_packages=pyodide_packages or _relay_package_source(relay),
        token=token,
        sandbox=kernel_sandbox,
        memory_mb=kernel_memory,
    )
    _check_relay(relay, notebook, token)
    try:
        code = run_kernel(spec)
    except LaunchError as error:
        _fail(str(error))
    if code == EXIT_UNAUTHORIZED:
        _fail(
            f"the relay at {relay} refused this kernel's token (revoked or expired); make a new "
            f"one with `anode token create --notebook {notebook} --role kernel`"
        )
    sys.exit(code)


@main.command()
@data_option
@store_option
def notebooks(data_dir: Path, store_url: str | None) -> None:
    """List the notebooks in the store, with their event counts."""
    if store_url is not None:

        async def listed() -> list[tuple[str, int, int, str]]:
            async with postgres(store_url) as storage:
                infos = await storage.list_notebooks()
            return [(i.id, i.head, i.cells, i.title) for i in infos]

        rows = asyncio.run(listed())
    else:
        db = _open_existing(data_dir)
        rows = db.execute(
            "SELECT id, head, cells, title FROM notebooks ORDER BY updated_at DESC, id"
        ).fetchall()
        db.close()
    if not rows:
        click.echo(f"No notebooks in {where(data_dir, store_url)}.")
        return
    click.echo(f"{'ID':<14} {'EVENTS':>8} {'CELLS':>6}  TITLE")
    for notebook_id, head, cells, title in rows:
        click.echo(f"{notebook_id:<14} {head:>8} {cells:>6}  {title or '(untitled)'}")


@main.command()
@click.option(
    "--from",
    "source",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="The data directory of the SQLite store to copy.",
)
@click.option(
    "--to", "target", required=True, metavar="URL", help="The PostgreSQL store to copy into."
)
def migrate(source: Path, target: str) -> None:
    """Copy a SQLite store (events, snapshots, tokens and revocations) into an empty
    PostgreSQL one. The source is left as it was."""
    from .migrate import MigrationRefused
    from .migrate import migrate as copy_store

    async def run() -> None:
        async with postgres(target) as storage:
            try:
                moved = await copy_store(source, storage)
            except MigrationRefused as error:
                _fail(str(error))
        click.echo(
            f"Copied {moved.notebooks} notebooks ({moved.events} events, {moved.snapshots} "
            f"snapshots) and {moved.tokens} tokens into {where(source, target)}."
        )

    asyncio.run(run())


@main.command("reset-storage")
@data_option
@click.option("--yes", is_flag=True, help="Delete without asking.")
def reset_storage(data_dir: Path, yes: bool) -> None:
    """Delete every notebook in the store (asks first)."""
    present = [data_dir / name for name in DATA_FILES if (data_dir / name).exists()]
    if not present:
        click.echo(f"Nothing to delete: {data_dir} holds no Anode store.")
        return
    if not yes:
        if not sys.stdin.isatty():
            _fail("refusing to delete without confirmation; run with --yes")
        click.confirm(f"Delete every notebook in {data_dir}?", abort=True)
    for path in present:
        path.unlink()
    click.echo(f"Deleted the store in {data_dir}.")


def _confinement(mode: str, memory_mb: int) -> str:
    """One line on how kernels will be confined; exits when ``bwrap`` is demanded and not usable."""
    from kernel_headless.launch.sandbox import SandboxError, sandbox

    try:
        box = sandbox(mode)
    except SandboxError as error:
        _fail(
            f"{error} (--kernel-sandbox bwrap); install bubblewrap, or pass --kernel-sandbox auto"
        )
    cap = f"memory cap {memory_mb} MiB" if memory_mb else "no memory cap"
    if box.bwrap is None:
        return f"NOT confined by bubblewrap ({box.reason}): Node's permission model only, {cap}"
    return f"confined by bubblewrap (own PID, mount and user namespaces), {cap}"


def _server_class() -> type:
    import uvicorn

    class Server(uvicorn.Server):
        """uvicorn, plus: on Ctrl+C or SIGTERM, answer pending long polls at once."""

        def handle_exit(self, sig: int, frame: FrameType | None) -> None:
            services = getattr(getattr(self.config.app, "state", None), "services", None)
            if services is not None:
                services.closing.set()  # a signal handler runs on the loop's thread
            super().handle_exit(sig, frame)

    return Server


def _package_source(source: str | None) -> str | None:
    """``--pyodide-packages``: an http(s) URL, or a folder holding ``pyodide-lock.json``."""
    if source is None:
        return None
    if "://" in source:
        if not source.startswith(("http://", "https://")):
            _fail(f"--pyodide-packages {source!r}: a URL must be http:// or https://")
        return source if source.endswith("/") else source + "/"
    folder = Path(source)
    if not (folder / "pyodide-lock.json").is_file():
        _fail(
            f"--pyodide-packages {source!r} is not a Pyodide package folder: it has no "
            "pyodide-lock.json"
        )
    return str(folder.resolve())


def _relay_package_source(relay: str) -> str | None:
    """The package source the relay names in ``/api/health`` (None: Pyodide's CDN)."""
    import json
    import urllib.request

    try:
        with urllib.request.urlopen(f"{relay.rstrip('/')}/api/health", timeout=10) as response:
            source = json.loads(response.read()).get("pyodide_packages")
    except (OSError, ValueError, AttributeError):
        return None  # _check_relay says what is wrong with the relay
    if not isinstance(source, str):
        return None
    return f"{relay.rstrip('/')}{source}" if source.startswith("/") else source


def _check_relay(relay: str, notebook: str, token: str | None) -> None:
    """Fail with one clear line when the relay or the notebook is not there, or the token is
    refused."""
    import json
    import urllib.error
    import urllib.request

    url = f"{relay.rstrip('/')}/api/notebooks/{notebook}/events?limit=1"
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=10):
            return
    except urllib.error.HTTPError as error:
        try:
            detail = json.loads(error.read()).get("detail", "")
        except ValueError:
            detail = ""
        if error.code == 401 and not token:
            _fail(
                f"the relay at {relay} needs a token: pass --token (make one with `anode token "
                f"create --notebook {notebook} --role kernel`)"
            )
        _fail(f"the relay at {relay} refused notebook {notebook!r}: {error.code} {detail}")
    except (urllib.error.URLError, OSError) as error:
        _fail(
            f"cannot reach the relay at {relay} ({getattr(error, 'reason', error)}); is `anode "
            "serve` running?"
        )


async def _serve_token(data_dir: Path, store_url: str | None) -> str:
    async with token_store(data_dir, store_url) as store:
        return await store.serve_token()


async def _check_postgres(store_url: str) -> None:
    async with postgres(store_url):
        pass


def _check_data_dir(data_dir: Path) -> None:
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
        probe = data_dir / ".anode-write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as error:
        _fail(
            f"the data directory {data_dir} is not writable ({error.strerror or error}); pick "
            "another with --data"
        )
    try:
        open_database(data_dir / "anode.db").close()
    except StorageError as error:
        _fail(str(error))


def _open_existing(data_dir: Path) -> sqlite3.Connection:
    path = data_dir / "anode.db"
    if not path.exists():
        _fail(f"no Anode store in {data_dir} (start one with: anode serve --data {data_dir})")
    try:
        return open_database(path)
    except StorageError as error:
        _fail(str(error))
        raise  # unreachable


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY only on sockets that say they
    # are TCP; without it every kept-alive response waits ~40 ms for a delayed ACK.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as error:
        sock.close()
        if error.errno == errno.EADDRINUSE:
            _fail(
                f"port {port} on {host} is in use; stop the other server or pick another with "
                "--port"
            )
        _fail(f"cannot listen on {host}:{port}: {error.strerror or error}")
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


_ORIGIN = re.compile(r"https?://[A-Za-z0-9.\-\[\]:]+/?")


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False
