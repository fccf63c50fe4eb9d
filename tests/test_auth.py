"""Who may do what, tried from outside over real HTTP: every endpoint x every credential.

The matrix runs every route against a relay on a real socket with tokens for
every role on one notebook ("own") and on another ("other"), and with
credentials that must not work: none, garbage, expired, revoked, forged
(signed with another secret) and tampered (a viewer's payload turned into an
admin's). Each answer is checked, and afterwards the log holds exactly the
events of the pushes that were allowed.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from relay.tokens import Grant, _b64, _unb64, sign
from tests.admin import SyncTokens
from tests.kernels import event, new_id


@dataclass
class World:
    url: str
    own: str  # notebook the notebook-scoped tokens are for
    other: str
    tokens: dict[str, str | None]  # credential name -> token (None: no header)
    admin: httpx.Client
    store: SyncTokens

    def client(self, credential: str) -> httpx.Client:
        token = self.tokens[credential]
        headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=10)

    def log(self, notebook: str) -> list[dict[str, Any]]:
        return self.admin.get(f"/api/notebooks/{notebook}/events").json()["events"]


ROLES = ["admin", "owner", "editor", "viewer", "kernel"]
#: Credentials that must get 401 everywhere but /api/health.
BAD = ["missing", "garbage", "expired", "revoked", "forged", "tampered"]


@pytest.fixture
def world(relay_thread) -> World:
    relay = relay_thread()
    store = SyncTokens(relay.app.state.services.tokens)
    admin = httpx.Client(base_url=relay.url, headers=relay.headers, timeout=10)
    own = admin.post("/api/notebooks", json={"title": "own"}).json()["id"]
    other = admin.post("/api/notebooks", json={"title": "other"}).json()["id"]
    tokens: dict[str, str | None] = {"admin": relay.token}
    for role in ROLES[1:]:
        tokens[role] = store.issue(own, role, label=role)[1]
        tokens[f"other-{role}"] = store.issue(other, role)[1]
    record, revoked = store.issue(own, "editor")
    store.revoke(record.id)
    viewer_payload = _unb64(tokens["viewer"].split(".")[1]).decode()
    _, mac = tokens["viewer"].rsplit(".", 1)
    tampered_payload = viewer_payload.replace(":viewer:", ":admin:").replace(f":{own}:", ":*:")
    tokens |= {
        "missing": None,
        "garbage": "not-a-token",
        "expired": sign(store.secret, Grant("tk-old", own, "editor", int(time.time()) - 60)),
        "revoked": revoked,
        "forged": sign(b"x" * 32, Grant("tk-forged", "*", "admin", None)),
        "tampered": f"at1.{_b64(tampered_payload.encode())}.{mac}",
    }
    return World(relay.url, own, other, tokens, admin, store)


def _expected(credential: str, allowed_roles: set[str], scoped: bool = True) -> int:
    """What a request should answer: 2xx when allowed, 403 for a wrong role or notebook, 401 for a
    bad credential."""
    if credential in BAD:
        return 401
    if credential.startswith("other-"):
        return 403 if scoped else (200 if credential[6:] in allowed_roles else 403)
    return 200 if credential in allowed_roles else 403


CREDENTIALS = ROLES + [f"other-{role}" for role in ROLES[1:]] + BAD


def test_the_authorization_matrix(world: World) -> None:
    allowed_pushes: list[str] = []
    refused_pushes: list[str] = []
    problems: list[str] = []
    cells: list[str] = []

    def check(credential: str, what: str, response: httpx.Response, expected: int) -> None:
        cells.append(f"{credential} {what}")
        got = response.status_code
        ok = got == expected or (expected == 200 and got in (200, 201))
        if not ok:
            problems.append(
                f"{credential:>14}: {what}: {got} (expected {expected}) {response.text[:120]}"
            )
        elif got >= 400:
            body = response.json()
            assert body["error"] and body["detail"], body
            if got == 401:
                assert response.headers["www-authenticate"].startswith("Bearer")

    own = f"/api/notebooks/{world.own}"
    # Someone else's presence entry and kernel session, and an execution running on it.
    victim_kernel = world.store.issue(world.own, "kernel", label="victim kernel")[1]
    with httpx.Client(
        base_url=world.url, headers={"Authorization": f"Bearer {victim_kernel}"}, timeout=10
    ) as victim:
        assert (
            world.admin.post(
                f"{own}/presence", json={"client_id": "victim-tab", "state": {}}
            ).status_code
            == 200
        )
        requested = [
            event("cellCreated", cell_id="cv"),
            event("executionRequested", execution_id="xv", cell_id="cv", source=""),
        ]
        assert world.admin.post(f"{own}/events", json={"events": requested}).status_code == 200
        session = event(
            "kernelSessionStarted", session_id="ks-victim", host="node", lease_seconds=3600
        )
        claim = [
            event("executionAssigned", execution_id="xv", session_id="ks-victim"),
            event("executionStarted", execution_id="xv", session_id="ks-victim"),
        ]
        assert victim.post(f"{own}/events", json={"events": [session, *claim]}).status_code == 200
    for credential in CREDENTIALS:
        with world.client(credential) as http:
            check(credential, "health", http.get("/api/health"), 200)
            check(credential, "whoami", http.get("/api/whoami"), 401 if credential in BAD else 200)
            listed = http.get("/api/notebooks")
            check(credential, "list", listed, 401 if credential in BAD else 200)
            if listed.status_code == 200:
                ids = {nb["id"] for nb in listed.json()["notebooks"]}
                expected_ids = (
                    {world.own, world.other}
                    if credential == "admin"
                    else {world.other if credential.startswith("other-") else world.own}
                )
                if ids != expected_ids:
                    problems.append(f"{credential}: list shows {ids}, expected {expected_ids}")
            check(
                credential,
                "create notebook",
                http.post("/api/notebooks", json={"title": "x"}),
                _expected(credential, {"admin"}, scoped=False),
            )
            ipynb = {"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": []}
            check(
                credential,
                "import an .ipynb",
                http.post("/api/notebooks/import", json=ipynb),
                _expected(credential, {"admin"}, scoped=False),
            )

            edit = event("cellCreated", cell_id=new_id("c"))
            pushed = http.post(f"{own}/events", json={"events": [edit]})
            check(
                credential,
                "push an edit",
                pushed,
                _expected(credential, {"admin", "owner", "editor"}),
            )
            (allowed_pushes if pushed.status_code == 200 else refused_pushes).append(edit["id"])

            read_roles = set(ROLES)
            check(credential, "pull", http.get(f"{own}/events"), _expected(credential, read_roles))
            check(
                credential,
                "export .ipynb",
                http.get(f"{own}/ipynb"),
                _expected(credential, read_roles),
            )
            check(
                credential,
                "snapshot",
                http.get(f"{own}/snapshot"),
                _expected(credential, read_roles),
            )
            with http.stream("GET", f"{own}/stream") as stream:
                if stream.status_code >= 400:
                    stream.read()
                check(credential, "stream", stream, _expected(credential, read_roles))
            check(
                credential,
                "presence",
                http.post(
                    f"{own}/presence",
                    json={"client_id": f"tab-{credential}", "state": {"cell": None}},
                ),
                _expected(credential, read_roles),
            )
            heartbeat = {
                "client_id": f"k-{credential}",
                "kind": "kernel",
                "state": {"session_id": "ks-x"},
            }
            check(
                credential,
                "kernel heartbeat",
                http.post(f"{own}/presence", json=heartbeat),
                _expected(credential, {"admin", "owner", "kernel"}),
            )
            if credential != "admin":  # the entry is the admin's own: only it may remove it
                check(
                    credential,
                    "remove another's presence",
                    http.post(f"{own}/presence", json={"client_id": "victim-tab", "gone": True}),
                    401 if credential in BAD else 403,
                )
            stolen_beat = {
                "client_id": f"kb-{credential}",
                "kind": "kernel",
                "state": {"session_id": "ks-victim"},
            }
            check(
                credential,
                "heartbeat another kernel's session",
                http.post(f"{own}/presence", json=stolen_beat),
                401 if credential in BAD else 403,
            )
            session_id = f"ks-{credential}"
            hijack = [
                event("kernelSessionStarted", session_id=session_id, host="node", lease_seconds=30),
                event("executionAssigned", execution_id="xv", session_id=session_id),
                event(
                    "streamAppended", execution_id="xv", stream="stdout", text=f"from {credential}"
                ),
            ]
            hijacked = http.post(f"{own}/events", json={"events": hijack})
            # Owners and admins write everything kernels write; a kernel token only for its own
            # claims.
            check(
                credential,
                "claim a running execution inside a batch",
                hijacked,
                _expected(credential, {"admin", "owner"}),
            )
            share = {"admin", "owner"}
            made = http.post(f"{own}/tokens", json={"role": "viewer", "label": credential})
            check(credential, "create token", made, _expected(credential, share))
            check(
                credential, "list tokens", http.get(f"{own}/tokens"), _expected(credential, share)
            )
            victim, _ = world.store.issue(world.own, "editor", label="victim")
            revoked = http.delete(f"/api/tokens/{victim.id}")
            expected = _expected(credential, share)
            if credential.startswith("other-") and credential[6:] in share:
                expected = 404  # another notebook's token id is no oracle
            check(credential, "revoke a token", revoked, expected)
            if revoked.status_code != 200 and world.store.get(victim.id).revoked_at is not None:
                problems.append(f"{credential}: a refused revoke revoked {victim.id}")

    assert not problems, "\n".join(problems)
    print(f"\n{len(cells)} matrix cells checked ({len(CREDENTIALS)} credentials), no 5xx")
    stored = {e["id"] for e in world.log(world.own)}
    assert set(allowed_pushes) <= stored
    assert not set(refused_pushes) & stored
    assert not {e["id"] for e in world.log(world.other)} & set(refused_pushes)


# --- every event, checked against the credential that pushes it ----------------------


def _push(http: httpx.Client, notebook: str, *events: dict[str, Any]) -> httpx.Response:
    return http.post(f"/api/notebooks/{notebook}/events", json={"events": list(events)})


def _refused(response: httpx.Response, code: str, words: str) -> None:
    assert response.status_code == 403, response.text
    body = response.json()
    assert body["error"] == code and words in body["detail"], body


def test_each_role_writes_only_its_own_kind_of_event(world: World) -> None:
    cell = new_id("c")
    assert _push(world.admin, world.own, event("cellCreated", cell_id=cell)).status_code == 200
    head = len(world.log(world.own))
    with (
        world.client("viewer") as viewer,
        world.client("kernel") as kernel,
        world.client("editor") as editor,
    ):
        _refused(
            _push(
                viewer, world.own, event("cellSourceEdited", cell_id=cell, base_rev=0, ops=["x"])
            ),
            "role_forbids",
            "viewer token may not change",
        )
        _refused(
            _push(
                kernel, world.own, event("cellSourceEdited", cell_id=cell, base_rev=0, ops=["x"])
            ),
            "role_forbids",
            "kernel token may not write cellSourceEdited",
        )
        requested = event("executionRequested", execution_id=new_id("x"), cell_id=cell, source="1")
        assert _push(editor, world.own, requested).status_code == 200
        forged = event(
            "executionCompleted",
            execution_id=requested["args"]["execution_id"],
            session_id="ks-a",
            status="ok",
        )
        _refused(
            _push(editor, world.own, forged),
            "role_forbids",
            "editor token may not write executionCompleted",
        )
        # A body that speaks for someone else is refused, whoever signs it.
        claimed = {**event("cellDeleted", cell_id=cell), "actor": "user:ada"}
        _refused(_push(editor, world.own, claimed), "actor_mismatch", "'user:ada'")
    assert len(world.log(world.own)) == head + 1  # the request alone


def test_a_kernel_token_speaks_only_for_its_own_sessions_and_claims(world: World) -> None:
    cell = new_id("c")
    first = event("executionRequested", execution_id=new_id("x"), cell_id=cell, source="1")
    second = event("executionRequested", execution_id=new_id("x"), cell_id=cell, source="2")
    _push(world.admin, world.own, event("cellCreated", cell_id=cell), first, second)
    first_id, second_id = first["args"]["execution_id"], second["args"]["execution_id"]
    mine, theirs = (
        world.tokens["kernel"],
        world.admin.post(f"/api/notebooks/{world.own}/tokens", json={"role": "kernel"}).json()[
            "token"
        ],
    )
    with (
        world.client("kernel") as a,
        httpx.Client(base_url=world.url, headers={"Authorization": f"Bearer {theirs}"}) as b,
    ):
        assert mine
        claim = [
            event("kernelSessionStarted", session_id="ks-a", host="node", lease_seconds=30),
            event("executionAssigned", execution_id=first_id, session_id="ks-a"),
            event("executionStarted", execution_id=first_id, session_id="ks-a", execution_count=1),
            event(
                "outputAdded",
                execution_id=first_id,
                output={"output_type": "stream", "name": "stdout", "text": "1\n"},
            ),
        ]
        assert _push(a, world.own, *claim).status_code == 200
        # Kernel B may not take over A's session, claim as A, or write into A's execution.
        _refused(
            _push(
                b,
                world.own,
                event("kernelSessionStarted", session_id="ks-a", host="node", lease_seconds=30),
            ),
            "not_your_session",
            "belongs to another kernel",
        )
        _refused(
            _push(
                b, world.own, event("executionAssigned", execution_id=second_id, session_id="ks-a")
            ),
            "not_your_session",
            "not announced by this kernel",
        )
        stream = event("streamAppended", execution_id=first_id, stream="stdout", text="forged")
        _refused(_push(b, world.own, stream), "not_your_session", "not claimed by this kernel")
        # Its own session claims the second execution and writes to it.
        mine_too = [
            event("kernelSessionStarted", session_id="ks-b", host="node", lease_seconds=30),
            event("executionAssigned", execution_id=second_id, session_id="ks-b"),
            event("executionStarted", execution_id=second_id, session_id="ks-b", execution_count=1),
            event("executionCompleted", execution_id=second_id, session_id="ks-b", status="ok"),
        ]
        assert _push(b, world.own, *mine_too).status_code == 200
    state = world.admin.get(f"/api/notebooks/{world.own}/snapshot").json()["state"]
    kernels = (
        {k["id"]: k["actor"] for k in state["kernels"]}
        if isinstance(state["kernels"], list)
        else {k: v["actor"] for k, v in state["kernels"].items()}
    )
    assert kernels["ks-a"] != kernels["ks-b"] and all(
        a.startswith("kernel:tk-") for a in kernels.values()
    )
    texts = [e["args"].get("text") for e in world.log(world.own) if e["name"] == "streamAppended"]
    assert "forged" not in texts


# --- limits ---------------------------------------------------------------------------


def test_pushes_past_the_rate_get_429_with_retry_after(relay_thread) -> None:
    relay = relay_thread(push_rate=2.0, push_burst=3)
    with httpx.Client(base_url=relay.url, headers=relay.headers, timeout=10) as http:
        notebook = http.post("/api/notebooks", json={}).json()["id"]
        answers = [
            _push(http, notebook, event("cellCreated", cell_id=new_id("c"))) for _ in range(5)
        ]
        assert [r.status_code for r in answers[:3]] == [200, 200, 200]
        limited = answers[3]
        assert limited.status_code == 429 and int(limited.headers["retry-after"]) >= 1
        assert limited.json()["error"] == "rate_limited" and limited.json()["retry_after"] > 0
        assert len(http.get(f"/api/notebooks/{notebook}/events").json()["events"]) == 1 + 3
        time.sleep(limited.json()["retry_after"] + 0.05)
        assert _push(http, notebook, event("cellCreated", cell_id=new_id("c"))).status_code == 200


def test_open_streams_per_token_are_capped(relay_thread) -> None:
    relay = relay_thread(max_streams_per_token=2)
    with httpx.Client(base_url=relay.url, headers=relay.headers, timeout=10) as http:
        notebook = http.post("/api/notebooks", json={}).json()["id"]
        url = f"/api/notebooks/{notebook}/stream"
        with http.stream("GET", url) as one, http.stream("GET", url) as two:
            assert (one.status_code, two.status_code) == (200, 200)
            lines = [
                one.iter_lines(),
                two.iter_lines(),
            ]  # kept: a dropped iterator closes its stream
            assert [next(it) for it in lines] == ["id: 1", "id: 1"]  # both are being served
            third = http.get(url)
            assert third.status_code == 429 and third.json()["error"] == "too_many_streams"
        deadline = time.monotonic() + 5
        while True:  # closed streams give their places back
            with http.stream("GET", url) as again:
                if again.status_code == 200:
                    break
                again.read()
            assert time.monotonic() < deadline, "closed streams were never released"
            time.sleep(0.05)


def test_outputs_per_execution_are_capped(relay_thread) -> None:
    relay = relay_thread(max_outputs_per_execution=3)
    with httpx.Client(base_url=relay.url, headers=relay.headers, timeout=10) as http:
        notebook = http.post("/api/notebooks", json={}).json()["id"]
        cell, run = new_id("c"), new_id("x")
        _push(
            http,
            notebook,
            event("cellCreated", cell_id=cell),
            event("executionRequested", execution_id=run, cell_id=cell, source=""),
            event("kernelSessionStarted", session_id="ks-1", host="node", lease_seconds=30),
            event("executionAssigned", execution_id=run, session_id="ks-1"),
            event("executionStarted", execution_id=run, session_id="ks-1", execution_count=1),
        )
        output = {"output_type": "display_data", "data": {"text/plain": "x"}, "metadata": {}}
        adds = [event("outputAdded", execution_id=run, output=output) for _ in range(4)]
        assert _push(http, notebook, *adds[:3]).status_code == 200
        refused = _push(http, notebook, adds[3])
        assert refused.status_code == 413 and refused.json()["error"] == "too_many_outputs"


def test_an_editor_runs_a_kernel_only_in_its_own_tab_for_its_own_requests(world: World) -> None:
    """An editor writes kernel events only for a ``tab`` session it announced, claims only
    its own requests asked of a tab, and heartbeats only that session; no other kernel
    claims a request asked of a tab, and a tab claims no one else's."""
    editor = world.admin.post(f"/api/notebooks/{world.own}/tokens", json={"role": "editor"})
    colleague = editor.json()["token"]
    cell = new_id("c")
    _push(world.admin, world.own, event("cellCreated", cell_id=cell))
    mine = event("executionRequested", execution_id=new_id("x"), cell_id=cell, source="1",
                 runner="tab")  # fmt: skip
    mine_id = mine["args"]["execution_id"]
    offline_run = [
        mine,
        event("kernelSessionStarted", session_id="ks-tab", host="tab", lease_seconds=10),
        event("executionAssigned", execution_id=mine_id, session_id="ks-tab"),
        event("executionStarted", execution_id=mine_id, session_id="ks-tab", execution_count=1),
        event("streamAppended", execution_id=mine_id, stream="stdout", text="1\n"),
        event("executionCompleted", execution_id=mine_id, session_id="ks-tab", status="ok"),
    ]
    with (
        world.client("editor") as tab,
        httpx.Client(base_url=world.url, headers={"Authorization": f"Bearer {colleague}"}) as b,
        world.client("kernel") as server,
    ):
        # A server kernel session: an editor may not write its events.
        _refused(
            _push(
                tab,
                world.own,
                event("kernelSessionStarted", session_id="ks-node", host="node", lease_seconds=10),
            ),  # fmt: skip
            "role_forbids",
            "own tab kernel",
        )
        # A run made offline arrives whole, and counts.
        pushed = _push(tab, world.own, *offline_run)
        assert pushed.status_code == 200, pushed.text
        finished = [e for e in world.log(world.own) if e["name"] == "executionCompleted"]
        assert [e["args"]["execution_id"] for e in finished] == [mine_id]
        # The colleague's request, even one asked of a tab: my tab's claim does not count, and
        # what my tab would write for it is refused.
        theirs = event("executionRequested", execution_id=new_id("x"), cell_id=cell, source="2",
                       runner="tab")  # fmt: skip
        assert _push(b, world.own, theirs).status_code == 200
        theirs_id = theirs["args"]["execution_id"]
        stolen = [
            event("executionAssigned", execution_id=theirs_id, session_id="ks-tab"),
            event("executionStarted", execution_id=theirs_id, session_id="ks-tab"),
        ]
        _refused(_push(tab, world.own, *stolen), "not_your_session", "not claimed by this kernel")
        # A server kernel cannot take a request asked of a tab either: its claim is a no-op.
        server_claim = [
            event("kernelSessionStarted", session_id="ks-srv", host="node", lease_seconds=30),
            event("executionAssigned", execution_id=theirs_id, session_id="ks-srv"),
            event("executionStarted", execution_id=theirs_id, session_id="ks-srv"),
        ]
        _refused(_push(server, world.own, *server_claim), "not_your_session", "not claimed")
        # Heartbeats: its own tab session, yes; another's session or none, no.
        beat = {"client_id": "ks-tab", "kind": "kernel", "state": {"session_id": "ks-tab"}}
        presence = f"/api/notebooks/{world.own}/presence"
        assert tab.post(presence, json=beat).status_code == 200
        assert b.post(presence, json=beat).status_code == 403
        other = {"client_id": "ks-x", "kind": "kernel", "state": {"session_id": "ks-srv"}}
        assert tab.post(presence, json=other).status_code == 403
