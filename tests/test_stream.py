"""The live stream over a real socket: every event once, in order; resume; presence; slow readers.

Each test reads ``text/event-stream`` by hand (``tests/sse.py``) from a real
relay: ``anode serve`` as a process, or uvicorn on a thread where the test
needs a non-default configuration (a tiny subscriber queue).
"""

from __future__ import annotations

import json
import random
import socket
import threading
import time
import uuid
from typing import Any

import httpx
import pytest

from tests.sse import Closed, Message, Subscription, stream_url

pytestmark = pytest.mark.slow

SUBSCRIBERS = 5


def _cell(index: int, source: str = "") -> dict[str, Any]:
    return {
        "id": uuid.uuid4().hex,
        "name": "cellCreated",
        "v": 1,
        "args": {"cell_id": f"c{index}", "source": source},
    }


def _create_notebook(url: str) -> str:
    response = httpx.post(f"{url}/api/notebooks", json={"title": "stream"})
    assert response.status_code == 201, response.text
    return response.json()["id"]


def _pull_all(url: str, notebook: str) -> list[dict[str, Any]]:
    response = httpx.get(
        f"{url}/api/notebooks/{notebook}/events", params={"after": 0, "limit": 10_000}
    )
    assert response.status_code == 200, response.text
    return response.json()["events"]


class Writer:
    """Pushes new cells in batches of mixed sizes, on a thread.

    It stops after ``total`` events, or, with ``total=None``, when told to.
    """

    def __init__(
        self, url: str, notebook: str, total: int | None, *, seed: int = 0, pause: float = 0.0
    ) -> None:
        self.url, self.notebook, self.total, self.pause = url, notebook, total, pause
        self.rng = random.Random(seed)
        self.head = 0
        self.pushed = 0
        self.error: BaseException | None = None
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> Writer:
        self.thread.start()
        return self

    def _more(self) -> int:
        if self.total is None:
            return 0 if self.stopping.is_set() else 40
        return self.total - self.pushed

    def _run(self) -> None:
        try:
            with httpx.Client(base_url=self.url, timeout=10) as client:
                while self._more() > 0:
                    size = min(self.rng.choice((1, 1, 2, 3, 7, 16, 40)), self._more())
                    batch = [_cell(self.pushed + i) for i in range(size)]
                    response = client.post(
                        f"/api/notebooks/{self.notebook}/events", json={"events": batch}
                    )
                    assert response.status_code == 200, response.text
                    self.pushed += size
                    self.head = response.json()["head"]
                    if self.pause:
                        time.sleep(self.pause * self.rng.random())
        except BaseException as error:  # surfaced by join()
            self.error = error

    def join(self) -> int:
        """Stop (if running open-ended) and return the head after the last push."""
        self.stopping.set()
        self.thread.join(30)
        assert not self.thread.is_alive(), "the writer is stuck"
        if self.error is not None:
            raise self.error
        return self.head


def _check_batches(batches: list[Message]) -> None:
    """Every ``events`` message carries the seq of its last event as its SSE id."""
    for message in batches:
        events = message.json()
        assert events, "an empty events message"
        assert message.id == str(events[-1]["seq"])


def test_concurrent_subscribers_get_every_event_once_in_order(relay_process) -> None:
    url = relay_process("--no-auth").url
    notebook = _create_notebook(url)
    subscribers = [Subscription(url, notebook) for _ in range(SUBSCRIBERS)]
    try:
        head = Writer(url, notebook, 300, seed=1).start().join()
        log = _pull_all(url, notebook)
        assert head == len(log) == 301
        for subscriber in subscribers:
            received, batches = subscriber.events_until(head)
            assert received == log  # each event once, in order, exactly as stored
            _check_batches(batches)
            assert len(batches) > 10  # batches were delivered as they landed, not in one lump
        # Nothing else is queued: the next message is the next event.
        response = httpx.post(
            f"{url}/api/notebooks/{notebook}/events", json={"events": [_cell(999)]}
        )
        assert response.json()["seqs"] == [head + 1]
        for subscriber in subscribers:
            message = subscriber.next_of("events")
            assert [e["seq"] for e in message.json()] == [head + 1]
            assert message.id == str(head + 1)
    finally:
        for subscriber in subscribers:
            subscriber.close()


