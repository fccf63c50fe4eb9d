"""Browser client benchmark: page load to interactive, keystroke to push, remote edit latency, 500
cells, and a cell's run in this tab's kernel against the server's.

    .venv/bin/python -m bench.client              # about a minute
    .venv/bin/python -m bench.client --quick      # fewer samples

Everything is real: the relay runs as a process (``anode serve``, tokens on,
``bench.harness``) and serves the page; Chromium (headless, the tests'
executable and flags) loads it with the service worker allowed.

- **Load to interactive**: navigation start (``performance.timeOrigin``) to
  ``<body data-anode="ready">`` on a notebook page (the cells are on screen
  and editable then). *Cold*: the first tab of a fresh browser context
  (nothing cached, Pyodide's wasm compiled for the first time), which starts
  from the Pyodide memory snapshot the relay serves (``make setup`` makes it:
  anode/page_snapshot.py). *Cold, no shipped snapshot*: the same with that
  snapshot's address blocked, so Python starts from nothing, as on a relay
  or a site without one. *Cached*: later tabs of that context once the
  service worker holds the files (``data-offline="ready"``) and the page has
  made its own snapshot (``data-snapshot="ready"``, client/js/snapshot.js), so
  the files, the compiled wasm and the snapshot are cached.
- **Keystroke to push acknowledged**: a key's ``keydown`` to the moment the
  relay answered the POST that carried its ``cellSourceEdited`` (a key with
  no edit of its cell in flight is sent at once).
- **Remote edit**: a key's ``keydown`` in one tab to the other tab's editor
  showing it (a MutationObserver on its ``.cm-content``); the two tabs are
  two browser contexts, two people.
- **500 cells**: a notebook of 500 run cells (a stream and a result each):
  from PyScript's ``py:ready`` to every cell and output on screen, then the
  longest frame (Long Animation Frames / long tasks, which only report
  frames over 50 ms) while typing 40 keys into cell 250.

- **Run → first output**, in this tab's kernel (client/tab_kernel.py) and in
  the server's (the relay's ``--kernels auto`` Node kernel), same relay, same
  run: the ``keydown`` of Ctrl+Enter to the cell's ``print`` showing (a
  MutationObserver). *First run*: a fresh page on a new notebook, so the kernel
  starts then; *cold* the very first (no snapshot anywhere), *snapshot
  cached* the later ones (the tab's snapshot in the page's Cache Storage, the
  Node kernel's in the relay's data folder); *Python preloaded*: the tab
  reloaded on a notebook that runs in the tab, which loads Python once the
  page is idle (no kernel until the Run). *Warm*: again and again in a
  kernel that is up. The ratio tab / server is of medians.

Times are taken in the page with ``performance.timeOrigin + performance.now()``
(the same clock for every tab on this machine) by a script Playwright adds
before the page's own (``add_init_script``: it is not subject to the page's
CSP, and it only wraps ``fetch`` to note when a push's answer came). The
script prints figures; it asserts nothing about them.
"""

from __future__ import annotations

import argparse
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from bench.harness import Relay, http_client, push
from kernel_headless.launch.browser import launch_options

#: Added to every page before its own scripts: keydown times, push answers, editor changes.
_PROBE = """
(() => {
  const now = () => performance.timeOrigin + performance.now();
  window.__bench = {keys: [], pushes: [], changes: [], ready: null, python: null, frames: []};
  document.addEventListener("py:ready", () => {
    window.__bench.python ??= performance.now();
  }, true);
  for (const type of ["long-animation-frame", "longtask"]) {
    try {
      new PerformanceObserver((list) => {
        for (const entry of list.getEntries()) {
          window.__bench.frames.push([type, entry.startTime, entry.duration]);
        }
      }).observe({type, buffered: true});
    } catch (error) {}  // an entry type this browser lacks
  }
  document.addEventListener("keydown", () => window.__bench.keys.push(now()), true);
  const realFetch = window.fetch.bind(window);
  window.fetch = async (input, init) => {
    const response = await realFetch(input, init);
    const body = init && typeof init.body === "string" ? init.body : "";
    if (body.includes("cellSourceEdited")) window.__bench.pushes.push(now());
    return response;
  };
  new MutationObserver(() => {
    if (window.__bench.ready === null && document.body && document.body.dataset.anode === "ready") {
      window.__bench.ready = performance.now();
    }
  }).observe(document, {subtree: true, attributes: true, attributeFilter: ["data-anode"]});
})();
"""

#: In the watching tab: note when cell 0's text changes, with its length.
_WATCH = """() => {
  const content = document.querySelector("section.cell .cm-content");
  new MutationObserver(() => window.__bench.changes.push(
    [performance.timeOrigin + performance.now(), content.textContent.length]
  )).observe(content, {subtree: true, childList: true, characterData: true});
}"""


