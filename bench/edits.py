"""Sustained single edits with 10 subscribers: the relay against pycrdt-websocket, same run.

    .venv/bin/python -m bench.relay --only edits            # needs the bench extra
    .venv/bin/python -m bench.relay --only edits --quick

Anode: four writers, one single-event push in flight each (each edit its
own push, acknowledged once committed), and 10 SSE subscribers on the
notebook. The rate is what every subscriber received in the writers' window.

pycrdt-websocket (``bench.crdt_peer``): four writers sending one Yjs update
per edit, and 10 subscribers, at offered rates raised step by step; its
figure is the highest rate every subscriber received whole within half a
second of the step's end. It keeps nothing on disk, and acknowledges
nothing: its rate is an upper bound for what a durable version would do.

The target: Anode sustains at least 4× pycrdt-websocket's highest rate.
"""

from __future__ import annotations

from bench.harness import CpuMeter, Relay, create_notebook, http_client
from bench.report import Report, say
from bench.subscribers import SubscriberProcess
from bench.writers import push_writers

SUBSCRIBERS = 10
WRITERS = 4
#: Offered rates for the peer (updates/s, all writers together), tried in order.
PEER_RATES = tuple(float(rate) for rate in range(500, 8_001, 500))


def bench_edits(relay: Relay, seconds: float, report: Report) -> None:
    say(
        f"\n7. sustained single edits: {WRITERS} writers, {SUBSCRIBERS} subscribers;"
        " Anode against pycrdt-websocket (same run)"
    )
    anode = _anode_rate(relay, seconds)
    peer = _peer_rate(seconds)
    if peer is None:
        return
    ratio = anode / peer
    say(f"   Anode / pycrdt-websocket: {ratio:.2f}x")
    report.add(f"sustained single edits, {SUBSCRIBERS} subscribers", anode, "edits/s")
    report.add("  the same, pycrdt-websocket's highest", peer, "edits/s")
    report.add("  Anode / pycrdt-websocket", ratio, "x", 4.0)


def _anode_rate(relay: Relay, seconds: float) -> float:
    with http_client(relay.url) as client:
        notebook = create_notebook(client, "edits")
        paths = [f"/api/notebooks/{notebook}/stream?after=1"] * SUBSCRIBERS
        with SubscriberProcess(relay.port, paths) as subscribers, CpuMeter(relay) as cpu:
            result = push_writers(relay.url, notebook, 1, WRITERS, seconds, warmup=0.5)
            head = client.get(f"/api/notebooks/{notebook}/events?after=0&limit=1").json()["head"]
            every = subscribers.wait_for(SUBSCRIBERS * (head - 1), timeout=15)
            got = subscribers.finish()
    start, end = result["window"]
    # What every subscriber had received by the end of the writers' window.
    least = min(
        sum(1 for arrived in arrivals.values() if start <= arrived <= end)
        for arrivals in got["arrivals"]
    )
    rate = least / (end - start)
    busy = cpu.busy(start, end)
    say(
        f"   Anode: {result['acked'] / (end - start):,.0f} edits/s acknowledged,"
        f" {rate:,.0f}/s received by every subscriber in the window"
        f"{'' if every else ' (SOME NEVER ARRIVED)'}; CPU: relay {busy:.0f}%,"
        f" writers {result['cpu_percent']:.0f}%,"
        f" subscribers {100 * got['cpu_seconds'] / (end - start):.0f}%"
    )
    return rate


def _peer_rate(seconds: float) -> float | None:
    try:
        import pycrdt.websocket  # noqa: F401
        import websockets  # noqa: F401
    except ImportError:
        say("   pycrdt-websocket: not installed (pip install -e '.[bench]'); skipped")
        return None
    from bench.crdt_peer import PeerServer, sustained_rate

    with PeerServer() as server:
        steps = sustained_rate(server, PEER_RATES, seconds, SUBSCRIBERS, WRITERS)
    for step in steps:
        say(
            f"   pycrdt-websocket offered {step['offered']:>6,.0f}/s:"
            f" sent {step['sent_rate']:>6,.0f}/s,"
            f" {'kept up' if step['kept_up'] else 'FELL BEHIND'}; server CPU {step['cpu']:.0f}%"
        )
    kept = [step["sent_rate"] for step in steps if step["kept_up"]]
    best = max(kept, default=0.0)
    say(f"   pycrdt-websocket's highest sustained rate: {best:,.0f} edits/s")
    return best or None
