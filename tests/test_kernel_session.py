"""The kernel's session loop in CPython, against an in-memory log and host.

``FakeHost`` plays the host's main thread and the relay together: it stores
what the kernel pushes in one ordered log (a request per batch of queued
push messages, as ``host.mjs`` sends them) and answers with the seqs. The
long poll is in the test's hands (``feed()``), so a test can show what the
kernel does without it: fold its own pushes, or wait when someone else's
event sits before its claim. Real Node kernels are in ``test_kernel_node.py``.
"""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import Callable
from typing import Any

import pytest

from kernel_headless.bridge import HostBridge
from kernel_headless.outbox import EventIds, EventSink
from kernel_headless.session import Kernel, KernelConfig
from shared_schema import NotebookState, advance, stored_from_json

CELL = "c1"


_EVENT_IDS = itertools.count(1)


def event(name: str, **args: Any) -> dict[str, Any]:
    return {"id": f"t{next(_EVENT_IDS)}", "name": name, "v": 1, "args": args}


class FakeHost:
    """The host's main thread and the relay in one: pushes land in ``log`` in order."""

    def __init__(self) -> None:
        self.log: list[dict[str, Any]] = []
        self.requests: list[list[str]] = []  # the event names of each request
        self.bridge = HostBridge(self.post)
        self.fed = 0
        self._outbox: list[dict[str, Any]] = []
        #: Called before a request is stored: other parties' events can land first.
        self.before_request: Callable[[], None] | None = None

    def append(self, events: list[dict[str, Any]], actor: str = "user:test") -> list[int]:
        seqs = []
        for pushed in events:
            seq = len(self.log) + 1
            self.log.append({**pushed, "seq": seq, "actor": actor, "ts": 1000.0 + seq})
            seqs.append(seq)
        return seqs

    def post(self, raw: str) -> None:
        message = json.loads(raw)
        if message["type"] in ("push", "pushes"):
            first = not self._outbox
            self._outbox += message["pushes"] if message["type"] == "pushes" else [message]
            if first:  # like the host's pump: what queues up meanwhile goes in the same request
                asyncio.get_running_loop().call_soon(self._request)

    def _request(self) -> None:
        batch, self._outbox = self._outbox, []
        if self.before_request is not None:
            self.before_request()
        self.requests.append([e["name"] for message in batch for e in message["events"]])
        results = [{"id": m["id"], "seqs": self.append(m["events"], "kernel:k")} for m in batch]
        answer = {"type": "pushed", "results": results, "head": len(self.log)}
        self.bridge.receive(json.dumps(answer))

    def feed(self) -> None:
        """The long poll returns: everything past what it last brought."""
        events = self.log[self.fed :]
        if events:
            self.fed = len(self.log)
            body = json.dumps({"events": events, "head": len(self.log)})
            self.bridge.receive(json.dumps({"type": "events", "body": body, "last": self.fed}))

    def state(self) -> NotebookState:
        state = NotebookState()
        for raw in self.log:
            advance(state, stored_from_json(raw))
        return state

    def named(self, name: str) -> list[dict[str, Any]]:
        return [e for e in self.log if e["name"] == name]


async def settle(rounds: int = 50) -> None:
    for _ in range(rounds):
        await asyncio.sleep(0)


async def until(condition: Callable[[], bool], seconds: float = 5.0) -> None:
    for _ in range(int(seconds / 0.01)):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("timed out")


@pytest.fixture
def host() -> FakeHost:
    host = FakeHost()
    host.append([event("cellCreated", cell_id=CELL, cell_type="code", source="")])
    return host


async def start(host: FakeHost) -> tuple[Kernel, asyncio.Task[int]]:
    kernel = Kernel(host.bridge, KernelConfig(session_id="ks-test"))
    kernel.announce()  # as kernel_headless.main.start does
    serving = asyncio.ensure_future(kernel.serve())
    await settle()
    host.feed()
    await until(lambda: kernel.state.kernels.get("ks-test") is not None)
    return kernel, serving


async def stop(host: FakeHost, serving: asyncio.Task[int]) -> None:
    host.bridge.receive(json.dumps({"type": "shutdown"}))
    assert await asyncio.wait_for(serving, 5) == 0


def request(host: FakeHost, *sources: str) -> list[str]:
    ids = [f"x{i}" for i in range(len(host.log), len(host.log) + len(sources))]
    host.append(
        [
            event("executionRequested", execution_id=x, cell_id=CELL, source=source)
            for x, source in zip(ids, sources, strict=False)
        ]
    )
    return ids