PARTS = ("loads", "typing", "large", "kernels")


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))]


def _summary(name: str, values: list[float]) -> str:
    return (
        f"{name:<46} n={len(values):<3} p50 {_percentile(values, 50):7.1f} ms   "
        f"p99 {_percentile(values, 99):7.1f} ms   max {max(values):7.1f} ms"
    )


def _notebook(relay: Relay) -> str:
    with http_client(relay.url, token=relay.token) as client:
        response = client.post("/api/notebooks", json={"title": "bench"})
        response.raise_for_status()
        notebook = response.json()["id"]
        cell = {
            "id": uuid.uuid4().hex,
            "name": "cellCreated",
            "v": 1,
            "args": {
                "cell_id": uuid.uuid4().hex,
                "cell_type": "code",
                "after": None,
                "source": "x = 1",
            },
        }
        push(client, notebook, [cell])
    return notebook


def _open(context: Any, url: str) -> tuple[Any, float]:
    """A new tab on ``url``: the page and its load-to-interactive time (ms)."""
    page = context.new_page()
    page.goto(url)
    page.wait_for_function("() => window.__bench && window.__bench.ready !== null", timeout=120_000)
    return page, float(page.evaluate("window.__bench.ready"))


def _big_notebook(relay: Relay, cells: int) -> str:
    """``cells`` code cells, each run once with a few lines of output (pushed as a kernel would)."""
    with http_client(relay.url, token=relay.token) as client:
        response = client.post("/api/notebooks", json={"title": f"{cells} cells"})
        response.raise_for_status()
        notebook = response.json()["id"]

        def event(name: str, **args: Any) -> dict[str, Any]:
            return {"id": uuid.uuid4().hex, "name": name, "v": 1, "args": args}

        session = "ks-bench"
        events = [
            event("kernelSessionStarted", session_id=session, host="node", lease_seconds=3600)
        ]
        after = None
        for i in range(cells):
            cell, run = uuid.uuid4().hex, uuid.uuid4().hex
            source = f"for k in range(3):\n    print('row {i}', k)\n{i} * 2"
            text = "".join(f"row {i} {k}\n" for k in range(3))
            events += [
                event("cellCreated", cell_id=cell, cell_type="code", after=after, source=source),
                event("executionRequested", execution_id=run, cell_id=cell, source=source),
                event("executionAssigned", execution_id=run, session_id=session),
                event(
                    "executionStarted", execution_id=run, session_id=session, execution_count=i + 1
                ),
                event(
                    "outputAdded",
                    execution_id=run,
                    output={"output_type": "stream", "name": "stdout", "text": text},
                ),  # fmt: skip
                event(
                    "outputAdded",
                    execution_id=run,
                    output={
                        "output_type": "execute_result",
                        "execution_count": i + 1,
                        "data": {"text/plain": str(i * 2)},
                        "metadata": {},
                    },
                ),  # fmt: skip
                event("executionCompleted", execution_id=run, session_id=session, status="ok"),
            ]
            after = cell
        for start in range(0, len(events), 700):
            push(client, notebook, events[start : start + 700])
    return notebook


#: Resolves (with the page's clock) once every cell and its two outputs are on screen.
_ALL_RENDERED = """n => {
  const cells = document.querySelectorAll("section.cell").length;
  const results = document.querySelectorAll("section.cell .output").length;
  if (cells >= n && results >= 2 * n) { window.__bench.full ??= performance.now(); return true; }
  return false;
}"""