def test_subscribers_joining_while_pushes_are_in_flight(relay_process) -> None:
    """The backlog and the live events join without a gap or a duplicate."""
    url = relay_process("--no-auth").url
    notebook = _create_notebook(url)
    writer = Writer(url, notebook, None, seed=2, pause=0.01).start()
    joined: list[tuple[int, Subscription]] = []
    rng = random.Random(3)
    try:
        while len(joined) < 8:
            time.sleep(rng.random() * 0.05)
            after = rng.randint(0, writer.head)  # from anywhere in what has landed so far
            joined.append((after, Subscription(url, notebook, after=after)))
            assert writer.thread.is_alive()
        joined_at = writer.head
        while writer.head == joined_at:  # live events after the last one joined, too
            time.sleep(0.01)
        head = writer.join()
        log = _pull_all(url, notebook)
        for after, subscriber in joined:
            received, batches = subscriber.events_until(head)
            assert received == log[after:]
            _check_batches(batches)
    finally:
        for _, subscriber in joined:
            subscriber.close()


def test_resume_after_reconnect_with_after_and_last_event_id(relay_process) -> None:
    url = relay_process("--no-auth").url
    notebook = _create_notebook(url)
    writer = Writer(url, notebook, None, seed=4, pause=0.01).start()
    received: list[dict[str, Any]] = []
    subscription = Subscription(url, notebook)
    try:
        # Drop the connection three times mid-stream (with whatever it had
        # buffered), resuming each way a client can.
        for how in ("last-event-id", "after", "both"):
            target = len(received) + 40
            while len(received) < target:
                message = subscription.next_of("events")
                received.extend(message.json())
            assert writer.thread.is_alive()
            subscription.close()
            if how == "last-event-id":
                subscription = Subscription(url, notebook, last_event_id=message.id)
            elif how == "after":
                subscription = Subscription(url, notebook, after=received[-1]["seq"])
            else:  # EventSource: the page's original URL, plus the id it last saw
                subscription = Subscription(url, notebook, after=0, last_event_id=message.id)
        head = writer.join()
        if received[-1]["seq"] < head:
            rest, batches = subscription.events_until(head)
            _check_batches(batches)
            received.extend(rest)
        assert received == _pull_all(url, notebook)
    finally:
        subscription.close()

    bad = httpx.get(stream_url(url, notebook), headers={"Last-Event-ID": "seven"})
    assert bad.status_code == 400
    assert bad.json()["error"] == "invalid_last_event_id"


def _post_presence(url: str, notebook: str, body: dict[str, Any]) -> None:
    response = httpx.post(f"{url}/api/notebooks/{notebook}/presence", json=body)
    assert response.status_code == 200, response.text


