"""Relay benchmark: push throughput, fan-out latency, cold/warm open, memory per stream.

    .venv/bin/python -m bench.relay                 # full run, about 1.5-2 minutes
    .venv/bin/python -m bench.relay --quick         # smoke run, about 30 s
    .venv/bin/python -m bench.relay --only fanout   # one part (repeatable): push, auth,
                                                    # fanout, open, memory, growth, edits
    .venv/bin/python -m bench.relay --only cluster --store postgresql://postgres@127.0.0.1/postgres
                                                    # 1, 2 and 4 relays on PostgreSQL
                                                    # beside SQLite (bench/cluster.py)

The relay runs as a real process (``python -m anode serve`` on a free port
and a temporary data directory, ``bench.harness``) and is measured over
loopback from other processes: writers in processes of their own (one
kept-alive raw socket each, ``bench.writers``), SSE subscribers in another (asyncio on
raw sockets, ``bench.subscribers``), so none shares a GIL with the relay or
with each other. Events are ones an editor and a kernel would push
(``bench.workload``). The script prints figures, the relay's CPU use beside
each (the machine has few cores, and whatever else runs on it shows up
there), and a table against the targets; it never asserts a timing.

Clocks: latencies within a process use ``time.perf_counter``; push-to-receive
latency crosses processes and uses ``time.time`` on this one machine.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import resource
import sqlite3
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a file: make the ``bench`` package importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx

from bench.harness import (
    CpuMeter,
    Relay,
    create_notebook,
    http_client,
    push,
)
from bench.report import Report, median, p50_p99, percentile, say
from bench.subscribers import SubscriberProcess
from bench.workload import Typist, history
from bench.writers import push_writers
from relay.config import RelayConfig


@dataclass(frozen=True)
class Scale:
    """How long and how big each measurement is."""

    push_seconds: float
    push_warmup: float
    fanout_seconds: float
    history_events: int
    cold_opens: int
    warm_opens: int
    fanout_rate: float = 200.0
    fanout_subscribers: int = 50
    rss_notebooks: int = 100
    rss_streams_per_notebook: int = 10
    growth_sizes: tuple[int, ...] = (100, 2_000, 20_000)
    growth_seconds: float = 2.0
    edits_seconds: float = 3.0


FULL = Scale(
    push_seconds=6.0,
    push_warmup=1.0,
    fanout_seconds=20.0,
    history_events=100_000,
    cold_opens=5,
    warm_opens=30,
)
QUICK = Scale(
    push_seconds=1.5,
    push_warmup=0.3,
    fanout_seconds=4.0,
    history_events=20_000,
    cold_opens=2,
    warm_opens=10,
    growth_sizes=(100, 2_000),
    growth_seconds=1.0,
    edits_seconds=1.5,
)


# --- 1. push throughput -------------------------------------------------------------


def bench_push(relay: Relay, scale: Scale, report: Report) -> None:
    say("\n1. push throughput (one notebook; each writer types in its own cells)")
    # (batch, writers) -> target; 4 single-event writers: issue 14's group-commit target.
    targets = {(100, 1): 10_000.0, (100, 4): 10_000.0, (1, 1): 1_000.0, (1, 4): 3_000.0}
    with http_client(relay.url) as client, CpuMeter(relay) as cpu:
        for batch in (100, 1):
            for writers in (1, 4):
                notebook = create_notebook(client, f"push {batch}x{writers}")
                result = push_writers(
                    relay.url, notebook, batch, writers, scale.push_seconds, scale.push_warmup
                )
                rate = result["acked"] / result["seconds"]
                pushes = result["pushes"] / result["seconds"]
                lat = [x * 1000 for x in result["latencies"]]
                busy = cpu.busy(*result["window"])
                client_busy = result["cpu_percent"]
                who = f"{writers} writer{'s' if writers > 1 else ' '}"
                say(
                    f"   batch {batch:>3} x {who}: {rate:>8,.0f} events/s {pushes:>6,.0f} pushes/s"
                    f"  push {p50_p99(lat)}  CPU: relay {busy:3.0f}%"
                    f" ({busy * 10_000 / rate:,.0f} µs/event), writers {client_busy:3.0f}%"
                )
                unit, value = ("events/s", rate) if batch == 100 else ("pushes/s", pushes)
                report.add(
                    f"push, batches of {batch}, {writers} writer(s)",
                    value,
                    unit,
                    targets[batch, writers],
                )


def _push_rate(relay: Relay, batch: int, scale: Scale) -> tuple[float, list[float]]:
    """One writer pushing batches of ``batch``: (events/s, push latencies in ms)."""
    with http_client(relay.url, token=relay.token) as client:
        notebook = create_notebook(client, f"auth {batch}")
    result = push_writers(
        relay.url, notebook, batch, 1, scale.push_seconds, scale.push_warmup, relay.token
    )
    return result["acked"] / result["seconds"], [x * 1000 for x in result["latencies"]]


def bench_auth(workdir: Path, scale: Scale, report: Report) -> None:
    """What checking a token and every event's role costs a push, against --no-auth, same run.

    The two relays take turns (three rounds each) so that a change in the
    machine's load hits both; the ratio is of the medians. The in-process
    figures time the checks alone.
    """
    say(
        "\n1b. auth overhead: one writer, a relay with tokens vs one with --no-auth (3 rounds, "
        "alternating)"
    )
    check_us, policy_us = _auth_check_costs()
    say(
        f"   in process: token check {check_us:.1f} µs per request, role checks {policy_us:.2f} "
        "µs per event"
    )
    open_relay, guarded = (
        Relay(workdir / "noauth").start(),
        Relay(workdir / "auth", auth=True).start(),
    )
    try:
        for batch in (100, 1):
            rounds = [
                (_push_rate(guarded, batch, scale), _push_rate(open_relay, batch, scale))
                for _ in range(3)
            ]
            rate = statistics.median(r[0][0] for r in rounds)
            base_rate = statistics.median(r[1][0] for r in rounds)
            lat = [x for r in rounds for x in r[0][1]]
            base_lat = [x for r in rounds for x in r[1][1]]
            say(
                f"   batch {batch:>3}: {rate:>8,.0f} events/s with tokens vs {base_rate:>8,.0f} "
                "without"
                f" (ratio {rate / base_rate:.2f}); push {p50_p99(lat)} vs {p50_p99(base_lat)}"
            )
            report.add(
                f"push with auth / without, batches of {batch}", rate / base_rate, "ratio", 0.9
            )
    finally:
        open_relay.stop()
        guarded.stop()


def _auth_check_costs() -> tuple[float, float]:
    """Microseconds per token check and per event role check, timed in this process."""
    from relay.auth import EventPolicy
    from relay.tokens import SQLiteTokens, TokenStore
    from shared_schema import NotebookState, PushedEvent, advance, stored
    from shared_schema.events import decode
    from shared_schema.ids import EventId

    async def time_checks() -> tuple[Any, float]:
        store = await TokenStore(SQLiteTokens(Path(tmp))).open()
        _, token = await store.issue("nb", "kernel")
        started = time.perf_counter()
        for _ in range(20_000):
            grant = await store.check(token)
        check_us = (time.perf_counter() - started) / 20_000 * 1e6
        await store.close()
        return grant, check_us

    with tempfile.TemporaryDirectory(prefix="anode-bench-auth-") as tmp:
        grant, check_us = asyncio.run(time_checks())
    state = NotebookState()
    setup = [
        ("kernelSessionStarted", {"session_id": "ks-1", "host": "node", "lease_seconds": 30}),
        ("cellCreated", {"cell_id": "c1"}),
        ("executionRequested", {"execution_id": "x1", "cell_id": "c1", "source": ""}),
        ("executionAssigned", {"execution_id": "x1", "session_id": "ks-1"}),
        ("executionStarted", {"execution_id": "x1", "session_id": "ks-1", "execution_count": 1}),
    ]
    for seq, (name, args) in enumerate(setup, start=1):
        advance(state, stored(seq, f"e{seq}", decode(name, 1, args), grant.actor, 0.0))
    # A kernel's outputs: the role check that reads the most state per event.
    output = decode("streamAppended", 1, {"execution_id": "x1", "stream": "stdout", "text": "."})
    events = [PushedEvent(EventId(f"o{i}"), output) for i in range(100)]
    policy = EventPolicy(grant, 10_000)
    started = time.perf_counter()
    for _ in range(2_000):
        policy(state, events)
    policy_us = (time.perf_counter() - started) / 2_000 / 100 * 1e6
    return check_us, policy_us


# --- 2. fan-out ----------------------------------------------------------------------


def bench_fanout(relay: Relay, scale: Scale, report: Report) -> None:
    rate, subs = scale.fanout_rate, scale.fanout_subscribers
    say(
        f"\n2. fan-out: 1 writer pacing {rate:.0f} single-event pushes/s"
        f" for {scale.fanout_seconds:.0f} s, {subs} SSE subscribers"
    )
    typist = Typist("fan", seed=7)
    sent: dict[str, tuple[float, float]] = {}
    with http_client(relay.url, 30) as client, CpuMeter(relay) as cpu:
        notebook = create_notebook(client, "fan-out")
        head = push(client, notebook, [typist.create_cell() for _ in range(5)])["head"]
        paths = [f"/api/notebooks/{notebook}/stream?after={head}"] * subs
        with SubscriberProcess(relay.port, paths) as subscribers:
            time.sleep(0.3)
            begin = time.perf_counter() + 0.1
            for i in range(int(rate * scale.fanout_seconds)):
                if time.perf_counter() > begin + scale.fanout_seconds:
                    break  # the relay cannot keep the pace: stop on time anyway
                delay = begin + i / rate - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)
                event = typist.edit()
                t_sent = time.time()
                push(client, notebook, [event])
                sent[event["id"]] = (t_sent, time.time())
            window = (min(s for s, _ in sent.values()), max(a for _, a in sent.values()))
            n = len(sent)
            drained = subscribers.wait_for(n * subs, timeout=15)
            result = subscribers.finish()
    elapsed = window[1] - window[0]
    to_receive, after_ack, lost, stray = [], [], 0, 0
    for arrivals in result["arrivals"]:
        for event_id, (t_sent, t_acked) in sent.items():
            got = arrivals.get(event_id)
            if got is None:
                lost += 1
                continue
            to_receive.append((got - t_sent) * 1000)
            after_ack.append((got - t_acked) * 1000)
        stray += len(set(arrivals) - set(sent))
    acks = [(a - s) * 1000 for s, a in sent.values()]
    tally = result["tally"]
    say(f"   writer: {n / elapsed:,.0f} pushes/s achieved; ack {p50_p99(acks)}")
    say(
        f"   push-to-receive: {p50_p99(to_receive)}"
        f"  max {max(to_receive, default=math.nan):.1f} ms"
        f"  (ack-to-receive: {p50_p99(after_ack)})"
    )
    say(
        f"   deliveries {len(to_receive):,}/{n * subs:,}; lost {lost},"
        f" duplicated {tally['duplicates']},"
        f" out of order {tally['out_of_order']}, resyncs {tally['resyncs']}, unexpected {stray},"
        f" streams ended {tally['ended']}{'' if drained else ' (did not drain in 15 s)'}"
    )
    busy = cpu.busy(*window)
    say(
        f"   relay CPU {busy:.0f}% ({busy * 10_000 / (n / elapsed):,.0f} µs per event fanned out"
        f" to {subs}); subscriber process CPU {100 * result['cpu_seconds'] / elapsed:.0f}%"
    )
    if n / elapsed < 0.95 * rate:
        say(
            f"   (the relay did not keep the {rate:.0f}/s pace: latencies are for the pace it kept)"
        )
    report.add(f"fan-out writer pace (paced at {rate:.0f}/s)", n / elapsed, "events/s", 0.95 * rate)
    report.add(
        f"fan-out push-to-receive p50 ({subs} subs)",
        percentile(to_receive, 50),
        "ms",
        5,
        higher_is_better=False,
    )
    report.add(
        f"fan-out push-to-receive p99 ({subs} subs)",
        percentile(to_receive, 99),
        "ms",
        25,
        higher_is_better=False,
    )
    report.count("fan-out events lost", lost, must_be=0)
    report.count("fan-out events duplicated", tally["duplicates"], must_be=0)


# --- 3. open a long notebook -----------------------------------------------------------


def _time_get(client: httpx.Client, path: str) -> tuple[float, int]:
    started = time.perf_counter()
    response = client.get(path)
    elapsed = time.perf_counter() - started
    response.raise_for_status()
    return elapsed * 1000, len(response.content)


def _cold_opens(relay: Relay, path: str, count: int) -> list[float]:
    """``GET path`` right after each of ``count`` restarts: the notebook loads from storage."""
    cold = []
    for _ in range(count):
        relay.stop()
        relay.start()
        with http_client(relay.url, 120) as client:
            cold.append(_time_get(client, path)[0])
    return cold


def _longest_tail(client: httpx.Client, notebook: str, head: int, snapshot_chars: int) -> int:
    """How many more events the relay lets pile up past its newest snapshot before it takes one.

    The relay retakes the newest snapshot once the events stored past it add up
    to ``snapshot_tail_ratio`` of its size (``relay.config``); the average stored
    event is measured on the last 1,000.
    """
    ratio = RelayConfig(data_dir=Path(".")).snapshot_tail_ratio
    recent = client.get(
        f"/api/notebooks/{notebook}/events", params={"after": head - 1_000, "limit": 1_000}
    ).json()["events"]
    sizes = [len(json.dumps(e, separators=(",", ":"), ensure_ascii=False)) for e in recent]
    average = sum(sizes) / len(sizes)
    return int(ratio * snapshot_chars / average)


def bench_open(workdir: Path, scale: Scale, report: Report) -> None:
    total = scale.history_events
    say(f"\n3. open: a notebook with {total:,} events (edits to 5 cells, a run every 60 edits)")
    relay = Relay(workdir / "open").start()
    # The history ends its kernel session: the relay opens notebooks with live
    # kernels at start-up, which would make the "cold" open below a warm one.
    events = history(total - 1)  # the relay's notebookInitialized is the first
    path = "/api/notebooks/history/snapshot"
    database = workdir / "open" / "anode.db"
    try:
        with http_client(relay.url, 120) as client:
            create_notebook(client, "history", "history")
            started = time.perf_counter()
            pushed = []
            for i in range(0, len(events), 1_000):
                sent = time.perf_counter()
                head = push(client, "history", events[i : i + 1_000])["head"]
                pushed.append(time.perf_counter() - sent)
            build = time.perf_counter() - started
            say(
                f"   built in {build:.1f} s ({len(events) / build:,.0f} events/s in pushes of"
                f" 1,000; first push {pushed[0] * 1000:.0f} ms, last {pushed[-1] * 1000:.0f} ms),"
                f" head {head:,}; relay RSS {relay.rss_mb():.0f} MB"
            )
        time.sleep(1.0)  # the relay writes snapshots in the background
        stored = _stored_snapshots(database)
        cold = _cold_opens(relay, path, scale.cold_opens)
        warm = []
        with http_client(relay.url, 120) as client:
            size = _time_get(client, path)[1]
            for _ in range(scale.warm_opens):
                warm.append(_time_get(client, path)[0])
            # Time travel from the sparse snapshots: the farthest ``at`` from one.
            travel_at = stored["seqs"][-2] - 1 if len(stored["seqs"]) > 1 else head // 2
            travel = [_time_get(client, f"{path}?at={travel_at}")[0] for _ in range(3)]
            # The longest tail the snapshot policy allows (less 5%), then cold opens again.
            extra = int(0.95 * _longest_tail(client, "history", head, stored["newest"]))
            typist = Typist("tail", seed=2, new_cell_every=10**9)
            batch = [typist.create_cell()] + [typist.edit() for _ in range(extra - 1)]
            for i in range(0, len(batch), 1_000):
                tail_head = push(client, "history", batch[i : i + 1_000])["head"]
        rss_after_open = relay.rss_mb()
        time.sleep(1.0)
        after_tail = _stored_snapshots(database)
        cold_tail = _cold_opens(relay, path, scale.cold_opens)
    finally:
        relay.stop()
    mib = 2**20
    say(
        f"   store: {stored['count']} snapshots at seqs"
        f" {', '.join(f'{q:,}' for q in stored['seqs'])};"
        f" {stored['total'] / mib:,.1f} MiB in all, newest {stored['newest'] / mib:.2f} MiB"
        f" (tail {head - stored['seq']} events); data file {stored['file'] / mib:,.1f} MiB"
    )
    each = ", ".join(f"{x:.0f}" for x in cold)
    say(f"   cold GET /snapshot (after a restart): {each} ms; median {median(cold):.0f} ms")
    say(
        f"   warm GET /snapshot: median {median(warm):.2f} ms, p99 {percentile(warm, 99):.2f} ms;"
        f" response {size / 1024:,.1f} KiB; relay RSS after open {rss_after_open:.0f} MB"
    )
    base = max((q for q in stored["seqs"] if q <= travel_at), default=0)
    say(
        f"   time travel GET /snapshot?at={travel_at:,} (warm relay; folds {travel_at - base:,}"
        f" events on the snapshot at {base:,}): median {median(travel):.0f} ms"
    )
    each = ", ".join(f"{x:.0f}" for x in cold_tail)
    say(
        f"   with {tail_head - after_tail['seq']:,} events past the newest snapshot (95% of the"
        f" longest tail the policy allows): cold {each} ms; median {median(cold_tail):.0f} ms"
    )
    report.add(
        f"open {total // 1000}k-event notebook, cold (median)",
        median(cold),
        "ms",
        100,
        higher_is_better=False,
    )
    report.add(
        f"open {total // 1000}k-event notebook + longest tail, cold",
        median(cold_tail),
        "ms",
        100,
        higher_is_better=False,
    )
    report.add(
        f"open {total // 1000}k-event notebook, warm (median)",
        median(warm),
        "ms",
        100,
        higher_is_better=False,
    )
    report.add(f"time travel, {travel_at - base:,} events past a snapshot", median(travel), "ms")
    report.add("snapshot response size", size / 1024, "KiB")
    report.add("stored snapshots", stored["total"] / mib, "MiB")


def _stored_snapshots(path: Path) -> dict[str, Any]:
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        rows = db.execute("SELECT seq, length(state) FROM snapshots ORDER BY seq").fetchall()
    finally:
        db.close()
    seq, newest = rows[-1] if rows else (0, 0)
    files = sum(p.stat().st_size for p in path.parent.glob("anode.db*"))
    return {
        "count": len(rows),
        "seqs": [q for q, _ in rows],
        "total": sum(n for _, n in rows),
        "seq": seq,
        "newest": newest,
        "file": files,
    }


# --- 4. memory with many open streams -------------------------------------------------


def bench_memory(workdir: Path, scale: Scale, report: Report) -> None:
    notebooks, per = scale.rss_notebooks, scale.rss_streams_per_notebook
    streams = notebooks * per
    say(f"\n4. memory: {notebooks} notebooks x {per} SSE subscribers = {streams:,} open streams")
    relay = Relay(workdir / "memory").start()
    try:
        time.sleep(1.0)
        idle = relay.rss_mb()
        with http_client(relay.url, 30) as client:
            typists = {}
            for i in range(notebooks):
                notebook = create_notebook(client, f"memory {i}")
                typists[notebook] = Typist(f"m{i}", seed=i)
                push(client, notebook, [typists[notebook].create_cell() for _ in range(3)])
            loaded = relay.rss_mb()
            paths = [f"/api/notebooks/{nb}/stream" for nb in typists for _ in range(per)]
            backlog = 4 * streams  # each stream first replays notebookInitialized + 3 cells
            with SubscriberProcess(relay.port, paths) as subscribers:
                subscribers.wait_for(backlog, timeout=30)
                time.sleep(1.0)
                connected = relay.rss_mb()
                for notebook, typist in typists.items():
                    push(client, notebook, [typist.edit()])
                delivered = subscribers.wait_for(backlog + streams, timeout=30)
                time.sleep(0.5)
                live = relay.rss_mb()
                peak = relay.peak_rss_mb()
                got = subscribers.finish()["tally"]["events"] - backlog
    finally:
        relay.stop()
    with_streams = max(connected, live)
    say(
        f"   relay RSS: idle {idle:.1f} MB; {notebooks} notebooks open {loaded:.1f} MB;"
        f" {streams:,} streams connected {connected:.1f} MB; after one event each {live:.1f} MB"
        f" (peak {peak:.1f} MB)"
    )
    say(
        f"   {(with_streams - loaded) * 1024 / streams:.1f} KiB per stream;"
        f" {got:,}/{streams:,} live deliveries{'' if delivered else ' (not all arrived in 30 s)'}"
    )
    report.add("relay RSS, idle", idle, "MB")
    report.add(
        f"relay RSS, {streams:,} SSE streams", with_streams, "MB", 150, higher_is_better=False
    )


def _load() -> str:
    """The 1-minute load average: other work on the machine skews every figure."""
    return Path("/proc/loadavg").read_text().split()[0]


# --- main --------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--quick", action="store_true", help="a ~30 s smoke run with smaller workloads"
    )
    parser.add_argument(
        "--only",
        choices=("push", "auth", "fanout", "open", "memory", "growth", "edits", "cluster"),
        action="append", help="run only this part (repeatable)",
    )  # fmt: skip
    parser.add_argument(
        "--store", metavar="URL",
        help="a PostgreSQL server to run the cluster part on (it makes, then drops, databases)",
    )  # fmt: skip
    args = parser.parse_args(argv)
    scale = QUICK if args.quick else FULL
    parts = args.only or ["push", "auth", "fanout", "open", "memory", "growth", "edits"]
    if args.store and not args.only:
        parts.append("cluster")
    if "cluster" in parts and not args.store:
        parser.error("the cluster part needs --store postgresql://…")
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(
        resource.RLIMIT_NOFILE, (hard, hard)
    )  # 1,000 streams need 1,000+ descriptors each side
    report = Report()
    started = time.perf_counter()
    load_before = _load()
    mode = "quick" if args.quick else "full"
    say(f"Anode relay benchmark ({mode}), {os.cpu_count()} CPUs, Python {sys.version.split()[0]}")
    with tempfile.TemporaryDirectory(prefix="anode-bench-") as tmp:
        workdir = Path(tmp)
        if "push" in parts or "fanout" in parts:
            relay = Relay(workdir / "live").start()
            try:
                if "push" in parts:
                    bench_push(relay, scale, report)
                if "fanout" in parts:
                    bench_fanout(relay, scale, report)
            finally:
                relay.stop()
        if "growth" in parts:
            from bench.growth import bench_growth

            relay = Relay(workdir / "growth").start()
            try:
                bench_growth(relay, scale.growth_sizes, scale.growth_seconds, report)
            finally:
                relay.stop()
        if "edits" in parts:
            from bench.edits import bench_edits

            relay = Relay(workdir / "edits").start()
            try:
                bench_edits(relay, scale.edits_seconds, report)
            finally:
                relay.stop()
        if "auth" in parts:
            bench_auth(workdir, scale, report)
        if "open" in parts:
            bench_open(workdir, scale, report)
        if "memory" in parts:
            bench_memory(workdir, scale, report)
        if "cluster" in parts:
            from bench.cluster import bench_cluster

            bench_cluster(args.store, workdir, scale, report)
    report.print()
    elapsed = time.perf_counter() - started
    say(f"\n(ran in {elapsed:.0f} s; load average {load_before} before, {_load()} after)")


if __name__ == "__main__":
    main()
