"""Kernel benchmark: start-up, time to first output, throughput, a flood of output, interrupt.

    .venv/bin/python -m bench.kernel                   # full run, about 2 minutes
    .venv/bin/python -m bench.kernel --quick           # smoke run, about 40 s
    .venv/bin/python -m bench.kernel --only latency    # one part (repeatable)

Everything is real: the relay runs as a process (``anode serve --kernels
none``, ``bench.harness``), and each kernel is a Node process started the way
``anode kernel`` starts one (``kernel_headless.launch.node.start_node_kernel``),
with its Pyodide memory snapshot cached in a directory of this run. The
script plays the person pressing Run: it pushes ``executionRequested`` (and
``interruptRequested``) and watches the log for what the kernel writes back,
with a long-poll subscriber in a thread (``bench.follower``) and, for the
latency, an SSE subscriber in its own process (``bench.subscribers``). Each
arrival is also set against the relay's own ``ts`` of the events, which
leaves out the subscriber's last hop and splits a latency into its steps.

Clocks: every figure is a difference of ``time.time()`` readings on this one
machine (the relay stamps ``ts`` with it too). The script prints figures, the
CPU the relay and the kernel used, and a table against the targets; it never
asserts a timing.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

if __package__ in (None, ""):  # run as a file: make the ``bench`` package importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx

from bench.follower import Arrival, LogFollower
from bench.harness import REPO_ROOT, Relay, create_notebook, http_client, push
from bench.ipykernel_peer import ipykernel_latencies
from bench.report import Report, median, p50_p99, percentile, say
from bench.subscribers import SubscriberProcess
from bench.workload import Event, event_id
from kernel_headless.launch import node as launcher
from kernel_headless.launch.node import ensure_snapshot, snapshot_dir, start_node_kernel
from kernel_headless.launch.spec import KernelSpec

_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
_READY = "anode kernel ready: "


@dataclass(frozen=True)
class Scale:
    """How many times each measurement is repeated."""

    cold_starts: int
    snapshot_starts: int
    bare_cold: int
    bare_snapshot: int
    latency_warmup: int
    latency_runs: int
    interrupts: int
    throughput_cells: int = 500
    flood_lines: int = 100_000


FULL = Scale(
    cold_starts=2,
    snapshot_starts=7,
    bare_cold=2,
    bare_snapshot=5,
    latency_warmup=20,
    latency_runs=200,
    interrupts=10,
)
QUICK = Scale(
    cold_starts=1,
    snapshot_starts=3,
    bare_cold=1,
    bare_snapshot=2,
    latency_warmup=10,
    latency_runs=60,
    interrupts=4,
)


# --- processes and what they cost -------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    """User + system time of a process and all its threads (Node's worker included)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS


class KernelProcess:
    """A Node kernel for one notebook, its stdout read in a thread for the ready line."""

    def __init__(self, relay: Relay, notebook: str, cache_dir: Path, log: Path) -> None:
        self.spec = KernelSpec(relay=relay.url, notebook=notebook, cache_dir=cache_dir)
        self.log = log
        self._stderr: TextIO = log.open("w")
        self.ready: dict[str, Any] = {}  # the ready line's JSON: from, load_seconds, seconds
        self.ready_at = math.nan
        self._ready = threading.Event()
        self.started = time.time()
        self.proc = start_node_kernel(
            self.spec, stdout=subprocess.PIPE, stderr=self._stderr, text=True
        )
        threading.Thread(target=self._read_stdout, daemon=True).start()

    @property
    def session_id(self) -> str:
        return self.spec.session_id

    def _read_stdout(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            if line.startswith(_READY) and not self._ready.is_set():
                self.ready_at = time.time()
                self.ready = json.loads(line[len(_READY) :])
                self._ready.set()

    def wait_ready(self, follower: LogFollower, timeout: float = 90.0) -> Arrival:
        """The ready line, then this session's ``kernelSessionStarted`` as the follower saw it."""
        deadline = time.monotonic() + timeout
        while not self._ready.wait(0.2):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self._stderr.flush()
                tail = self.log.read_text()[-2_000:]
                raise RuntimeError(f"the kernel did not start; its stderr ends:\n{tail}")
        return follower.wait_for("kernelSessionStarted", self.session_id, timeout)

    def stop(self) -> None:
        """SIGTERM, as Ctrl+C: the kernel ends its session and exits."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._stderr.close()


class CpuUse:
    """CPU seconds the relay and a kernel used over a ``with`` block, and its wall time."""

    def __init__(self, relay: Relay, kernel: KernelProcess) -> None:
        self._pids = (relay.proc.pid if relay.proc else 0, kernel.proc.pid)
        self.relay = self.kernel = self.wall = 0.0

    def __enter__(self) -> CpuUse:
        self._start = (*map(cpu_seconds, self._pids), time.time())
        return self

    def __exit__(self, *exc: object) -> None:
        relay, kernel = map(cpu_seconds, self._pids)
        self.relay = relay - self._start[0]
        self.kernel = kernel - self._start[1]
        self.wall = time.time() - self._start[2]

    def per(self, count: int, unit: str) -> str:
        """``CPU per <unit>: relay x ms, kernel y ms (a% and b% of a core)``."""
        relay, kernel = self.relay / count * 1000, self.kernel / count * 1000
        busy = f"{100 * self.relay / self.wall:.0f}% and {100 * self.kernel / self.wall:.0f}%"
        return f"CPU per {unit}: relay {relay:.1f} ms, kernel {kernel:.1f} ms ({busy} of a core)"


@dataclass
class Bench:
    """What every part shares: the relay, a client, the snapshot cache, a work directory."""

    relay: Relay
    client: httpx.Client
    cache_dir: Path
    workdir: Path
    kernels: int = 0

    def notebook(self, title: str) -> tuple[str, str, int]:
        """A new notebook with one code cell: ``(notebook, cell, head)``."""
        notebook = create_notebook(self.client, title)
        cell = f"c{event_id()[:12]}"
        args = {"cell_id": cell, "cell_type": "code", "after": None, "source": ""}
        head = push(self.client, notebook, [_event("cellCreated", **args)])["head"]
        return notebook, cell, head

    def kernel(self, notebook: str, cache_dir: Path | None = None) -> KernelProcess:
        self.kernels += 1
        log = self.workdir / f"kernel-{self.kernels}.log"
        return KernelProcess(self.relay, notebook, cache_dir or self.cache_dir, log)

    def request(self, notebook: str, cell: str, source: str) -> tuple[str, float, float]:
        """Push one ``executionRequested``: ``(execution_id, sent, acknowledged)``."""
        execution = _execution_id()
        event = _event("executionRequested", execution_id=execution, cell_id=cell, source=source)
        sent = time.time()
        push(self.client, notebook, [event])
        return execution, sent, time.time()


def _event(name: str, **args: Any) -> Event:
    return {"id": event_id(), "name": name, "v": 1, "args": args}


def _execution_id() -> str:
    return f"x{event_id()[:16]}"


def _ms(seconds: list[float]) -> list[float]:
    return [s * 1000 for s in seconds]


# --- 1. start-up --------------------------------------------------------------------------


def bench_ready(bench: Bench, scale: Scale, report: Report) -> None:
    say(
        "\n1. kernel start: process start -> kernelSessionStarted in the log (first claim"
        " possible), and -> the first output of a print(1) that was waiting"
    )
    runs: dict[str, list[dict[str, float]]] = {"cold": [], "snapshot": []}
    # The first cold start fills the cache that the snapshot starts (and later parts) use.
    plan = [bench.cache_dir]
    plan += [bench.workdir / f"cold-cache-{i}" for i in range(1, scale.cold_starts)]
    plan += [bench.cache_dir] * scale.snapshot_starts
    for index, cache_dir in enumerate(plan):
        if index >= scale.cold_starts:  # the snapshot the first cold start's maker is making
            ensure_snapshot(
                KernelSpec(relay=bench.relay.url, notebook="bench", cache_dir=cache_dir), wait=True
            )
        run = _start_once(bench, cache_dir)
        runs[run.pop("from")].append(run)
    for kind, label in (("cold", "cold (empty cache)"), ("snapshot", "from the snapshot")):
        done = runs[kind]
        if not done:
            continue
        m = {key: median([r[key] for r in done]) for key in done[0]}
        each = ", ".join(f"{r['session']:.2f}" for r in done)
        say(f"   {label}, {len(done)} starts: to session {each} s; median {m['session']:.3f} s")
        say(
            f"      medians: ready line {m['ready_line']:.3f} s (the host's own clock"
            f" {m['host']:.3f} s, of which Pyodide in the worker {m['load']:.3f} s);"
            f" session stored (relay ts) {m['session_ts']:.3f} s"
        )
        say(f"      first output {m['first_output']:.3f} s; kernel CPU {m['cpu']:.2f} s")
    if len(runs["cold"]) > scale.cold_starts:
        say(
            "   (a start planned from the snapshot loaded cold: the kernel's Python files changed"
            " during the run, which changes the snapshot's name)"
        )
    bare = _bare_pyodide(bench, scale)
    for kind, name, target in (("snapshot", "from snapshot", 500.0), ("cold", "cold", None)):
        if runs[kind]:
            value = median([r["session"] for r in runs[kind]]) * 1000
            figure = f"kernel ready, {name} (median of {len(runs[kind])})"
            report.add(figure, value, "ms", target, higher_is_better=False)
    if runs["snapshot"]:
        first = median([r["first_output"] for r in runs["snapshot"]]) * 1000
        report.add("start -> first output of a waiting cell", first, "ms")
    for kind, loads in bare.items():
        report.add(f"bare Node loadPyodide, {kind} (median)", median(loads) * 1000, "ms")


def _start_once(bench: Bench, cache_dir: Path) -> dict[str, Any]:
    """Start a kernel on a new notebook where a ``print(1)`` waits; seconds from the spawn."""
    notebook, cell, head = bench.notebook("start-up")
    execution = _execution_id()
    request = _event("executionRequested", execution_id=execution, cell_id=cell, source="print(1)")
    head = push(bench.client, notebook, [request])["head"]
    with LogFollower(bench.relay.url, notebook, after=head) as follower:
        kernel = bench.kernel(notebook, cache_dir)
        try:
            session = kernel.wait_ready(follower)
            output = follower.wait_for("streamAppended", execution)
            cpu = cpu_seconds(kernel.proc.pid)
        finally:
            kernel.stop()
    t0 = kernel.started
    return {
        "from": kernel.ready["from"],
        "session": session.received - t0,
        "session_ts": session.ts - t0,
        "ready_line": kernel.ready_at - t0,
        "host": float(kernel.ready["seconds"]),
        "load": float(kernel.ready["load_seconds"]),
        "first_output": output.received - t0,
        "cpu": cpu,
    }


# Pyodide alone, in Node's main thread, loaded as the kernel's worker loads it.
_BARE_SCRIPT = """
import fs from "node:fs";
const { loadPyodide } = await import("pyodide/pyodide.mjs");
const file = process.env.ANODE_BENCH_SNAPSHOT;
const options = file ? { _loadSnapshot: fs.readFileSync(file) } : {};
const started = performance.now();
const pyodide = await loadPyodide(options);
const load_s = (performance.now() - started) / 1000;
pyodide.runPython("1 + 1");
console.log(JSON.stringify({ load_s }));
"""


def _bare_pyodide(bench: Bench, scale: Scale) -> dict[str, list[float]]:
    """``loadPyodide()`` cold and from the kernel's snapshot, each in a fresh ``node``.

    With the V8 flags the kernel's ``node`` gets, so the figures compare.
    """
    snapshots = sorted(snapshot_dir(bench.cache_dir).glob("kernel-pyodide-*.snapshot"))
    v8_flags = list(getattr(launcher, "NODE_V8_FLAGS", ()))
    plan: list[tuple[str, Path | None]] = [("cold", None)] * scale.bare_cold
    if snapshots:
        plan += [("snapshot", snapshots[-1])] * scale.bare_snapshot
    loads: dict[str, list[float]] = {"cold": [], "snapshot": []}
    walls: dict[str, list[float]] = {"cold": [], "snapshot": []}
    for kind, snapshot in plan:
        env = {**os.environ, "ANODE_BENCH_SNAPSHOT": str(snapshot or "")}
        started = time.time()
        done = subprocess.run(
            ["node", *v8_flags, "--input-type=module", "-e", _BARE_SCRIPT],
            cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=120, check=True,
        )  # fmt: skip
        walls[kind].append(time.time() - started)
        loads[kind].append(json.loads(done.stdout.strip().splitlines()[-1])["load_s"])
    for kind, values in loads.items():
        if values:
            each = ", ".join(f"{x:.2f}" for x in values)
            say(
                f"   bare Node, Pyodide alone, {kind}: loadPyodide {each} s (median"
                f" {median(values):.3f} s); whole node process {median(walls[kind]):.3f} s"
            )
    return {kind: values for kind, values in loads.items() if values}


# --- 2. request -> first output -------------------------------------------------------------


@dataclass(frozen=True)
class _Run:
    """One sequential ``print(1)``: when the bench sent and saw things, and the relay's ts."""

    sent: float
    acked: float
    requested: float  # relay ts of executionRequested
    claimed: float  # ... of executionAssigned (pushed with executionStarted)
    output: float  # ... of the first streamAppended
    completed: float  # ... of executionCompleted
    output_seen: float  # when the long-poll subscriber had the output
    output_id: str


#: Steps of a run, from the relay's ts (and the subscriber's clock for the last hop).
_STEPS = (
    ("push of the request: sent -> ack", "sent", "acked"),
    ("requested -> claim stored (feed, fold, claim push)", "requested", "claimed"),
    ("claim stored -> output stored (echo, fold, run, push)", "claimed", "output"),
    ("output stored -> completion stored", "output", "completed"),
    ("output stored -> long-poll subscriber has it", "output", "output_seen"),
)


def bench_latency(bench: Bench, scale: Scale, report: Report) -> None:
    say(
        f"\n2. latency: executionRequested acknowledged -> first output of print(1),"
        f" {scale.latency_runs} sequential runs after {scale.latency_warmup} to warm up"
    )
    notebook, cell, head = bench.notebook("latency")
    runs: list[_Run] = []
    with LogFollower(bench.relay.url, notebook, after=head) as follower:
        kernel = bench.kernel(notebook)
        try:
            kernel.wait_ready(follower)
            for _ in range(scale.latency_warmup):
                execution, _, _ = bench.request(notebook, cell, "print(1)")
                follower.wait_for("executionCompleted", execution)
            after = follower.head
            stream = f"/api/notebooks/{notebook}/stream?after={after}"
            with SubscriberProcess(bench.relay.port, [stream]) as sse:
                with CpuUse(bench.relay, kernel) as cpu:
                    for _ in range(scale.latency_runs):
                        execution, sent, acked = bench.request(notebook, cell, "print(1)")
                        runs.append(_latency_run(follower, execution, sent, acked))
                        time.sleep(0.005)  # a pause, as between two presses of Run
                sse.wait_for(follower.head - after, timeout=10)  # the last events too
                by_sse = sse.finish()["arrivals"][0]
        finally:
            kernel.stop()
    polled = _ms([r.output_seen - r.acked for r in runs])
    streamed = _ms([by_sse[r.output_id] - r.acked for r in runs if r.output_id in by_sse])
    stored = _ms([r.output - r.requested for r in runs])
    say(f"   ack -> first output, long poll: {p50_p99(polled)}  max {max(polled):.1f} ms")
    say(f"   ack -> first output, SSE:       {p50_p99(streamed)}  ({len(streamed)} seen)")
    say(f"   relay ts, requested -> output:  {p50_p99(stored)}")
    say("   where the time goes (p50, p99):")
    for label, start, end in _STEPS:
        values = _ms([getattr(r, end) - getattr(r, start) for r in runs])
        p50, p99 = percentile(values, 50), percentile(values, 99)
        say(f"      {label:<56} {p50:6.2f} {p99:7.2f} ms")
    say(f"   {cpu.per(len(runs), 'run')}")
    for name, values in (("long poll", polled), ("SSE", streamed)):
        for q, target in ((50, 20), (99, 60)):
            figure = f"request -> first output p{q} ({name})"
            report.add(figure, percentile(values, q), "ms", target, higher_is_better=False)
    report.add("request -> first output p50 (relay ts)", percentile(stored, 50), "ms")
    _against_ipykernel(streamed, scale, report)


def _against_ipykernel(streamed: list[float], scale: Scale, report: Report) -> None:
    """The same round trip with a local ipykernel over ZMQ, and the ratio."""
    peer = ipykernel_latencies(scale.latency_runs, scale.latency_warmup)
    if isinstance(peer, str):
        say(f"   ipykernel: not measured ({peer})")
        return
    ms = _ms(peer)
    say(f"   ipykernel over ZMQ, execute -> first stream: {p50_p99(ms)}")
    for q in (50, 99):
        ratio = percentile(streamed, q) / percentile(ms, q)
        say(f"   Anode (SSE) / ipykernel, p{q}: {ratio:.2f}x")
        report.add(
            f"request -> first output p{q}, Anode / ipykernel",
            ratio,
            "x",
            2.0,
            higher_is_better=False,
        )


def _latency_run(follower: LogFollower, execution: str, sent: float, acked: float) -> _Run:
    completed = follower.wait_for("executionCompleted", execution)
    output = follower.wait_for("streamAppended", execution)
    return _Run(
        sent=sent,
        acked=acked,
        requested=follower.wait_for("executionRequested", execution).ts,
        claimed=follower.wait_for("executionAssigned", execution).ts,
        output=output.ts,
        completed=completed.ts,
        output_seen=output.received,
        output_id=output.event["id"],
    )


# --- 3. throughput ------------------------------------------------------------------------


def bench_throughput(bench: Bench, scale: Scale, report: Report) -> None:
    n = scale.throughput_cells
    say(f"\n3. throughput: {n} executions of `1` requested in one push, run by one kernel")
    notebook, cell, head = bench.notebook("throughput")
    ids = [_execution_id() for _ in range(n)]
    requests = [_event("executionRequested", execution_id=x, cell_id=cell, source="1") for x in ids]
    with LogFollower(bench.relay.url, notebook, after=head) as follower:
        kernel = bench.kernel(notebook)
        try:
            kernel.wait_ready(follower)
            for _ in range(5):  # warm up
                execution, _, _ = bench.request(notebook, cell, "1")
                follower.wait_for("executionCompleted", execution)
            with CpuUse(bench.relay, kernel) as cpu:
                push(bench.client, notebook, requests)
                acked = time.time()
                last = follower.wait_for("executionCompleted", ids[-1], timeout=300)
            requested = follower.wait_for("executionRequested", ids[0])
            completed = [follower.wait_for("executionCompleted", x) for x in ids]
            claimed = [follower.wait_for("executionAssigned", x) for x in ids]
            wanted = set(ids)
            written = [
                a for a in follower.snapshot()
                if a.event["args"].get("execution_id") in wanted
                and a.event["name"] != "executionRequested"
            ]  # fmt: skip
        finally:
            kernel.stop()
    wall = last.received - acked
    statuses = Counter(a.event["args"]["status"] for a in completed)
    say(
        f"   all {n} completed {wall:.2f} s after the ack: {n / wall:,.0f} executions/s"
        f" (relay ts: {n / (last.ts - requested.ts):,.0f}/s); statuses {dict(statuses)}"
    )
    names = Counter(a.event["name"] for a in written)
    pushes = len({a.ts for a in written})  # the relay stamps one ts per push
    say(
        f"   {len(written):,} events written by the kernel in about {pushes:,} pushes:"
        f" {', '.join(f'{name} {count}' for name, count in names.items())}"
    )
    say(f"   {cpu.per(n, 'execution')}")
    # An execution's cycle, from the relay's ts: its claim -> its completion -> the next claim.
    busy = _ms([done.ts - claim.ts for claim, done in zip(claimed, completed, strict=False)])
    gap = _ms([claim.ts - done.ts for done, claim in zip(completed, claimed[1:], strict=False)])
    together = sum(1 for g in gap if g == 0)
    say(
        f"   per execution (relay ts, p50/p99): claim -> completion stored"
        f" {percentile(busy, 50):.1f}/{percentile(busy, 99):.1f} ms; completion -> next claim"
        f" {percentile(gap, 50):.1f}/{percentile(gap, 99):.1f} ms"
        f" ({together} of {len(gap)} next claims pushed with the completion)"
    )
    report.add(f"throughput, {n} trivial cells, one kernel", n / wall, "executions/s", 100)


# --- 4. a flood of output ------------------------------------------------------------------


def bench_flood(bench: Bench, scale: Scale, report: Report) -> None:
    lines = scale.flood_lines
    source = f"for i in range({lines}):\n    print(i)"
    say(f"\n4. flood: one cell printing {lines:,} lines ({source!r})")
    notebook, cell, head = bench.notebook("flood")
    with LogFollower(bench.relay.url, notebook, after=head) as follower:
        kernel = bench.kernel(notebook)
        try:
            kernel.wait_ready(follower)
            with CpuUse(bench.relay, kernel) as cpu:
                execution, _, acked = bench.request(notebook, cell, source)
                done = follower.wait_for("executionCompleted", execution, timeout=300)
            mine = follower.about(execution)
        finally:
            kernel.stop()
    streams = [a for a in mine if a.event["name"] == "streamAppended"]
    text = "".join(
        a.event["args"]["text"] for a in streams if a.event["args"]["stream"] == "stdout"
    )
    expected = "".join(f"{i}\n" for i in range(lines))
    started = next(a for a in mine if a.event["name"] == "executionStarted")
    stored = _stored(bench.relay.data_dir / "anode.db", notebook, execution)
    stored.pop("executionRequested", None)
    events = sum(count for count, _ in stored.values())
    size = sum(size for _, size in stored.values())
    wall = done.received - acked
    chunk = median([len(a.event["args"]["text"]) for a in streams]) / 1000
    pushes = len({a.ts for a in mine if a.event["name"] != "executionRequested"})
    intact = "complete" if text == expected else f"DIFFERS ({len(text):,} characters)"
    say(
        f"   {events:,} events written by the kernel ({len(streams)} streamAppended, median"
        f" {chunk:,.1f} k characters each) in about {pushes} pushes; text {intact}"
    )
    say(f"   stored: {size / 1e6:,.2f} MB of event bodies for {len(expected) / 1e6:.2f} MB of text")
    say(
        f"   wall {wall:.2f} s (ack -> completion seen); first output"
        f" {streams[0].received - acked:.3f} s after the ack; started -> completed stored"
        f" {done.ts - started.ts:.2f} s; status {done.event['args']['status']}"
    )
    say(f"   CPU: relay {cpu.relay:.2f} s, kernel {cpu.kernel:.2f} s")
    report.count(f"{lines // 1000}k-line cell: events written", events)
    report.add(f"{lines // 1000}k-line cell: bytes stored", size / 1e6, "MB")
    report.add(f"{lines // 1000}k-line cell: wall time", wall, "s")


def _stored(path: Path, notebook: str, execution: str) -> dict[str, tuple[int, int]]:
    """Per event name: how many events about ``execution`` the log holds, and their body bytes."""
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        rows = db.execute(
            "SELECT json_extract(body, '$.name'), count(*), sum(length(CAST(body AS BLOB)))"
            " FROM events WHERE notebook = ? AND json_extract(body, '$.args.execution_id') = ?"
            " GROUP BY 1",
            (notebook, execution),
        ).fetchall()
    finally:
        db.close()
    return {name: (count, size) for name, count, size in rows}


# --- 5. interrupt -----------------------------------------------------------------------------


def bench_interrupt(bench: Bench, scale: Scale, report: Report) -> None:
    say(
        "\n5. interrupt: `while True: pass`, interruptRequested acknowledged ->"
        f" executionCompleted, {scale.interrupts} times"
    )
    notebook, cell, head = bench.notebook("interrupt")
    seen: list[float] = []
    stored: list[float] = []
    lost = 0
    statuses: Counter[str] = Counter()
    with LogFollower(bench.relay.url, notebook, after=head) as follower:
        kernel = bench.kernel(notebook)
        try:
            kernel.wait_ready(follower)
            for _ in range(scale.interrupts):
                execution, _, _ = bench.request(notebook, cell, "while True: pass")
                follower.wait_for("executionStarted", execution)
                time.sleep(0.2)  # let it spin
                interrupt = [_event("interruptRequested", execution_id=execution)]
                push(bench.client, notebook, interrupt)
                acked = time.time()
                try:
                    done = follower.wait_for("executionCompleted", execution, timeout=_LOST)
                except TimeoutError:  # the interrupt was lost: ask again, as a person would
                    lost += 1
                    again = _event("interruptRequested", execution_id=execution)  # a new id
                    push(bench.client, notebook, [again])
                    done = follower.wait_for("executionCompleted", execution)
                else:
                    asked = follower.wait_for("interruptRequested", execution)
                    seen.append(done.received - acked)
                    stored.append(done.ts - asked.ts)
                statuses[done.event["args"]["status"]] += 1
        finally:
            kernel.stop()
    each = ", ".join(f"{x * 1000:.0f}" for x in seen)
    say(f"   ack -> completion seen: {each} ms; median {median(seen) * 1000:.1f} ms")
    say(
        f"   relay ts, interruptRequested -> executionCompleted: median"
        f" {median(stored) * 1000:.1f} ms; statuses {dict(statuses)}"
    )
    if lost:
        say(
            f"   {lost} of {scale.interrupts} interrupts had no effect in {_LOST:.0f} s; a second"
            " interruptRequested stopped the cell (left out of the figures above)"
        )
    report.add(f"interrupt -> cancelled (median of {len(seen)})", median(seen) * 1000, "ms")
    report.count("interrupts lost (needed a second request)", lost, must_be=0)


#: Seconds after which an interrupt that has not stopped the cell counts as lost.
_LOST = 5.0


# --- main ---------------------------------------------------------------------------------------

PARTS = {
    "ready": bench_ready,
    "latency": bench_latency,
    "throughput": bench_throughput,
    "flood": bench_flood,
    "interrupt": bench_interrupt,
}


def _make_snapshot(bench: Bench) -> None:
    """Start one kernel with the empty cache, so the parts' kernels start from its snapshot."""
    notebook, _, head = bench.notebook("snapshot")
    with LogFollower(bench.relay.url, notebook, after=head) as follower:
        kernel = bench.kernel(notebook)
        try:
            kernel.wait_ready(follower)
        finally:
            kernel.stop()


def _load() -> str:
    """The 1-minute load average: other work on the machine skews every figure."""
    return Path("/proc/loadavg").read_text().split()[0]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="a ~40 s run with fewer repeats")
    parser.add_argument(
        "--only", choices=list(PARTS), action="append", help="run only this part (repeatable)"
    )
    args = parser.parse_args(argv)
    scale = QUICK if args.quick else FULL
    parts = [part for part in PARTS if part in (args.only or PARTS)]
    report = Report()
    started = time.perf_counter()
    load_before = _load()
    mode = "quick" if args.quick else "full"
    say(f"Anode kernel benchmark ({mode}), {os.cpu_count()} CPUs, Python {sys.version.split()[0]}")
    # The relay must not start kernels of its own: `anode serve --kernels none`.
    os.environ["ANODE_KERNELS"] = "none"
    with tempfile.TemporaryDirectory(prefix="anode-bench-kernel-") as tmp:
        workdir = Path(tmp)
        relay = Relay(workdir / "relay").start()
        try:
            with http_client(relay.url) as client:
                bench = Bench(relay, client, workdir / "cache", workdir)
                if "ready" not in parts:
                    _make_snapshot(bench)
                for part in parts:
                    PARTS[part](bench, scale, report)
        finally:
            relay.stop()
    report.print()
    elapsed = time.perf_counter() - started
    say(f"\n(ran in {elapsed:.0f} s; load average {load_before} before, {_load()} after)")


if __name__ == "__main__":
    main()
