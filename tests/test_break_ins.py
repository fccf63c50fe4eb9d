"""The break-ins of issue 9, tried from outside as an attacker would.

Each test starts ``anode serve`` as a real process (tokens on, kernels off
unless a kernel is the point) and holds nothing but the credential the
attack names: an editor, viewer or kernel token for one notebook. The kernel
attacks (cell code planting a backdoor, signalling other processes, memory)
are in ``test_kernel_sandbox.py``; the headers and the service worker in
``test_client_security.py``.
"""

from __future__ import annotations

import json
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from tests.conftest import REPO_ROOT, RelayProcess
from tests.kernels import event

pytestmark = pytest.mark.slow


class Attacker:
    """A relay, one notebook on it, and an HTTP client per credential."""

    def __init__(self, relay: RelayProcess) -> None:
        self.relay = relay
        self.admin = httpx.Client(base_url=relay.url, headers=relay.headers, timeout=30)
        made = self.admin.post("/api/notebooks", json={"title": "target"})
        assert made.status_code == 201, made.text
        self.notebook = made.json()["id"]
        self.api = f"/api/notebooks/{self.notebook}"
        self._clients: list[httpx.Client] = [self.admin]

    def token(self, role: str) -> dict[str, Any]:
        made = self.admin.post(f"{self.api}/tokens", json={"role": role, "label": f"as {role}"})
        assert made.status_code == 201, made.text
        return made.json()

    def client(self, role: str) -> httpx.Client:
        http = httpx.Client(
            base_url=self.relay.url,
            headers={"Authorization": f"Bearer {self.token(role)['token']}"},
            timeout=30,
        )
        self._clients.append(http)
        return http

    def log(self) -> list[dict[str, Any]]:
        """The whole log, parsed strictly: it must always be JSON."""
        response = self.admin.get(f"{self.api}/events")
        assert response.status_code == 200, response.text
        return json.loads(response.text)["events"]

    def close(self) -> None:
        for http in self._clients:
            http.close()


@pytest.fixture
def attacker(relay_process) -> Iterator[Attacker]:
    target = Attacker(relay_process("--kernels", "none"))
    yield target
    target.close()


def _push(http: httpx.Client, api: str, *events: dict[str, Any]) -> httpx.Response:
    return http.post(f"{api}/events", json={"events": list(events)})


def _session(session_id: str, lease: float = 30.0) -> dict[str, Any]:
    return event("kernelSessionStarted", session_id=session_id, host="node", lease_seconds=lease)


