"""``anode import`` and ``anode export``: Jupyter's ``.ipynb`` through a running relay.

Both speak the relay's HTTP API (``POST /api/notebooks/import``,
``GET /api/notebooks/{id}/ipynb``), so they work the same against a local
relay or a shared one. Without ``--token``, a relay on this machine is asked
with the admin token of the local store under ``--data`` (the one ``anode
serve`` prints), once it has shown it holds that store's secret; a token is
never sent anywhere else unasked.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import click

from .options import data_option, fail, relay_option

token_option = click.option(
    "--token",
    envvar="ANODE_TOKEN",
    show_envvar=True,
    help="A token of the relay (default: the admin token of the store under --data, for a "
    "relay on this machine).",
)


@click.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--title", help="The new notebook's title (default: the file's, or its first heading)."
)
@relay_option
@token_option
@data_option
def import_notebook(
    file: Path, title: str | None, relay: str, token: str | None, data_dir: Path
) -> None:
    """Create a notebook from FILE.ipynb (nbformat 3 or 4); prints its id on the last line."""
    body = file.read_bytes()
    query = f"?{urllib.parse.urlencode({'title': title})}" if title is not None else ""
    answer = _call(
        relay, f"/api/notebooks/import{query}", token, data_dir, body=body, what=str(file)
    )
    created = json.loads(answer)
    click.echo(f"Imported {file.name} as {created['title']!r} ({created['cells']} cells):")
    click.echo(created["id"])


@click.command("export")
@click.argument("notebook")
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the .ipynb here (default: standard output).",
)
@click.option("--at", type=click.IntRange(0), help="The notebook as it was at this seq.")
@relay_option
@token_option
@data_option
def export_notebook(
    notebook: str,
    output: Path | None,
    at: int | None,
    relay: str,
    token: str | None,
    data_dir: Path,
) -> None:
    """Write notebook NOTEBOOK as an nbformat 4.5 .ipynb file."""
    query = f"?at={at}" if at is not None else ""
    path = f"/api/notebooks/{urllib.parse.quote(notebook, safe='')}/ipynb{query}"
    document = _call(relay, path, token, data_dir, what=f"notebook {notebook!r}")
    if output is None:
        sys.stdout.buffer.write(document)
        return
    try:
        output.write_bytes(document)
    except OSError as error:
        fail(f"cannot write {output}: {error.strerror}")
    click.echo(f"Wrote {output}", err=True)


def _call(
    relay: str,
    path: str,
    token: str | None,
    data_dir: Path,
    *,
    what: str,
    body: bytes | None = None,
) -> bytes:
    token = token or _local_admin_token(relay, data_dir)
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    if body is not None:
        headers["Content-Type"] = "application/json"
    request = urllib.request.Request(f"{relay.rstrip('/')}{path}", data=body, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            return response.read()
    except urllib.error.HTTPError as error:
        reason = _reason(error)
        if error.code == 401:
            fail(f"the relay at {relay} refused the token ({reason}): pass --token")
        fail(f"the relay at {relay} refused {what}: {reason}")
    except (urllib.error.URLError, OSError) as error:
        fail(
            f"cannot reach the relay at {relay} ({getattr(error, 'reason', error)}); is `anode "
            "serve` running?"
        )


def _reason(error: urllib.error.HTTPError) -> str:
    try:
        answer: Any = json.loads(error.read())
        return f"{answer['detail']} ({answer['error']}, {error.code})"
    except (ValueError, KeyError, TypeError):
        return f"HTTP {error.code}"


def _local_admin_token(relay: str, data_dir: Path) -> str | None:
    """The admin token ``anode serve --data DIR`` prints, for the relay serving that store.

    Only a relay on loopback is asked, and only once it has proved it holds the
    store's signing secret: it must accept a probe, a token of no use to anyone
    (a viewer's, of a notebook that does not exist, for a minute). Another
    person's relay on this machine's port would get that probe, never the
    admin token.
    """
    host = urllib.parse.urlsplit(relay).hostname or ""
    if host not in ("127.0.0.1", "localhost", "::1") or not (data_dir / "anode.db").exists():
        return None
    from relay.tokens import Grant, SQLiteTokens, TokenStore, sign

    async def read() -> tuple[str, str, str]:
        store = await TokenStore(SQLiteTokens(data_dir)).open()
        try:
            probe_id = f"probe-{secrets.token_hex(8)}"
            grant = Grant(
                probe_id, f"probe-{secrets.token_hex(8)}", "viewer", int(time.time()) + 60
            )
            return probe_id, sign(store.secret, grant), await store.serve_token()
        finally:
            await store.close()

    try:
        probe_id, probe, admin = asyncio.run(read())
    except (OSError, RuntimeError):
        return None
    whoami = urllib.request.Request(
        f"{relay.rstrip('/')}/api/whoami", headers={"Authorization": f"Bearer {probe}"}
    )
    try:
        with urllib.request.urlopen(whoami, timeout=10) as response:
            accepted = json.loads(response.read()).get("token_id") == probe_id
    except (OSError, ValueError, AttributeError):
        return None  # not our relay (401), or none there: the call says what is wrong
    return admin if accepted else None
