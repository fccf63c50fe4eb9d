"""Growth: does the cost of an event stay flat as a notebook grows?

    .venv/bin/python -m bench.relay --only growth            # 100, 2,000 and 20,000 cells
    .venv/bin/python -m bench.relay --only growth --quick    # 100 and 2,000

For each size, a fresh notebook on the live relay is filled to that many
cells (untimed, in batches of 500), then measured as one writer uses it:
creates in batches of 50 (cells/s; ten batches, so the notebook stays near
its size), single-event edits (edits/s), and the
snapshot served warm (the same head asked again: ms). Each rate is set
against the 100-cell notebook's, measured in the same run: the target is
at least 70% of it at 20,000 cells, and a warm snapshot within 30 ms.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import httpx

from bench.harness import JSON, CpuMeter, Relay, create_notebook, http_client, push
from bench.report import Report, median, say
from bench.workload import Typist

FILL_BATCH = 500
CREATE_BATCH = 50


def bench_growth(relay: Relay, sizes: tuple[int, ...], seconds: float, report: Report) -> None:
    say(f"\n6. growth: one writer in notebooks of {', '.join(f'{n:,}' for n in sizes)} cells")
    say(
        f"   {'cells':>7} {'creates/s':>10} {'ratio':>6} {'edits/s':>9} {'ratio':>6}"
        f" {'snapshot':>9} {'bytes':>11}  CPU (relay)"
    )
    base: tuple[float, float] | None = None
    rows = []
    with http_client(relay.url, 120) as client, CpuMeter(relay) as cpu:
        for size in sizes:
            notebook = create_notebook(client, f"growth {size}")
            typist = Typist(f"g{size}", seed=size, new_cell_every=10**9)
            for start in range(0, size, FILL_BATCH):
                count = min(FILL_BATCH, size - start)
                push(client, notebook, [typist.create_cell() for _ in range(count)])
            window_start = time.time()
            # A fixed count, so the notebook stays near its size while it is measured.
            creates = _rate(client, notebook, typist.create_cell, CREATE_BATCH, pushes=10)
            edits = _rate(client, notebook, typist.edit, 1, seconds=seconds)
            busy = cpu.busy(window_start, time.time())
            snapshot_ms, size_bytes = _snapshot(client, notebook)
            base = base or (creates, edits)
            ratios = (creates / base[0], edits / base[1])
            rows.append((size, creates, edits, snapshot_ms, ratios))
            say(
                f"   {size:>7,} {creates:>10,.0f} {ratios[0]:>6.2f} {edits:>9,.0f}"
                f" {ratios[1]:>6.2f} {snapshot_ms:>7.1f} ms {size_bytes:>11,}  {busy:3.0f}%"
            )
    size, creates, edits, snapshot_ms, ratios = rows[-1]
    report.add(f"creates at {size:,} cells / at {sizes[0]}", ratios[0], "x", 0.7)
    report.add(f"single edits at {size:,} cells / at {sizes[0]}", ratios[1], "x", 0.7)
    report.add(f"snapshot of {size:,} cells, warm", snapshot_ms, "ms", 30.0, higher_is_better=False)


def _rate(
    client: httpx.Client,
    notebook: str,
    make: Callable[[], dict[str, Any]],
    per_push: int,
    *,
    seconds: float = 0.0,
    pushes: int = 0,
) -> float:
    """Events a second, pushing batches of ``per_push`` events from ``make`` for ``seconds``
    or ``pushes`` times (after a short warm-up)."""
    path = f"/api/notebooks/{notebook}/events"

    def send() -> None:
        body = json.dumps({"events": [make() for _ in range(per_push)]})
        client.post(path, content=body, headers=JSON).raise_for_status()

    for _ in range(3):
        send()
    count = 0
    start = time.perf_counter()
    while time.perf_counter() - start < seconds or count < pushes * per_push:
        send()
        count += per_push
    return count / (time.perf_counter() - start)


def _snapshot(client: httpx.Client, notebook: str) -> tuple[float, int]:
    """The median time of a warm ``GET /snapshot`` (the same head asked again), and its size."""
    url = f"/api/notebooks/{notebook}/snapshot"
    size = len(client.get(url).content)
    times = []
    for _ in range(10):
        start = time.perf_counter()
        client.get(url).raise_for_status()
        times.append((time.perf_counter() - start) * 1000)
    return median(times), size