def test_presence_signals(relay_process) -> None:
    url = relay_process("--no-auth").url
    notebook = _create_notebook(url)
    with Subscription(url, notebook) as ada, Subscription(url, notebook) as bob:
        ada.events_until(1)
        bob.events_until(1)
        cursor = {"cell_id": "c1", "anchor": 3, "head": 5}
        _post_presence(
            url, notebook, {"client_id": "tab-ada", "state": {"cursor": cursor}, "ttl": 30}
        )
        for subscriber in (ada, bob):  # the poster's own stream echoes it too
            signal = subscriber.next_of("presence").json()
            assert signal["client_id"] == "tab-ada"
            assert signal["state"] == {"cursor": cursor}
            assert signal["kind"] == "user"
            assert "gone" not in signal

        # A newcomer is told who is here, right after the backlog.
        with Subscription(url, notebook) as cy:
            first, second = cy.next(), cy.next()
            assert first.event == "events" and first.id == "1"
            assert second.event == "presence"
            assert second.json()["client_id"] == "tab-ada"
            assert second.json()["state"] == {"cursor": cursor}
            assert second.id is None  # a signal is not a resume point

        # Leaving says so.
        _post_presence(url, notebook, {"client_id": "tab-ada", "gone": True})
        assert bob.next_of("presence").json() == {
            "client_id": "tab-ada",
            "actor": "anonymous",
            "gone": True,
        }

        # So does going quiet: the relay expires the signal after its ttl.
        posted = time.monotonic()
        _post_presence(url, notebook, {"client_id": "tab-eve", "state": {}, "ttl": 0.5})
        assert bob.next_of("presence").json()["client_id"] == "tab-eve"
        gone = bob.next_of("presence", timeout=5).json()
        assert gone == {"client_id": "tab-eve", "actor": "anonymous", "gone": True}
        assert time.monotonic() - posted >= 0.5

        # Nobody is left for a newcomer to hear about.
        with Subscription(url, notebook) as dan:
            assert dan.next().event == "events"
            _post_presence(url, notebook, {"client_id": "tab-fay", "state": {}, "ttl": 30})
            assert dan.next_of("presence").json()["client_id"] == "tab-fay"
        # Events and signals share the stream; events keep their order.
        response = httpx.post(f"{url}/api/notebooks/{notebook}/events", json={"events": [_cell(1)]})
        assert response.status_code == 200
        received, _ = ada.events_until(2)
        assert [e["seq"] for e in received] == [2]


#: A payload per event large enough that a stalled reader's socket buffers
#: fill after a few batches (the stalled reader also shrinks its receive buffer).
_BIG = 512 * 1024


def _stall_bytes() -> int:
    """Comfortably more than all the buffering between the relay and a stalled reader.

    That is mostly the relay's socket send buffer, which Linux grows up to
    ``tcp_wmem``'s maximum (4 MiB by default); the rest (the stalled reader's
    shrunken receive buffer, the transport's, the queue) is a few batches.
    """
    try:
        with open("/proc/sys/net/ipv4/tcp_wmem") as limits:
            send_buffer_max = int(limits.read().split()[2])
    except (OSError, ValueError, IndexError):
        send_buffer_max = 4 * 1024 * 1024
    return 2 * send_buffer_max + 16 * _BIG


