"""The ``anode`` command as a person meets it: real processes, real terminals."""

from __future__ import annotations

import os
import pty
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from anode.reference import cli_reference

REPO_ROOT = Path(__file__).resolve().parent.parent


def anode(
    *args: str, env: dict[str, str] | None = None, timeout: float = 20
) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "anode", *args],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
        stdin=subprocess.DEVNULL,
    )


def test_cli_reference_in_docs_matches_the_cli() -> None:
    documented = (REPO_ROOT / "docs" / "cli.md").read_text()
    assert documented == cli_reference(), "run: python -m anode.reference > docs/cli.md"


def test_help_lists_every_command() -> None:
    result = anode("--help")
    assert result.returncode == 0
    for command in ("serve", "notebooks", "reset-storage"):
        assert command in result.stdout


def test_serve_refuses_a_port_in_use(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        result = anode("serve", "--port", str(port), "--data", str(tmp_path / "data"))
    assert result.returncode == 2
    assert f"port {port} on 127.0.0.1 is in use" in result.stderr
    assert "Traceback" not in result.stderr


def test_serve_refuses_an_unwritable_data_directory(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    result = anode("serve", "--port", "0", "--data", str(blocker / "data"))
    assert result.returncode == 2
    assert "is not writable" in result.stderr and str(blocker / "data") in result.stderr
    assert "Traceback" not in result.stderr


def test_a_data_file_from_a_newer_anode_is_refused(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    db = sqlite3.connect(data / "anode.db")
    db.execute("PRAGMA user_version = 99")
    db.close()
    for args in (["serve", "--port", "0"], ["notebooks"]):
        result = anode(*args, "--data", str(data))
        assert result.returncode == 2, result
        assert "written by a newer Anode" in result.stderr
        assert "Traceback" not in result.stderr


@pytest.mark.slow
def test_serve_prints_the_url_and_notebooks_lists_with_event_counts(
    relay_process, tmp_path: Path
) -> None:
    relay = relay_process(data_dir=tmp_path / "data")
    assert relay.token and relay.token.startswith(
        "at1."
    )  # secure by default: the URL carries a token
    created = httpx.post(
        f"{relay.url}/api/notebooks", json={"title": "Field notes"}, headers=relay.headers
    ).json()
    events = [
        {"id": f"e{i}", "name": "cellCreated", "v": 1, "args": {"cell_id": f"c{i}"}}
        for i in range(3)
    ]
    pushed = httpx.post(
        f"{relay.url}/api/notebooks/{created['id']}/events",
        json={"events": events},
        headers=relay.headers,
    )
    assert pushed.status_code == 200
    relay.stop()

    listed = anode("notebooks", env={"ANODE_DATA": str(tmp_path / "data")})
    assert listed.returncode == 0, listed.stderr
    row = next(line for line in listed.stdout.splitlines() if created["id"] in line)
    assert row.split()[1:4] == ["4", "3", "Field"]  # 4 events (init + 3), 3 cells


def test_notebooks_without_a_store_says_how_to_start_one(tmp_path: Path) -> None:
    result = anode("notebooks", "--data", str(tmp_path / "nothing"))
    assert result.returncode == 2
    assert "no Anode store" in result.stderr and "anode serve" in result.stderr


def _store(tmp_path: Path) -> Path:
    data = tmp_path / "data"
    from relay.storage.sqlite import open_database

    open_database(data / "anode.db").close()
    return data


def test_reset_storage_without_a_terminal_needs_yes(tmp_path: Path) -> None:
    data = _store(tmp_path)
    refused = anode("reset-storage", "--data", str(data))
    assert refused.returncode == 2 and "--yes" in refused.stderr
    assert (data / "anode.db").exists()
    done = anode("reset-storage", "--data", str(data), "--yes")
    assert done.returncode == 0
    assert not (data / "anode.db").exists()


@pytest.mark.parametrize("answer, deleted", [("n", False), ("y", True)])
def test_reset_storage_asks_in_a_terminal(tmp_path: Path, answer: str, deleted: bool) -> None:
    data = _store(tmp_path)
    pid, fd = pty.fork()
    if pid == 0:  # the child: anode on a real terminal
        os.chdir(REPO_ROOT)
        os.execv(
            sys.executable, [sys.executable, "-m", "anode", "reset-storage", "--data", str(data)]
        )
    output = b""
    deadline = time.monotonic() + 20
    while b"[y/N]" not in output and time.monotonic() < deadline:
        output += os.read(fd, 1024)
    assert b"Delete every notebook in" in output
    os.write(fd, f"{answer}\n".encode())
    while True:
        try:
            chunk = os.read(fd, 1024)
        except OSError:
            break
        if not chunk:
            break
        output += chunk
    _, status = os.waitpid(pid, 0)
    assert (data / "anode.db").exists() is not deleted
    assert os.waitstatus_to_exitcode(status) == (0 if deleted else 1)


def test_import_and_export_an_ipynb_through_a_running_relay(relay_process, tmp_path: Path) -> None:
    import json

    import nbformat

    relay = relay_process(data_dir=tmp_path / "data")
    source = REPO_ROOT / "tests" / "data" / "ipynb" / "nbconvert-notebook2.ipynb"
    imported = anode("import", str(source), "--relay", relay.url, "--token", relay.token or "")
    assert imported.returncode == 0, imported.stderr
    notebook = imported.stdout.splitlines()[-1]
    assert "NumPy and Matplotlib examples" in imported.stdout and notebook.isascii()

    out = tmp_path / "out.ipynb"
    exported = anode("export", notebook, "-o", str(out), env={"ANODE_RELAY": relay.url,
                     "ANODE_TOKEN": relay.token or ""})  # fmt: skip
    assert exported.returncode == 0, exported.stderr
    node = nbformat.read(out, as_version=4)
    nbformat.validate(node)
    assert len(node.cells) == len(nbformat.read(source, as_version=4).cells)

    # Beside the relay's own store, no token is needed: the admin token `anode serve`
    # printed is read from --data (for a relay on loopback only).
    local = {"ANODE_DATA": str(tmp_path / "data"), "ANODE_RELAY": relay.url}
    again = anode("import", str(out), "--title", "Again", env=local)
    assert again.returncode == 0, again.stderr
    to_stdout = anode("export", again.stdout.splitlines()[-1], env=local)
    assert json.loads(to_stdout.stdout)["metadata"]["title"] == "Again"

    bad = tmp_path / "bad.ipynb"
    bad.write_text('{"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": [{}]}')
    refused = anode("import", str(bad), env=local)
    assert refused.returncode == 2 and refused.stderr.startswith("anode: error: ")
    assert "cell 0" in refused.stderr and "Traceback" not in refused.stderr
    no_token = anode("export", notebook, "--relay", relay.url, "--data", str(tmp_path / "none"))
    assert no_token.returncode == 2 and "--token" in no_token.stderr
    # Someone else's server on this machine's loopback never gets this store's admin
    # token: it is sent a probe first, which it cannot accept.
    catcher = _TokenCatcher()
    try:
        elsewhere = anode(
            "import", str(source), "--relay", catcher.url, "--data", str(tmp_path / "data")
        )
    finally:
        catcher.close()
    assert elsewhere.returncode == 2 and "--token" in elsewhere.stderr
    assert catcher.tokens and relay.token not in catcher.tokens  # the probe, and nothing else
    missing = anode("export", "nope", env=local)
    assert missing.returncode == 2 and "unknown_notebook" in missing.stderr


class _TokenCatcher:
    """A server on loopback that answers 401 to everything and notes the bearer tokens."""

    def __init__(self) -> None:
        import http.server
        import threading

        tokens: list[str] = []

        class Refuse(http.server.BaseHTTPRequestHandler):
            def _refuse(self) -> None:
                tokens.append(self.headers.get("Authorization", "").removeprefix("Bearer "))
                body = b'{"error":"unauthorized","detail":"not yours"}'
                self.send_response(401)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = _refuse

            def log_message(self, *args: object) -> None:
                pass

        self.tokens = tokens
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Refuse)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
