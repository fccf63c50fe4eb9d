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


def fail(message: str) -> NoReturn:
    """One clear line on stderr and exit code 2: a problem the person can fix."""
    click.echo(f"anode: error: {message}", err=True)
    sys.exit(2)
