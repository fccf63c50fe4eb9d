"""Several real relay processes on one PostgreSQL store, as a team deploys them.

Every relay here is ``anode serve --store postgresql://…`` on its own port,
over a throw-away database; clients talk to them over real HTTP.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import RelayProcess
from tests.kernels import (  # noqa: F401 - kernels_fixture is a fixture
    Kernels,
    Notebook,
    event,
    kernels_fixture,
    new_id,
    stream_text,
    wait_until,
)
from tests.sse import Subscription
from tests.test_cli import anode

pytestmark = pytest.mark.slow

Relays = Callable[..., list[RelayProcess]]


@pytest.fixture
def relays(relay_process: Any, postgres: str, tmp_path: Path) -> Relays:
    """``relays(3)``: that many relays on one fresh PostgreSQL database."""

    def start(count: int, *extra: str) -> list[RelayProcess]:
        kernels = () if "--kernels" in extra else ("--kernels", "none")
        return [
            relay_process("--store", postgres, *kernels, *extra, data_dir=tmp_path / f"relay{i}")
            for i in range(count)
        ]

    return start


def client(relay: RelayProcess, token: str | None = None) -> httpx.Client:
    headers = {"Authorization": f"Bearer {token or relay.token}"}
    return httpx.Client(base_url=relay.url, headers=headers, timeout=30)


def log_of(relay: RelayProcess, notebook: str) -> list[dict[str, Any]]:
    with client(relay) as http:
        response = http.get(f"/api/notebooks/{notebook}/events", params={"limit": 10_000})
        assert response.status_code == 200, response.text
        return response.json()["events"]


def assert_dense_and_unique(events: list[dict[str, Any]]) -> None:
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    assert len({e["id"] for e in events}) == len(events)


def test_writers_on_three_relays_append_to_one_notebook_densely(relays: Relays) -> None:
    a, b, c = relays(3)
    assert a.token == b.token == c.token  # one store, one admin token
    with client(a) as http:
        notebook = http.post("/api/notebooks", json={"title": "shared"}).json()["id"]
    acked: dict[str, int] = {}
    failures: list[str] = []

    def writer(relay: RelayProcess, name: str) -> None:
        with client(relay) as http:
            for i in range(30):
                batch = [event("cellCreated", cell_id=f"{name}-{i}-{j}") for j in range(3)]
                # Every writer also re-sends one event all of them share: stored once.
                batch.append({**event("cellCreated", cell_id=f"shared-{i}"), "id": f"shared-{i}"})
                response = http.post(f"/api/notebooks/{notebook}/events", json={"events": batch})
                if response.status_code != 200:
                    failures.append(response.text)
                    return
                for item, seq in zip(batch, response.json()["seqs"], strict=True):
                    if acked.setdefault(item["id"], seq) != seq:
                        failures.append(f"{item['id']} acked at two seqs")

    threads = [
        threading.Thread(target=writer, args=(relay, name))
        for relay, name in ((a, "a"), (b, "b"), (c, "c"), (a, "a2"))
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert not failures, failures[:3]
    events = log_of(c, notebook)
    assert_dense_and_unique(events)
    assert len(events) == 1 + 4 * 30 * 3 + 30
    stored = {e["id"]: e["seq"] for e in events}
    assert all(stored[event_id] == seq for event_id, seq in acked.items())
    # Every relay's folded state agrees with the log, whichever relay folded what.
    for relay in (a, b, c):
        with client(relay) as http:
            snapshot = http.get(f"/api/notebooks/{notebook}/snapshot").json()
        assert snapshot["seq"] == len(events)
        assert len(snapshot["state"]["cells"]) == 4 * 30 * 3 + 30


def test_a_subscriber_on_one_relay_gets_what_another_acknowledged(relays: Relays) -> None:
    a, b, c = relays(3)
    with client(a) as http:
        notebook = http.post("/api/notebooks", json={"title": "fan-out"}).json()["id"]
    with Subscription(b.url, notebook, after=0, headers=b.headers) as on_b:
        on_b.events_until(1)
        # A long poll on C wakes for a push through A.
        poll: dict[str, Any] = {}

        def long_poll() -> None:
            with client(c) as http:
                started = time.monotonic()
                poll["body"] = http.get(
                    f"/api/notebooks/{notebook}/events", params={"after": 1, "wait": 20}
                ).json()
                poll["seconds"] = time.monotonic() - started

        poller = threading.Thread(target=long_poll)
        poller.start()
        time.sleep(0.3)
        with client(a) as http:
            for i in range(20):
                pushed = http.post(
                    f"/api/notebooks/{notebook}/events",
                    json={"events": [event("cellCreated", cell_id=f"c{i}")]},
                )
                assert pushed.status_code == 200, pushed.text
        received, _ = on_b.events_until(21)
        assert [e["seq"] for e in received] == list(range(2, 22))
        poller.join(20)
        assert poll["body"]["events"][0]["seq"] == 2 and poll["seconds"] < 5
        # Presence posted through A reaches B's stream.
        with client(a) as http:
            posted = http.post(
                f"/api/notebooks/{notebook}/presence",
                json={"client_id": "tab-1", "state": {"cursor": 3}},
            )
            assert posted.status_code == 200, posted.text
        presence = on_b.next_of("presence").json()
        assert presence["client_id"] == "tab-1" and presence["state"] == {"cursor": 3}
    # A stream resumed on another relay with Last-Event-ID picks up after it.
    with Subscription(c.url, notebook, last_event_id="15", headers=c.headers) as on_c:
        received, _ = on_c.events_until(21)
        assert [e["seq"] for e in received] == list(range(16, 22))


def test_a_token_revoked_through_one_relay_is_refused_by_all(relays: Relays) -> None:
    a, b, c = relays(3)
    with client(a) as http:
        notebook = http.post("/api/notebooks", json={"title": "tokens"}).json()["id"]
        made = http.post(f"/api/notebooks/{notebook}/tokens", json={"role": "editor"}).json()
    for relay in (a, b, c):
        with client(relay, made["token"]) as http:
            assert http.get(f"/api/notebooks/{notebook}/events").status_code == 200
    with Subscription(
        c.url, notebook, after=0, headers={"Authorization": f"Bearer {made['token']}"}
    ) as stream:
        stream.events_until(1)
        with client(a) as http:
            assert http.delete(f"/api/tokens/{made['id']}").status_code == 200
        for relay in (b, c, a):  # at once, on every relay
            with client(relay, made["token"]) as http:
                refused = http.get(f"/api/notebooks/{notebook}/events")
                assert refused.status_code == 401, refused.text
                assert "revoked" in refused.json()["detail"]
        # The stream it held open on C ends too.
        wait_until(lambda: stream.queue.qsize() and _ended(stream), 10, "the stream to end")


def _ended(stream: Subscription) -> bool:
    from tests.sse import Closed

    while not stream.queue.empty():
        if isinstance(stream.queue.get(), Closed):
            return True
    return False


def test_kill_9_of_a_relay_under_load_loses_nothing_acknowledged(relays: Relays) -> None:
    a, b = relays(2)
    with client(a) as http:
        notebook = http.post("/api/notebooks", json={"title": "crash"}).json()["id"]
    acked: dict[str, int] = {}
    stop = threading.Event()
    errors: list[str] = []

    def writer(name: str) -> None:
        targets = [a, b]
        i = 0
        while not stop.is_set():
            batch = [event("cellCreated", cell_id=f"{name}-{i}-{j}") for j in range(2)]
            for attempt in range(40):  # the same batch, to whichever relay answers
                relay = targets[(i + attempt) % 2]
                try:
                    with client(relay) as http:
                        response = http.post(
                            f"/api/notebooks/{notebook}/events", json={"events": batch}
                        )
                except httpx.HTTPError:
                    continue
                if response.status_code == 200:
                    for item, seq in zip(batch, response.json()["seqs"], strict=True):
                        acked[item["id"]] = seq
                    break
                errors.append(response.text)
            i += 1

    threads = [threading.Thread(target=writer, args=(f"w{n}",)) for n in range(3)]
    for thread in threads:
        thread.start()
    time.sleep(1.5)
    a.kill()
    time.sleep(1.5)
    stop.set()
    for thread in threads:
        thread.join(60)
    assert not errors, errors[:3]
    assert len(acked) > 50
    events = log_of(b, notebook)
    assert_dense_and_unique(events)
    stored = {e["id"]: e["seq"] for e in events}
    assert all(stored.get(event_id) == seq for event_id, seq in acked.items())
    a.start()  # back on its port, it serves the same log
    assert log_of(a, notebook) == events


def test_a_lapsed_lease_is_expired_once_and_the_duty_moves_on_a_crash(relays: Relays) -> None:
    a, b, c = relays(3)
    with client(a) as http:
        notebook = http.post("/api/notebooks", json={"title": "leases"}).json()["id"]
        kernel_token = http.post(
            f"/api/notebooks/{notebook}/tokens", json={"role": "kernel"}
        ).json()["token"]

    def start_session(relay: RelayProcess) -> str:
        session = new_id("ks")
        with client(relay, kernel_token) as http:
            started = event(
                "kernelSessionStarted", session_id=session, host="node", lease_seconds=2
            )
            assert (
                http.post(
                    f"/api/notebooks/{notebook}/events", json={"events": [started]}
                ).status_code
                == 200
            )
        return session

    def beat(relay: RelayProcess, session: str) -> None:
        with client(relay, kernel_token) as http:
            response = http.post(
                f"/api/notebooks/{notebook}/presence",
                json={"client_id": session, "kind": "kernel", "state": {"session_id": session}},
            )
            assert response.status_code == 200, response.text

    # A session that beats only through C stays live while every relay watches.
    kept = start_session(c)
    silent = start_session(b)
    for _ in range(8):
        beat(c, kept)
        time.sleep(0.5)

    def expiries() -> list[dict[str, Any]]:
        return [e for e in log_of(b, notebook) if e["name"] == "kernelSessionExpired"]

    wait_until(lambda: expiries(), 10, "the silent session to expire")
    time.sleep(1.0)
    assert [e["args"]["session_id"] for e in expiries()] == [silent]
    # The relay that holds the duty dies (the first to start took it): another takes over.
    a.kill()
    lost = start_session(c)
    wait_until(
        lambda: any(e["args"]["session_id"] == lost for e in expiries()), 15, "a new duty holder"
    )
    time.sleep(1.0)
    expired = [e["args"]["session_id"] for e in expiries()]
    assert len(expired) == len(set(expired)) and {silent, lost} <= set(expired)


def test_a_kernel_polling_one_relay_runs_work_pushed_through_another(
    relays: Relays, kernels: Kernels
) -> None:
    a, b = relays(2)
    on_b = Notebook.create(b.url, token=b.token)
    on_a = Notebook(a.url, on_b.id, a.token)
    try:
        kernels.start(a.url, on_b.id, token=on_b.kernel_token())
        execution = on_b.run("print(6 * 7)")
        (run,) = on_b.wait_done(execution, timeout=60)
        assert run.status == "ok" and stream_text(run.outputs) == "42\n"
        assert on_a.sync().executions[execution].status == "ok"
        assert len(on_b.events("executionAssigned", execution_id=execution)) == 1
    finally:
        on_b.close()
        on_a.close()


# --- the command line ---------------------------------------------------------------


def test_migrate_moves_a_sqlite_store_and_its_tokens(
    relay_process: Any, postgres: str, tmp_path: Path
) -> None:
    data = tmp_path / "sqlite"
    old = relay_process("--kernels", "none", data_dir=data)
    with client(old) as http:
        notebook = http.post("/api/notebooks", json={"title": "moving"}).json()["id"]
        for start in range(0, 1_500, 500):  # past snapshot_min_events: a snapshot is taken
            batch = [event("cellCreated", cell_id=f"c{i}") for i in range(start, start + 500)]
            http.post(f"/api/notebooks/{notebook}/events", json={"events": batch})
        editor = http.post(f"/api/notebooks/{notebook}/tokens", json={"role": "editor"}).json()
        gone = http.post(f"/api/notebooks/{notebook}/tokens", json={"role": "viewer"}).json()
        assert http.delete(f"/api/tokens/{gone['id']}").status_code == 200
    before = log_of(old, notebook)
    old.stop()

    moved = anode("migrate", "--from", str(data), "--to", postgres)
    assert moved.returncode == 0, moved.stderr
    assert "1 notebooks (1501 events, " in moved.stdout and "tokens" in moved.stdout
    assert "snapshots) and 3 tokens" in moved.stdout  # the admin's, the editor's, the revoked
    new = relay_process("--store", postgres, "--kernels", "none", data_dir=tmp_path / "unused")
    assert new.token == old.token  # the same secret: every token made before still works
    assert log_of(new, notebook) == before
    with client(new, editor["token"]) as http:
        assert http.get(f"/api/notebooks/{notebook}/snapshot").json()["seq"] == 1501
    with client(new, gone["token"]) as http:
        assert http.get(f"/api/notebooks/{notebook}/events").status_code == 401

    listed = anode("notebooks", "--store", postgres)
    assert listed.returncode == 0 and notebook in listed.stdout and "1501" in listed.stdout
    again = anode("migrate", "--from", str(data), "--to", postgres)
    assert again.returncode == 2 and "migrate only into an empty store" in again.stderr
    assert log_of(new, notebook) == before


def test_the_store_option_names_its_problems(postgres: str, tmp_path: Path) -> None:
    wrong = anode("serve", "--store", "mysql://db/anode", "--port", "0")
    assert wrong.returncode == 2 and "is not a PostgreSQL URL" in wrong.stderr
    away = anode(
        "serve", "--store", "postgresql://postgres:secret@127.0.0.1:1/anode", "--port", "0"
    )
    assert (
        away.returncode == 2 and "cannot use postgresql://postgres@127.0.0.1:1/anode" in away.stderr
    )
    assert "secret" not in away.stderr
    made = anode("token", "create", "--store", postgres, "--role", "admin", "--label", "ops")
    assert made.returncode == 0, made.stderr
    listed = anode("token", "list", "--store", postgres)
    assert "ops" in listed.stdout
    token_id = made.stdout.split()[1].rstrip(":")
    assert anode("token", "revoke", token_id, "--store", postgres).returncode == 0
    assert "revoked" in anode("token", "list", "--store", postgres).stdout
    nothing = anode("migrate", "--from", str(tmp_path / "none"), "--to", postgres)
    assert nothing.returncode == 2 and "no Anode store" in nothing.stderr


def test_auto_kernels_move_on_when_the_relay_that_ran_them_dies(relays: Any) -> None:
    """``--kernels auto`` on both relays: the relay on duty starts the kernel; kill it, and
    the other takes the duty, expires the dead kernel's lease and starts a new one."""
    first, second = relays(2, "--kernels", "auto")
    notebook = Notebook.create(second.url, token=second.token)
    try:
        (done,) = notebook.wait_done(notebook.run("print(1)"), timeout=90)
        assert stream_text(done.outputs) == "1\n"
        first.kill()  # it held the duty (it started first), and its kernel dies with it
        again = notebook.run("print(2)")
        (rerun,) = notebook.wait_done(again, timeout=90)
        assert rerun.status == "ok" and stream_text(rerun.outputs) == "2\n"
        assert rerun.kernel_session != done.kernel_session
        expired = notebook.events("kernelSessionExpired", session_id=done.kernel_session)
        assert len(expired) == 1
    finally:
        notebook.close()