def test_slow_subscriber_is_told_to_resync_without_slowing_anyone(relay_thread) -> None:
    url = relay_thread(auth=False, subscriber_queue=4).url
    notebook = _create_notebook(url)
    small_buffer = [(socket.SOL_SOCKET, socket.SO_RCVBUF, 16 * 1024)]
    with (
        Subscription(url, notebook) as fast,
        Subscription(url, notebook, socket_options=small_buffer) as slow,
    ):
        got, _ = slow.events_until(1)
        fast.events_until(1)
        slow.pause()  # still connected, no longer reading

        # Many separate batches, each waited for by the fast reader: a reader
        # that keeps up never falls behind, however slow its neighbour is.
        latencies = []
        with httpx.Client(base_url=url, timeout=10) as client:
            for index in range(_stall_bytes() // _BIG):
                started = time.monotonic()
                response = client.post(
                    f"/api/notebooks/{notebook}/events", json={"events": [_cell(index, "x" * _BIG)]}
                )
                latencies.append(time.monotonic() - started)
                assert response.status_code == 200, response.text
                head = response.json()["head"]
                received, _ = fast.events_until(head)
                assert [e["seq"] for e in received] == [head]
        log = _pull_all(url, notebook)
        assert len(log) == head

        # The stalled reader gets what was already on its way, in order, then
        # a resync from exactly where that ends -- or its connection closes.
        slow.resume()
        while True:
            message = slow.next(timeout=10)
            if isinstance(message, Closed):
                assert message.error is None
                resync = None
                break
            if message.event == "resync":
                resync = message.json()
                assert slow.next(timeout=10) == Closed(None)  # and the stream ends
                break
            if message.event == "events":
                got.extend(message.json())
        assert got == log[: len(got)]
        assert len(got) < head, "the stalled reader was never behind"
        if resync is not None:
            assert resync == {"after": len(got)}

        # Resuming from there completes the log without a gap.
        with Subscription(url, notebook, after=len(got)) as again:
            rest, _ = again.events_until(head)
            assert got + rest == log

        # The writer was never held up by the stalled reader (a push that waits
        # for a socket would stall for good here, not take a little longer).
        assert max(latencies) < 5.0
        slowest = max(latencies) * 1000
        print(
            f"\nstalled reader: {len(got)} of {head}, then {resync}; slowest push {slowest:.0f} ms"
        )

        # The fast reader is still being served.
        response = httpx.post(
            f"{url}/api/notebooks/{notebook}/events", json={"events": [_cell(10_000)]}
        )
        assert fast.next_of("events").json()[0]["seq"] == head + 1


def _hub(relay: Any) -> Any:
    """The relay's fan-out, for the one question a socket cannot answer: who is still subscribed."""
    return relay.server.config.app.state.services.hub


def _wait_for(condition: Any, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def test_streams_release_their_subscribers(relay_thread) -> None:
    relay = relay_thread(auth=False)
    url = relay.url
    notebook = _create_notebook(url)
    hub = _hub(relay)

    # A HEAD answers with headers alone and never streams: it must not subscribe.
    for _ in range(3):
        response = httpx.head(stream_url(url, notebook))
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
    assert hub.subscriber_count(notebook) == 0

    # A client that goes away is forgotten, whether it was reading or stalled.
    readers = [Subscription(url, notebook) for _ in range(3)]
    for reader in readers:
        reader.events_until(1)
    assert hub.subscriber_count(notebook) == 3
    readers[1].pause()
    for reader in readers:
        reader.close()
    assert _wait_for(lambda: hub.subscriber_count(notebook) == 0), hub.subscriber_count(notebook)

    # A Last-Event-ID that is not a seq is a 400, never a 500 -- including
    # digits that are not ASCII ('²' passes str.isdigit but not int()).
    port = int(url.rsplit(":", 1)[1])
    for value in (b"\xb2", b"12\xb3", b"-1", b"1.5", b"9" * 17):
        with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
            raw.sendall(
                f"GET /api/notebooks/{notebook}/stream HTTP/1.1\r\n".encode()
                + b"Host: x\r\nConnection: close\r\n"
                + b"Last-Event-ID: "
                + value
                + b"\r\n\r\n"
            )
            answer = b""
            while chunk := raw.recv(65536):
                answer += chunk
        head, _, body = answer.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 400 "), (value, head[:40])
        assert json.loads(body)["error"] == "invalid_last_event_id"
    # With ?after=, a stray Last-Event-ID is ignored rather than trusted.
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        raw.sendall(
            f"GET /api/notebooks/{notebook}/stream?after=0 HTTP/1.1\r\nHost: x\r\n".encode()
            + b"Last-Event-ID: \xb2\r\n\r\n"
        )
        answer = b""
        while b"\nid: 1" not in answer:
            chunk = raw.recv(65536)
            assert chunk, answer
            answer += chunk
        assert answer.startswith(b"HTTP/1.1 200 ")
    assert _wait_for(lambda: hub.subscriber_count(notebook) == 0)


@pytest.mark.slow
def test_a_relay_shutting_down_answers_its_long_polls_first(relay_process) -> None:
    """SIGTERM: a kernel waiting in a long poll gets an answer, not a cut connection."""
    relay = relay_process("--no-auth", "--kernels", "none")
    notebook = httpx.post(f"{relay.url}/api/notebooks", json={}).json()["id"]
    answers: list[httpx.Response | Exception] = []

    def poll() -> None:
        try:
            answers.append(
                httpx.get(
                    f"{relay.url}/api/notebooks/{notebook}/events?after=1&wait=60", timeout=30
                )
            )
        except httpx.HTTPError as error:
            answers.append(error)

    waiter = threading.Thread(target=poll)
    waiter.start()
    time.sleep(0.5)  # the poll is waiting
    assert relay.proc is not None
    relay.proc.terminate()
    waiter.join(20)
    relay.proc.wait(20)
    [answer] = answers
    assert isinstance(answer, httpx.Response), answer
    assert answer.status_code == 200 and answer.json() == {"events": [], "head": 1}