def test_waiting_cells_run_on_one_request_each_without_the_long_poll(host: FakeHost) -> None:
    async def scenario() -> None:
        kernel, serving = await start(host)
        ids = request(host, "print(1)", "2", "print(3)")
        host.requests.clear()
        host.feed()  # the only feed: the kernel folds its own pushes from here on
        await until(lambda: len(host.named("executionCompleted")) == 3)
        assert host.fed < len(host.log)  # the log went on without the feed
        assert host.requests == [
            ["executionAssigned", "executionStarted"],
            ["streamAppended", "executionCompleted", "executionAssigned", "executionStarted"],
            ["outputAdded", "executionCompleted", "executionAssigned", "executionStarted"],
            ["streamAppended", "executionCompleted"],
        ]
        state = host.state()
        assert [state.executions[x].status for x in ids] == ["ok", "ok", "ok"]
        assert [e["args"]["text"] for e in host.named("streamAppended")] == ["1\n", "3\n"]
        # Folded from its own pushes: the first two are done, the third was running.
        assert [kernel.state.executions[x].status for x in ids] == ["ok", "ok", "executing"]
        host.feed()
        await settle()
        assert kernel.state.seq == len(host.log)
        assert {x: kernel.state.executions[x].status for x in ids} == {x: "ok" for x in ids}
        await stop(host, serving)

    asyncio.run(scenario())


def test_a_claim_with_someone_elses_event_before_it_waits_for_the_log(host: FakeHost) -> None:
    async def scenario() -> None:
        kernel, serving = await start(host)
        (x,) = request(host, "print('mine?')")
        other = "ks-other"

        def race() -> None:  # another kernel's claim lands first
            host.before_request = None
            host.append(
                [
                    event(
                        "kernelSessionStarted",
                        session_id=other,
                        host="node",
                        lease_seconds=5.0,
                        label="",
                    ),
                    event("executionAssigned", execution_id=x, session_id=other),
                    event("executionStarted", execution_id=x, session_id=other, execution_count=1),
                ],
                actor="kernel:other",
            )

        host.before_request = race
        host.feed()
        await until(lambda: len(host.named("executionAssigned")) == 2)
        await settle()
        # It cannot tell from its own pushes who won, so it waits for the log, and runs nothing.
        assert kernel.state.executions[x].status == "pending"
        assert not host.named("streamAppended")
        host.feed()
        await settle()
        assert kernel.state.executions[x].kernel_session == other
        assert not host.named("streamAppended") and not host.named("executionCompleted")
        await stop(host, serving)

    asyncio.run(scenario())


def test_an_awaiting_cell_sends_its_output_before_it_ends(host: FakeHost) -> None:
    async def scenario() -> None:
        kernel, serving = await start(host)
        request(
            host,
            "from IPython.display import display\ndisplay('early')\n"
            "import asyncio\nawait asyncio.sleep(0.3)",
        )
        host.feed()
        await until(lambda: bool(host.named("outputAdded")))
        assert not host.named("executionCompleted")
        await until(lambda: bool(host.named("executionCompleted")))
        await stop(host, serving)

    asyncio.run(scenario())


def test_event_sink_holds_only_a_cells_first_moments() -> None:
    sent: list[list[str]] = []
    bridge = HostBridge(
        lambda raw: sent.append([e["name"] for p in _pushes(raw) for e in p["events"]])
    )
    now = [0.0]
    sink = EventSink(bridge, EventIds(), "x1", clock=lambda: now[0])
    sink.stream("stdout", "a")  # no loop running: at once
    assert sent == [["streamAppended"]]

    async def held() -> None:
        sink = EventSink(bridge, EventIds(), "x2", clock=lambda: now[0])
        sink.output({"output_type": "display_data", "data": {"text/plain": "1"}, "metadata": {}})
        sink.stream("stdout", "b")
        assert len(sent) == 1  # held
        now[0] = 0.06
        sink.stream("stdout", "c")  # past the hold: everything goes
        assert sent[-1] == ["outputAdded", "streamAppended", "streamAppended"]
        sink.closed = True
        now[0] = 0.0
        late = EventSink(bridge, EventIds(), "x3", clock=lambda: now[0])
        late.stream("stdout", "d")
        assert late.take() and len(sent) == 2  # taken for the completion, not sent

    asyncio.run(held())


def _pushes(raw: str) -> list[dict[str, Any]]:
    message = json.loads(raw)
    return message["pushes"] if message["type"] == "pushes" else [message]
