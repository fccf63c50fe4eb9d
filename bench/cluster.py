"""Several relays on PostgreSQL, beside one relay on SQLite in the same run.

Run by ``python -m bench.relay --store postgresql://…``. Each configuration
gets its own throw-away database on that server (``CREATE DATABASE``; the
user needs that right), dropped at the end; the named database is only
connected to. Relays run ``--no-auth`` on loopback, as the other parts do.

- push throughput: 4 writers (one thread each, in one process) push to one
  notebook, writer i through relay i mod N: the worst case for a shared
  store, since every append to that notebook queues on one row lock;
- cross-relay fan-out: one writer paces single-event pushes through the
  first relay while subscribers, spread round-robin over the relays, note
  arrivals; latencies are split into "same relay" and "another relay".
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

import psycopg
from psycopg import sql

from bench.harness import CpuMeter, Relay, create_notebook, http_client, push
from bench.relay import Scale
from bench.report import Report, p50_p99, percentile, say
from bench.subscribers import SubscriberProcess
from bench.workload import Typist
from bench.writers import push_writers

#: (label, relay count, on PostgreSQL?)
SETUPS = [("SQLite, 1 relay", 1, False)] + [
    (f"PostgreSQL, {n} relay{'s' if n > 1 else ''}", n, True) for n in (1, 2, 4)
]


@contextmanager
def throwaway_database(server_url: str) -> Iterator[str]:
    name = f"anode_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield urlsplit(server_url)._replace(path=f"/{name}").geturl()
    finally:
        with psycopg.connect(server_url, autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


@contextmanager
def relays(workdir: Path, label: str, count: int, store: str | None) -> Iterator[list[Relay]]:
    started: list[Relay] = []
    try:
        for i in range(count):
            tag = label.replace(" ", "").replace(",", "-")
            started.append(Relay(workdir / f"{tag}-{i}", store=store).start())
        yield started
    finally:
        for relay in started:
            relay.stop()


@contextmanager
def setup(
    workdir: Path, server_url: str, label: str, count: int, pg: bool
) -> Iterator[list[Relay]]:
    if not pg:
        with relays(workdir, label, count, None) as running:
            yield running
        return
    with throwaway_database(server_url) as url, relays(workdir, label, count, url) as running:
        yield running


def bench_cluster(server_url: str, workdir: Path, scale: Scale, report: Report) -> None:
    push_seconds, warmup, fanout_seconds = (
        scale.push_seconds,
        scale.push_warmup,
        scale.fanout_seconds,
    )
    say("\n6. several relays on PostgreSQL, beside one relay on SQLite (same run)")
    say("   push: 4 writers, one notebook, writer i through relay i mod N")
    base: dict[int, float] = {}
    for label, count, pg in SETUPS:
        with setup(workdir, server_url, label, count, pg) as running:
            urls = [relay.url for relay in running]
            meters = [CpuMeter(relay) for relay in running]
            for meter in meters:
                meter.__enter__()
            try:
                for batch in (100, 1):
                    with http_client(urls[0]) as client:
                        notebook = create_notebook(client, f"push {batch}")
                    result = push_writers(urls, notebook, batch, 4, push_seconds, warmup)
                    rate = result["acked"] / result["seconds"]
                    pushes = result["pushes"] / result["seconds"]
                    lat = [x * 1000 for x in result["latencies"]]
                    busy = sum(meter.busy(*result["window"]) for meter in meters)
                    base.setdefault(batch, rate)
                    say(
                        f"   {label:<22} batch {batch:>3}: {rate:>8,.0f} events/s"
                        f" {pushes:>6,.0f} pushes/s  push {p50_p99(lat)}"
                        f"  relays' CPU {busy:3.0f}%  (x{rate / base[batch]:.2f} of SQLite)"
                    )
                    report.add(f"{label}: push, batches of {batch}, 4 writers", rate, "events/s")
            finally:
                for meter in meters:
                    meter.__exit__()
    say(
        f"   fan-out: 1 writer pacing 200 single-event pushes/s through relay 1 for "
        f"{fanout_seconds:.0f} s, 50 subscribers spread over the relays"
    )
    for label, count, pg in SETUPS:
        with setup(workdir, server_url, label, count, pg) as running:
            same, other, lost = _fanout(running, fanout_seconds)
            say(
                f"   {label:<22} push-to-receive: same relay {p50_p99(same)},"
                f" another relay {p50_p99(other) if other else '—'}; lost {lost}"
            )
            if other:
                report.add(
                    f"{label}: cross-relay fan-out p50",
                    percentile(other, 50),
                    "ms",
                    10,
                    higher_is_better=False,
                )
                report.add(f"{label}: cross-relay fan-out p99", percentile(other, 99), "ms")
            report.count(f"{label}: fan-out events lost", lost, must_be=0)


def _fanout(running: list[Relay], seconds: float) -> tuple[list[float], list[float], int]:
    rate, subscribers = 200.0, 50
    typist = Typist("fan", seed=7)
    sent: dict[str, float] = {}
    with http_client(running[0].url, 30) as client:
        notebook = create_notebook(client, "fan-out")
        head = push(client, notebook, [typist.create_cell() for _ in range(5)])["head"]
        ports = [running[i % len(running)].port for i in range(subscribers)]
        paths = [f"/api/notebooks/{notebook}/stream?after={head}"] * subscribers
        with SubscriberProcess(ports, paths) as subs:
            time.sleep(0.5)
            begin = time.perf_counter() + 0.1
            for i in range(int(rate * seconds)):
                delay = begin + i / rate - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)
                event = typist.edit()
                sent[event["id"]] = time.time()
                push(client, notebook, [event])
            subs.wait_for(len(sent) * subscribers, timeout=15)
            result = subs.finish()
    same: list[float] = []
    other: list[float] = []
    lost = 0
    for index, arrivals in enumerate(result["arrivals"]):
        bucket = same if ports[index] == running[0].port else other
        for event_id, t_sent in sent.items():
            got = arrivals.get(event_id)
            if got is None:
                lost += 1
            else:
                bucket.append((got - t_sent) * 1000)
    return same, other, lost