class HealthWatch:
    """Times ``/api/health`` back to back on a thread: the relay's responsiveness meanwhile."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.times: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> HealthWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)

    def _run(self) -> None:
        with httpx.Client(timeout=30) as http:
            while not self._stop.is_set():
                started = time.perf_counter()
                assert http.get(f"{self.url}/api/health").status_code == 200
                self.times.append(time.perf_counter() - started)
                time.sleep(0.005)


# --- 3: an id that ends in a newline ------------------------------------------------------


@pytest.mark.parametrize("bad", ["evil\n", "evil\r", "ev\nil", "evil\x00", "évil", "x" * 65, ""])
def test_ids_are_checked_with_a_full_match_everywhere(attacker: Attacker, bad: str) -> None:
    editor = attacker.client("editor")
    kernel = attacker.client("kernel")
    api = attacker.api
    refused = [
        _push(editor, api, {"id": bad, "name": "cellCreated", "v": 1, "args": {"cell_id": "c1"}}),
        _push(editor, api, event("cellCreated", cell_id=bad)),
        _push(
            editor,
            api,
            event("cellCreated", cell_id="c1"),
            event("executionRequested", execution_id=bad, cell_id="c1", source=""),
        ),
        _push(kernel, api, _session(bad)),
        attacker.admin.post("/api/notebooks", json={"title": "t", "id": bad}),
        editor.post(f"{api}/presence", json={"client_id": bad, "state": {}}),
        kernel.post(
            f"{api}/presence",
            json={"client_id": "k1", "kind": "kernel", "state": {"session_id": bad}},
        ),
    ]
    for response in refused:
        assert response.status_code == 400, response.text
        assert response.json()["error"] and response.json()["detail"]
    for query in ({"after": f"1{bad}"}, {"limit": f"{bad}5"}, {"wait": f"0{bad}"}):
        if bad:
            assert editor.get(f"{api}/events", params=query).status_code == 400, query
    if bad:
        assert editor.get(f"/api/notebooks/{quote(bad, safe='')}/events").status_code in (
            400,
            403,
            404,
        )
    assert len(attacker.log()) == 1  # only the notebook's first event


def test_a_store_with_a_bad_row_still_serves_its_notebook(relay_process, tmp_path) -> None:
    """A row that version 1 stored with a raw newline in its id, in a notebook with a live
    kernel session: the relay starts, and pull, snapshot and push all answer."""
    data = tmp_path / "data"
    relay = relay_process("--kernels", "none", data_dir=data)
    target = Attacker(relay)
    kernel = target.client("kernel")
    assert _push(kernel, target.api, _session("ks-live", lease=3600)).status_code == 200
    target.close()
    relay.stop()

    db = sqlite3.connect(data / "anode.db")
    head = db.execute("SELECT head FROM notebooks WHERE id = ?", (target.notebook,)).fetchone()[0]
    body = (  # what version 1 wrote for the id "evil\n": the newline raw inside the string
        f'{{"seq":{head + 1},"id":"evil\n","name":"cellCreated","v":1,'
        '"args":{"cell_id":"c9","source":"kept","cell_type":"code","after":null},"actor":"user:x","ts":1.0}'
    )
    db.execute(
        "INSERT INTO events (notebook, seq, id, body) VALUES (?, ?, ?, ?)",
        (target.notebook, head + 1, "evil\n", body),
    )
    db.execute("UPDATE notebooks SET head = ? WHERE id = ?", (head + 1, target.notebook))
    db.execute("PRAGMA user_version = 1")
    db.commit()
    db.close()

    relay.start()
    with httpx.Client(base_url=relay.url, headers=relay.headers, timeout=30) as admin:
        api = f"/api/notebooks/{target.notebook}"
        pulled = admin.get(f"{api}/events")
        assert pulled.status_code == 200
        assert [e["id"] for e in json.loads(pulled.text)["events"]][-1] == "evil\n"
        snapshot = admin.get(f"{api}/snapshot")
        assert snapshot.status_code == 200
        assert [cell["source"] for cell in snapshot.json()["state"]["cells"]] == ["kept"]
        assert _push(admin, api, event("cellCreated", cell_id="c10")).status_code == 200
        with admin.stream("GET", f"{api}/stream") as stream:
            assert stream.status_code == 200


# --- 4: old-revision edits ------------------------------------------------------------------


def test_stale_edits_cannot_freeze_the_relay(attacker: Attacker) -> None:
    editor = attacker.client("editor")
    viewer = attacker.client("viewer")
    api = attacker.api
    assert (
        _push(editor, api, event("cellCreated", cell_id="big", source="ab" * 33_333)).status_code
        == 200
    )
    heavy = [1, "x", -1] * 33_333
    for rev in range(10):  # each against the newest revision: nothing to rebase, accepted
        assert (
            _push(
                editor, api, event("cellSourceEdited", cell_id="big", base_rev=rev, ops=heavy)
            ).status_code
            == 200
        )
    stale = [event("cellSourceEdited", cell_id="big", base_rev=0, ops=[66_666]) for _ in range(5)]
    head = len(attacker.log())
    with HealthWatch(attacker.relay.url) as watch:
        time.sleep(0.2)
        started = time.perf_counter()
        refused = _push(editor, api, *stale)
        took = time.perf_counter() - started
        at = viewer.get(f"{api}/snapshot", params={"at": head - 1})
        time.sleep(0.2)
    assert refused.status_code == 413 and refused.json()["error"] == "edit_too_stale", refused.text
    assert refused.json()["path"] == "events[0]"
    assert took < 1.0 and len(attacker.log()) == head
    assert at.status_code == 200
    assert max(watch.times) < 0.1, f"health took up to {max(watch.times):.3f} s"

    attacker.relay.stop()  # the first open after a restart refolds the heavy edits
    attacker.relay.start()
    with HealthWatch(attacker.relay.url) as watch:
        time.sleep(0.1)
        with httpx.Client(
            base_url=attacker.relay.url, headers=attacker.relay.headers, timeout=30
        ) as admin:
            assert admin.get(f"{api}/snapshot").status_code == 200
            assert admin.get(f"{api}/snapshot", params={"at": 3}).status_code == 200
        time.sleep(0.1)
    assert max(watch.times) < 0.1, f"health took up to {max(watch.times):.3f} s"


# --- 5 and 6: another kernel's execution and lease --------------------------------------


def _running_on_kernel_a(attacker: Attacker) -> tuple[httpx.Client, httpx.Client]:
    editor, kernel_a, kernel_b = (
        attacker.client("editor"),
        attacker.client("kernel"),
        attacker.client("kernel"),
    )
    api = attacker.api
    assert (
        _push(
            editor,
            api,
            event("cellCreated", cell_id="c1"),
            event("executionRequested", execution_id="x1", cell_id="c1", source=""),
        ).status_code
        == 200
    )
    claimed = _push(
        kernel_a,
        api,
        _session("ks-a"),
        event("executionAssigned", execution_id="x1", session_id="ks-a"),
        event("executionStarted", execution_id="x1", session_id="ks-a"),
    )
    assert claimed.status_code == 200, claimed.text
    return kernel_a, kernel_b


def test_a_claim_that_loses_lends_nothing_to_the_rest_of_its_batch(attacker: Attacker) -> None:
    _, kernel_b = _running_on_kernel_a(attacker)
    head = len(attacker.log())
    for output in (
        event("streamAppended", execution_id="x1", stream="stdout", text="B's words"),
        event(
            "outputAdded",
            execution_id="x1",
            output={"output_type": "display_data", "data": {"text/plain": "B"}, "metadata": {}},
        ),
        event("outputsCleared", execution_id="x1"),
        event("executionCompleted", execution_id="x1", session_id="ks-b", status="ok"),
    ):
        hijack = _push(
            kernel_b,
            attacker.api,
            _session("ks-b"),
            event("executionAssigned", execution_id="x1", session_id="ks-b"),
            output,
        )
        assert hijack.status_code == 403 and hijack.json()["error"] == "not_your_session", (
            hijack.text
        )
    assert len(attacker.log()) == head
    # A claim that does win still carries the rest of its batch.
    editor = attacker.client("editor")
    assert (
        _push(
            editor,
            attacker.api,
            event("executionRequested", execution_id="x2", cell_id="c1", source=""),
        ).status_code
        == 200
    )
    won = _push(
        kernel_b,
        attacker.api,
        _session("ks-b"),
        event("executionAssigned", execution_id="x2", session_id="ks-b"),
        event("streamAppended", execution_id="x2", stream="stdout", text="mine"),
    )
    assert won.status_code == 200, won.text


def test_only_a_sessions_own_credential_keeps_its_lease(attacker: Attacker) -> None:
    kernel_a, kernel_b = attacker.client("kernel"), attacker.client("kernel")
    api = attacker.api
    # B beats for a session before it exists, then A announces it with a short lease.
    early = {"client_id": "ks-a", "kind": "kernel", "state": {"session_id": "ks-a"}, "ttl": 5}
    assert kernel_b.post(f"{api}/presence", json=early).status_code == 200
    assert _push(kernel_a, api, _session("ks-a", lease=1.0)).status_code == 200
    refused = kernel_b.post(f"{api}/presence", json={**early, "client_id": "b-tab"})
    assert refused.status_code == 403 and refused.json()["error"] == "not_your_session", (
        refused.text
    )
    deadline = time.monotonic() + 8
    while time.monotonic() < deadline and not [
        e for e in attacker.log() if e["name"] == "kernelSessionExpired"
    ]:
        kernel_b.post(
            f"{api}/presence", json={**early, "client_id": "b-tab"}
        )  # refused, every time
        time.sleep(0.1)
    expired = [e for e in attacker.log() if e["name"] == "kernelSessionExpired"]
    assert [e["args"]["session_id"] for e in expired] == ["ks-a"]


# --- 7: revoked access ---------------------------------------------------------------------


@pytest.mark.parametrize("revoker", ["api", "cli"])
def test_revoking_a_token_ends_its_streams_and_long_polls(attacker: Attacker, revoker: str) -> None:
    viewer = attacker.token("viewer")
    headers = {"Authorization": f"Bearer {viewer['token']}"}
    api = f"{attacker.relay.url}{attacker.api}"
    ended: dict[str, float] = {}
    polled: dict[str, Any] = {}

    def follow() -> None:
        with httpx.stream("GET", f"{api}/stream", headers=headers, timeout=60) as stream:
            for _ in stream.iter_raw():
                pass
        ended["stream"] = time.monotonic()

    def long_poll() -> None:
        head = len(attacker.log())
        response = httpx.get(
            f"{api}/events", params={"after": head + 100, "wait": 30}, headers=headers, timeout=60
        )
        polled["status"] = response.status_code
        ended["poll"] = time.monotonic()

    threads = [
        threading.Thread(target=follow, daemon=True),
        threading.Thread(target=long_poll, daemon=True),
    ]
    for thread in threads:
        thread.start()
    time.sleep(1.0)  # both are open
    assert not ended
    revoked_at = time.monotonic()
    if revoker == "api":
        assert attacker.admin.delete(f"/api/tokens/{viewer['id']}").status_code == 200
    else:
        data = attacker.relay.data_dir
        subprocess.run(
            [sys.executable, "-m", "anode", "token", "revoke", viewer["id"], "--data", str(data)],
            cwd=REPO_ROOT,
            check=True,
            capture_output=True,
        )
    for thread in threads:
        thread.join(5)
    assert set(ended) == {"stream", "poll"}, ended
    assert max(ended.values()) - revoked_at < 1.0, {k: v - revoked_at for k, v in ended.items()}
    assert polled["status"] == 401


# --- 8: presence ---------------------------------------------------------------------------


def test_presence_is_bounded_and_owned(attacker: Attacker) -> None:
    alice, eve = attacker.client("editor"), attacker.client("viewer")
    api = f"{attacker.api}/presence"
    assert (
        alice.post(api, json={"client_id": "alice-tab", "state": {"name": "Alice"}}).status_code
        == 200
    )
    removed = eve.post(api, json={"client_id": "alice-tab", "gone": True})
    assert removed.status_code == 403 and removed.json()["error"] == "not_your_presence"
    taken = eve.post(api, json={"client_id": "alice-tab", "state": {"name": "Eve"}})
    assert taken.status_code == 403
    big = eve.post(api, json={"client_id": "eve-1", "state": {"blob": "x" * 15_000}})
    assert big.status_code in (400, 413) and big.json()["error"] in (
        "invalid_state",
        "payload_too_large",
    )
    deep = '{"d":' * 980 + "{}" + "}" * 980
    nested = eve.post(api, content='{"client_id": "eve-2", "state": ' + deep + "}")
    assert nested.status_code == 400, nested.text
    statuses = [
        eve.post(api, json={"client_id": f"eve-{n}", "state": {"n": n}}).status_code
        for n in range(40)
    ]
    assert statuses.count(200) == 16 and set(statuses[16:]) == {429}
    with httpx.Client(
        base_url=attacker.relay.url, headers=attacker.relay.headers, timeout=10
    ) as admin:
        burst = [
            admin.post(api, json={"client_id": "admin-tab", "state": {"n": n}}).status_code
            for n in range(200)
        ]
    assert 429 in burst  # presence is rate-limited like pushes
    with httpx.stream(
        "GET", f"{attacker.relay.url}{attacker.api}/stream", headers=alice.headers, timeout=10
    ) as stream:
        first = b""
        for chunk in stream.iter_raw():
            first += chunk
            if first.count(b"event: presence") >= 17:
                break
    assert b'"client_id":"alice-tab","actor":"user:' in first and b'"name":"Alice"' in first
    assert len(first) < 64_000  # what a new stream is sent of who is here stays small


# --- 9: slow clients -------------------------------------------------------------------------


def test_half_sent_requests_are_cut_off(relay_process) -> None:
    relay = relay_process("--kernels", "none", "--request-timeout", "2")
    host, port = "127.0.0.1", relay.port
    heads = []
    for _ in range(200):
        sock = socket.create_connection((host, port))
        sock.sendall(
            b"GET /api/health HTTP/1.1\r\nHost: x\r\n"
        )  # no blank line: the head never ends
        heads.append(sock)
    body = socket.create_connection((host, port))
    body.sendall(
        b"POST /api/notebooks HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + relay.token.encode()
        + b"\r\nContent-Length: 100\r\n\r\n{"
    )  # fmt: skip
    assert (
        httpx.get(f"{relay.url}/api/health", timeout=5).status_code == 200
    )  # not held up meanwhile
    started = time.monotonic()
    answers = []
    for sock in [*heads, body]:
        sock.settimeout(10)
        data = b""
        while chunk := sock.recv(4096):
            data += chunk
        answers.append(data)
        sock.close()
    assert time.monotonic() - started < 6
    assert all(answer.startswith(b"HTTP/1.1 408") for answer in answers)
    assert b'"error":"request_timeout"' in answers[-1] and b"body" in answers[-1]


# --- 10: the output cap --------------------------------------------------------------------------


def test_alternating_streams_count_towards_the_output_cap(attacker: Attacker) -> None:
    kernel_a, _ = _running_on_kernel_a(attacker)
    api = attacker.api
    names = ["stdout", "stderr"]
    pushed = 0
    while pushed < 10_000:
        batch = [
            event("streamAppended", execution_id="x1", stream=names[(pushed + n) % 2], text=".")
            for n in range(1000)
        ]
        assert _push(kernel_a, api, *batch).status_code == 200
        pushed += len(batch)
    over = _push(
        kernel_a,
        api,
        event("streamAppended", execution_id="x1", stream=names[pushed % 2], text="!"),
    )
    assert over.status_code == 413 and over.json()["error"] == "too_many_outputs", over.text
    same = _push(
        kernel_a,
        api,
        event("streamAppended", execution_id="x1", stream=names[(pushed - 1) % 2], text="ok"),
    )
    assert same.status_code == 200  # appending to the last output adds none
    outputs = attacker.admin.get(f"{api}/snapshot").json()["state"]["cells"][0]["outputs"]
    assert len(outputs) == 10_000


# --- 11: one spelling per token ------------------------------------------------------------------


def test_a_token_has_exactly_one_spelling(attacker: Attacker) -> None:
    token = attacker.token("editor")["token"]
    prefix, payload, mac = token.split(".")
    assert (
        httpx.get(
            f"{attacker.relay.url}/api/whoami", headers={"Authorization": f"Bearer {token}"}
        ).status_code
        == 200
    )
    for variant in (
        f"{token}!!",
        f"{prefix}.{payload}=.{mac}",
        f"{token}=",
        f"{prefix}.{payload}.{mac}==",
        f"{prefix}.{payload}.{mac[:-1]}{'B' if mac[-1] == 'A' else 'A'}",
    ):
        response = httpx.get(
            f"{attacker.relay.url}/api/whoami", headers={"Authorization": f"Bearer {variant}"}
        )
        assert response.status_code == 401, variant


def test_a_batch_of_fresh_edits_is_not_charged_for_each_other(attacker: Attacker) -> None:
    """A typist's batch: many edits to one cell, each against the revision the one before
    it made. Nothing needs rebasing, so a long batch of them passes the rebase budget."""
    editor = attacker.client("editor")
    assert (
        _push(editor, attacker.api, event("cellCreated", cell_id="c", source="")).status_code == 200
    )
    text, edits = "", []
    for rev in range(1000):
        edits.append(
            event(
                "cellSourceEdited",
                cell_id="c",
                base_rev=rev,
                ops=[len(text), "x" * 40] if text else ["x" * 40],
            )
        )
        text += "x" * 40
    pushed = _push(editor, attacker.api, *edits)
    assert pushed.status_code == 200, pushed.text
    cells = attacker.admin.get(f"{attacker.api}/snapshot").json()["state"]["cells"]
    assert cells[0]["source"] == text and cells[0]["rev"] == 1000
