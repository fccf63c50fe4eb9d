"""``anode token create | list | revoke``: manage access tokens in a store.

These work on the store directly (a data directory, or PostgreSQL with
``--store``), with or without relays running: every relay refuses a revoked
token from its next request.
"""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

import click

from relay.tokens import ALL_NOTEBOOKS, NOTEBOOK_ROLES, ROLES, TokenRecord, parse_duration

from .options import data_option, fail
from .stores import store_option, token_store, where


@click.group()
def token() -> None:
    """Create, list and revoke access tokens."""


@token.command("create")
@click.option("--notebook", help="The notebook the token is for (not with --role admin).")
@click.option("--role", type=click.Choice(ROLES), required=True, help="What the token may do.")
@click.option(
    "--expires",
    "expires",
    metavar="DURATION",
    help="Lifetime such as 30m, 12h, 7d or 2w (default: never).",
)
@click.option(
    "--label", default="", help="Who or what the token is for, shown by `anode token list`."
)
@data_option
@store_option
def create(
    notebook: str | None,
    role: str,
    expires: str | None,
    label: str,
    data_dir: Path,
    store_url: str | None,
) -> None:
    """Issue a token; the token itself is alone on the last line."""
    if role == "admin" and notebook:
        fail("an admin token is for every notebook; drop --notebook")
    if role in NOTEBOOK_ROLES and not notebook:
        fail(f"a {role} token is for one notebook; pass --notebook ID")
    try:
        expires_in = parse_duration(expires) if expires else None
    except ValueError as error:
        fail(f"--expires: {error}")

    async def issue() -> tuple[TokenRecord, str]:
        async with token_store(data_dir, store_url) as store:
            try:
                return await store.issue(notebook or ALL_NOTEBOOKS, role, expires_in, label)
            except ValueError as error:
                fail(str(error))

    record, secret = asyncio.run(issue())
    until = (
        time.strftime("%Y-%m-%d %H:%M", time.localtime(record.expires_at))
        if record.expires_at
        else "never"
    )
    click.echo(f"Token {record.id}: {role} on {record.notebook}, expires {until}.")
    click.echo(secret)


@token.command("list")
@click.option("--notebook", help="Only this notebook's tokens.")
@data_option
@store_option
def list_(notebook: str | None, data_dir: Path, store_url: str | None) -> None:
    """List tokens (never the secrets themselves)."""

    async def records_of() -> list[TokenRecord]:
        async with token_store(data_dir, store_url) as store:
            return await store.list(notebook)

    records = asyncio.run(records_of())
    if not records:
        click.echo("No tokens.")
        return
    click.echo(f"{'ID':<20} {'ROLE':<7} {'NOTEBOOK':<16} {'EXPIRES':<17} {'STATE':<8} LABEL")
    now = time.time()
    for r in records:
        until = (
            time.strftime("%Y-%m-%d %H:%M", time.localtime(r.expires_at))
            if r.expires_at
            else "never"
        )
        state = (
            "revoked"
            if r.revoked_at
            else ("expired" if r.expires_at and r.expires_at <= now else "active")
        )
        click.echo(f"{r.id:<20} {r.role:<7} {r.notebook:<16} {until:<17} {state:<8} {r.label}")


@token.command("revoke")
@click.argument("token_id")
@data_option
@store_option
def revoke(token_id: str, data_dir: Path, store_url: str | None) -> None:
    """Revoke a token for good (running relays refuse it from their next request)."""

    async def revoke_it() -> TokenRecord | None:
        async with token_store(data_dir, store_url) as store:
            return await store.revoke(token_id)

    if asyncio.run(revoke_it()) is None:
        fail(f"no token {token_id!r} in {where(data_dir, store_url)} (see `anode token list`)")
    click.echo(f"Revoked {token_id}.")
    sys.stdout.flush()
