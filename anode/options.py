"""What the ``anode`` commands share: the data directory option and the one-line failure."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import NoReturn

import click

data_option = click.option(
    "--data",
    "data_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("anode-data"),
    show_default=True,
    envvar="ANODE_DATA",
    show_envvar=True,
    help="Directory holding the notebooks' SQLite store.",
)


#: How ``anode serve``'s and ``anode kernel``'s Node kernels are confined
#: (``kernel_headless/launch/sandbox.py``).
kernel_sandbox_option = click.option(
    "--kernel-sandbox",
    type=click.Choice(["auto", "bwrap", "off"]),
    default="auto",
    show_default=True,
    envvar="ANODE_KERNEL_SANDBOX",
    show_envvar=True,
    help=(
        "Confine Node kernels with bubblewrap: auto (where it works, else warn), bwrap "
        "(required), off."
    ),
)
kernel_memory_option = click.option(
    "--kernel-memory",
    default=2048,
    show_default=True,
    type=click.IntRange(0),
    envvar="ANODE_KERNEL_MEMORY",
    show_envvar=True,
    help="A Node kernel's memory cap in MiB (cells past it get MemoryError); 0: none.",
)


#: The relay a command talks to over HTTP (``anode kernel``, ``import``, ``export``).
relay_option = click.option(
    "--relay",
    default="http://127.0.0.1:8000",
    show_default=True,
    envvar="ANODE_RELAY",
    show_envvar=True,
    help="The relay's address.",
)


def fail(message: str) -> NoReturn:
    """One clear line on stderr and exit code 2: a problem the person can fix."""
    click.echo(f"anode: error: {message}", err=True)
    sys.exit(2)
