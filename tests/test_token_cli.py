"""``anode token`` and ``anode serve``'s credentials, as a person uses them: real processes."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import httpx
import pytest

from tests.test_cli import anode

pytestmark = pytest.mark.slow


def _whoami(url: str, token: str) -> httpx.Response:
    return httpx.get(f"{url}/api/whoami", headers={"Authorization": f"Bearer {token}"}, timeout=10)


def test_tokens_are_made_listed_and_revoked_for_good(relay_process, tmp_path: Path) -> None:
    data = tmp_path / "data"
    relay = relay_process("--kernels", "none", data_dir=data)
    assert stat.S_IMODE(os.stat(data / "secret.key").st_mode) == 0o600
    notebook = httpx.post(
        f"{relay.url}/api/notebooks", json={"title": "t"}, headers=relay.headers
    ).json()["id"]
    assert (
        httpx.get(f"{relay.url}/api/notebooks", timeout=10).status_code == 401
    )  # no token, no API
    assert httpx.get(f"{relay.url}/", timeout=10).status_code == 200  # the page itself loads

    made = anode(
        "token",
        "create",
        "--notebook",
        notebook,
        "--role",
        "editor",
        "--expires",
        "7d",
        "--label",
        "ada",
        "--data",
        str(data),
    )
    assert made.returncode == 0, made.stderr
    token = made.stdout.strip().splitlines()[-1]
    token_id = made.stdout.split()[1].rstrip(":")
    me = _whoami(relay.url, token).json()
    assert (me["role"], me["notebook"], me["token_id"]) == ("editor", notebook, token_id)
    assert me["expires_at"] > 0

    listed = anode("token", "list", "--data", str(data))
    row = next(line for line in listed.stdout.splitlines() if token_id in line)
    assert row.split()[1:3] == ["editor", notebook] and "active" in row and "ada" in row
    assert token not in listed.stdout  # the list never shows secrets

    revoked = anode("token", "revoke", token_id, "--data", str(data))  # while the relay runs
    assert revoked.returncode == 0, revoked.stderr
    refused = _whoami(relay.url, token)
    assert refused.status_code == 401 and "revoked" in refused.json()["detail"]

    relay.stop()
    relay.start()  # the revocation outlives the relay
    assert _whoami(relay.url, token).status_code == 401
    assert (
        _whoami(relay.url, relay.token).status_code == 200
    )  # the printed admin token is the same one
    assert "revoked" in anode("token", "list", "--data", str(data)).stdout


@pytest.mark.parametrize(
    "args, words",
    [
        (["create", "--role", "editor"], "pass --notebook"),
        (["create", "--role", "admin", "--notebook", "nb"], "drop --notebook"),
        (["create", "--role", "viewer", "--notebook", "nb", "--expires", "soon"], "not a duration"),
        (["revoke", "tk-nope"], "no token 'tk-nope'"),
    ],
)
def test_token_commands_name_the_problem(
    relay_process, tmp_path: Path, args: list[str], words: str
) -> None:
    relay_process("--kernels", "none", data_dir=tmp_path / "data")
    result = anode("token", *args, "--data", str(tmp_path / "data"))
    assert result.returncode == 2 and words in result.stderr, result
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr


def test_no_auth_is_refused_off_loopback_and_loud_on_it(relay_process, tmp_path: Path) -> None:
    refused = anode(
        "serve", "--host", "0.0.0.0", "--port", "0", "--no-auth", "--data", str(tmp_path / "d")
    )
    assert refused.returncode == 2 and "only on a loopback address" in refused.stderr
    relay = relay_process("--no-auth", "--kernels", "none")
    assert relay.token is None
    assert httpx.get(f"{relay.url}/api/whoami", timeout=10).json()["auth"] is False
