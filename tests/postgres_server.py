"""A PostgreSQL server for the tests, and a throw-away database per test.

``python -m tests.postgres_server`` (run by ``make test``) makes sure a server
answers at ``ANODE_TEST_POSTGRES`` (default: the machine's cluster on
127.0.0.1:5432 as user ``postgres``): it starts the installed cluster if it is
stopped, and installs Debian's ``postgresql`` if there is none. The ``postgres``
fixture (``tests/conftest.py``) then creates a database for one test and drops
it afterwards, so tests never see each other's rows.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

import psycopg
from psycopg import sql

#: The server the tests use; its database is only the one to connect to for CREATE DATABASE.
SERVER_URL = os.environ.get(
    "ANODE_TEST_POSTGRES", "postgresql://postgres:postgres@127.0.0.1:5432/postgres"
)


def answers() -> str | None:
    """None when the server lets the tests in, else why not."""
    try:
        psycopg.connect(SERVER_URL, connect_timeout=3).close()
    except psycopg.OperationalError as error:
        return str(error)
    return None


def ensure() -> None:
    """Start, or install and start, the machine's PostgreSQL until it answers."""
    if answers() is None:
        return
    clusters = Path("/etc/postgresql")
    if not clusters.is_dir() or not any(clusters.iterdir()):
        print("tests: PostgreSQL is not installed; installing Debian's postgresql", flush=True)
        _root(["apt-get", "update", "-q"])
        _root(["apt-get", "install", "-y", "-q", "postgresql"])
    version = sorted(clusters.iterdir(), key=lambda p: int(p.name))[-1].name
    print(f"tests: starting PostgreSQL {version}", flush=True)
    _root(["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", "start"], check=False)
    for _ in range(60):
        problem = answers()
        if problem is None:
            return
        if "password" in problem or "authentication" in problem:
            _set_password()  # a fresh Debian cluster lets only the postgres OS user in
            if answers() is None:
                return
        time.sleep(0.5)
    sys.exit(f"tests: no PostgreSQL answers at {SERVER_URL} (set ANODE_TEST_POSTGRES): {problem}")


def _set_password() -> None:
    """A fresh Debian cluster lets only the ``postgres`` OS user in; give the tests' user the
    password the default URL carries."""
    password = psycopg.conninfo.conninfo_to_dict(SERVER_URL).get("password") or "postgres"
    statement = f"ALTER USER postgres PASSWORD '{password}'"
    _root(["su", "postgres", "-c", f'psql -qc "{statement}"'], check=False)


def _root(command: list[str], check: bool = True) -> None:
    if os.geteuid() != 0 and shutil.which("sudo"):
        command = ["sudo", *command]
    subprocess.run(command, check=check)


@contextmanager
def throwaway_database() -> Iterator[str]:
    """The URL of a new, empty database, dropped (connections and all) on exit."""
    name = f"anode_test_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(SERVER_URL, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield urlsplit(SERVER_URL)._replace(path=f"/{name}").geturl()
    finally:
        with psycopg.connect(SERVER_URL, autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


if __name__ == "__main__":
    ensure()