def _large(browser: Any, relay: Relay, quick: bool) -> dict[str, list[float]]:
    """Open a 500-cell notebook: Python ready -> every cell and output shown; then type in the
    middle."""
    cells = 500
    notebook = _big_notebook(relay, cells)
    url = f"{relay.url}/?notebook={notebook}&token={relay.token}"
    renders: list[float] = []
    worst_frames: list[float] = []
    for _ in range(1 if quick else 3):
        context = browser.new_context()
        context.add_init_script(_PROBE)
        page = context.new_page()
        page.goto(url)
        page.wait_for_function(_ALL_RENDERED, arg=cells, timeout=180_000, polling="raf")
        python, full = page.evaluate("[window.__bench.python, window.__bench.full]")
        renders.append(float(full) - float(python if python is not None else 0.0))
        # Typing in cell 250: every frame while typing, not the page's start-up.
        editor = page.locator("section.cell .cm-content").nth(cells // 2)
        editor.scroll_into_view_if_needed()
        editor.click()
        page.keyboard.press("End")
        typing_from = float(page.evaluate("performance.now()"))
        for i in range(40):
            page.keyboard.type("abcdefghij"[i % 10])
            time.sleep(0.03)
        page.wait_for_timeout(300)
        frames = page.evaluate(
            "f => window.__bench.frames.filter(([, start]) => start >= f)", typing_from
        )
        worst_frames.append(max((float(d) for _, _, d in frames), default=0.0))
        context.close()
    return {
        f"{cells} cells: Python ready to all shown": renders,
        f"{cells} cells: longest frame while typing (0: none over 50)": worst_frames,
    }


def measure(quick: bool, only: str | None = None) -> dict[str, list[float]]:
    from playwright.sync_api import sync_playwright

    figures: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory(prefix="anode-bench-client-") as tmp:
        relay = Relay(Path(tmp) / "data", auth=True).start()
        try:
            notebook = _notebook(relay)
            url = f"{relay.url}/?notebook={notebook}&token={relay.token}"
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(**launch_options())
                try:
                    if only in (None, "loads"):
                        figures.update(_loads(browser, url, quick))
                    if only in (None, "typing"):
                        figures.update(_typing(browser, url, quick))
                    if only in (None, "large"):
                        figures.update(_large(browser, relay, quick))
                    if only in (None, "kernels"):
                        figures.update(_kernels(browser, relay, quick))
                finally:
                    browser.close()
        finally:
            relay.stop()
    return figures


def _loads(browser: Any, url: str, quick: bool) -> dict[str, list[float]]:
    shipped: list[float] = []
    cold: list[float] = []
    cached: list[float] = []
    for _ in range(1 if quick else 3):
        context = browser.new_context()
        context.add_init_script(_PROBE)
        page, took = _open(context, url)
        if page.evaluate("document.body.dataset.snapshot") == "shipped":
            shipped.append(took)
        page.close()
        context.close()
        context = browser.new_context()
        context.add_init_script(_PROBE)
        context.route("**/snapshot/index.json", lambda route: route.fulfill(json={"snapshots": []}))
        page, took = _open(context, url)
        cold.append(took)
        page.wait_for_selector("body[data-offline='ready']", timeout=60_000)
        page.wait_for_selector(
            "body[data-snapshot='ready'], body[data-snapshot='failed']", timeout=120_000
        )
        page.close()
        for _ in range(2 if quick else 4):
            page, took = _open(context, url)
            cached.append(took)
            page.close()
        context.close()
    return {
        "load to interactive, cold": shipped,
        "load to interactive, cold, no shipped snapshot": cold,
        "load to interactive, cached (SW)": cached,
    }


def _typing(browser: Any, url: str, quick: bool) -> dict[str, list[float]]:
    writer_context, watcher_context = browser.new_context(), browser.new_context()
    for context in (writer_context, watcher_context):
        context.add_init_script(_PROBE)
    writer, _ = _open(writer_context, url)
    watcher, _ = _open(watcher_context, url)
    for page in (writer, watcher):  # a first visit shows the page before the stream brings the cell
        page.wait_for_selector("section.cell .cm-content", timeout=60_000)
    watcher.evaluate(_WATCH)
    writer.click("section.cell .cm-content")
    writer.keyboard.press("Control+End")
    base = int(
        watcher.evaluate("document.querySelector('section.cell .cm-content').textContent.length")
    )
    pushed: list[float] = []
    remote: list[float] = []
    for i in range(20 if quick else 60):
        writer.keyboard.type("abcdefghij"[i % 10])
        watcher.wait_for_function(
            "n => document.querySelector('section.cell .cm-content').textContent.length >= n",
            arg=base + i + 1,
        )
        writer.wait_for_function("n => window.__bench.pushes.length >= n", arg=i + 1)
        key = float(writer.evaluate("window.__bench.keys.at(-1)"))
        ack = float(writer.evaluate("window.__bench.pushes.at(-1)"))
        seen = watcher.evaluate(
            "n => window.__bench.changes.find(([t, len]) => len >= n)[0]", base + i + 1
        )
        pushed.append(ack - key)
        remote.append(float(seen) - key)
        time.sleep(0.12)  # one key per batch: each is its own push
    writer_context.close()
    watcher_context.close()
    return {
        "keystroke to push acknowledged": pushed,
        "keystroke to the other person's screen": remote,
    }


#: Resolves (the page's clock) once cell 0 shows a stream whose text is exactly ``arg``.
_OUTPUT_SEEN = """text => {
  window.__bench.seen = new Promise(resolve => {
    const shown = () => {
      const pre = document.querySelector(".cells > section.cell .outputs pre.stream");
      return pre !== null && pre.textContent.trim() === text;
    };
    if (shown()) return resolve(performance.timeOrigin + performance.now());
    const observer = new MutationObserver(() => {
      if (shown()) {
        observer.disconnect();
        resolve(performance.timeOrigin + performance.now());
      }
    });
    observer.observe(document.body, {subtree: true, childList: true, characterData: true});
  });
}"""


def _run_to_output(page: Any, marker: str) -> float:
    """Make cell 0 ``print(marker)``, run it: ms from the Ctrl+Enter to the output showing."""
    page.click(".cells > section.cell .cm-content")
    page.keyboard.press("Control+a")
    page.keyboard.insert_text(f"print({marker!r})")
    page.evaluate(_OUTPUT_SEEN, marker)
    page.keyboard.press("Control+Enter")
    seen = float(page.evaluate("window.__bench.seen"))
    return seen - float(page.evaluate("window.__bench.keys.at(-1)"))


def _kernels(browser: Any, relay: Relay, quick: bool) -> dict[str, list[float]]:
    """Run -> first output in this tab's kernel and in the server's: first runs, then warm."""
    figures: dict[str, list[float]] = {}
    context = browser.new_context()  # one person: the tab's snapshot stays in its cache
    context.add_init_script(_PROBE)
    for runner in ("tab", "server"):
        first: list[float] = []
        page = None
        for sample in range(3 if quick else 5):
            if page is not None:
                page.close()
            page, _ = _open(
                context, f"{relay.url}/?notebook={_notebook(relay)}&token={relay.token}"
            )
            page.wait_for_selector(".cells > section.cell .cm-content", timeout=60_000)
            page.select_option("select.run-in", runner)
            first.append(_run_to_output(page, f"{runner} first {sample}"))
            if runner == "tab" and sample == 0:
                page.wait_for_selector("body[data-tab-snapshot='ready']", timeout=60_000)
        assert page is not None
        if runner == "tab":  # the same notebook again: "run in: this tab" loads Python when idle
            preloaded = []
            for sample in range(2 if quick else 4):
                page.reload()
                page.wait_for_function("() => window.__bench && window.__bench.ready !== null")
                page.wait_for_selector("body[data-tab-kernel-loaded]", timeout=60_000)
                preloaded.append(_run_to_output(page, f"tab preloaded {sample}"))
            figures["tab kernel: first run, Python preloaded"] = preloaded
        warm = [_run_to_output(page, f"{runner} warm {i}") for i in range(15 if quick else 40)]
        page.close()
        figures[f"{runner} kernel: first run, cold"] = first[:1]
        figures[f"{runner} kernel: first run, snapshot cached"] = first[1:]
        figures[f"{runner} kernel: warm run -> first output"] = warm
    context.close()
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="fewer samples")
    parser.add_argument("--only", choices=PARTS, help="one part of the benchmark")
    args = parser.parse_args()
    started = time.monotonic()
    figures = measure(args.quick, args.only)
    print(f"browser client ({time.monotonic() - started:.0f} s, load {_load_average()})")
    for name, values in figures.items():
        print(_summary(name, values) if values else f"{name:<46} none measured")
    _targets(figures)


def _load_average() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def _targets(figures: dict[str, list[float]]) -> None:
    """A line per target whose figures this run has."""
    median = {name: _percentile(values, 50) for name, values in figures.items() if values}
    for figure, target in (
        ("load to interactive, cold", 2500),
        ("load to interactive, cached (SW)", 1500),
    ):
        if figure in median:
            print(f"target: {figure} <= {target} ms: median {median[figure]:.0f} ms -> "
                  f"{'met' if median[figure] <= target else 'NOT met'}")  # fmt: skip
    render = median.get("500 cells: Python ready to all shown")
    if render is not None:
        worst = max(figures["500 cells: longest frame while typing (0: none over 50)"])
        print(f"target: 500 cells shown <= 1000 ms after Python is ready: median {render:.0f} ms"
              f" -> {'met' if render <= 1000 else 'NOT met'}")  # fmt: skip
        print(f"target: no frame over 50 ms while typing: longest {worst:.0f} ms -> "
              f"{'met' if worst <= 50 else 'NOT met'}")  # fmt: skip
    if "tab kernel: warm run -> first output" in median:
        _kernel_targets(median)


def _kernel_targets(median: dict[str, float]) -> None:
    for kind in ("first run, snapshot cached", "warm run -> first output"):
        tab, server = median[f"tab kernel: {kind}"], median[f"server kernel: {kind}"]
        print(f"tab / server, {kind}: {tab:.1f} / {server:.1f} ms = {tab / server:.2f}")
    first = median["tab kernel: first run, snapshot cached"]
    print(f"target: tab first run, snapshot cached <= 1500 ms: median {first:.0f} ms -> "
          f"{'met' if first <= 1500 else 'NOT met'}")  # fmt: skip
    warm = median["tab kernel: warm run -> first output"]
    print(f"target: tab warm run -> first output p50 <= 5 ms: {warm:.1f} ms -> "
          f"{'met' if warm <= 5 else 'NOT met'}")  # fmt: skip


if __name__ == "__main__":
    main()
