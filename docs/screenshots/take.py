"""Take the screenshots in docs/screenshots/ from a real session.

    .venv/bin/python -m docs.screenshots.take

A real relay (``anode serve`` with auto kernels), notebooks made and run over
the HTTP API, the real client in Chromium: ``notebook.png`` (a short notebook
with text, a table, a drawing, a traceback and a colleague's caret) and
``long-notebook.jpg`` (80 cells with their outputs, the whole page).
"""

from __future__ import annotations

import tempfile
import time
import uuid
from pathlib import Path

import httpx

from tests.chromium import sync_browser
from tests.client_helpers import ClientPage, _event, push
from tests.conftest import RelayProcess

HERE = Path(__file__).resolve().parent

SHORT = [
    (
        "markdown",
        "# Field notes\nA notebook shared by **Ada** and **Grace**: `Shift+Enter` runs a cell.",
    ),
    (
        "code",
        "counts = {'wrens': 12, 'robins': 7, 'jays': 3}\nfor bird, n in counts.items():\n    "
        "print(f'{bird:>6}: ' + '#' * n)",
    ),
    (
        "code",
        "from IPython.display import HTML\nrows = ''.join(f'<tr><td>{b}</td><td>{n}</td></tr>' "
        "for b, n in counts.items())\n"
        "HTML(f'<table><tr><th>bird</th><th>count</th></tr>{rows}</table>')",
    ),
    (
        "code",
        "from IPython.display import SVG\nbars = ''.join(f'<rect x=\"{i * 60 + 10}\" y=\"{120 - n "
        '* 8}" width="40" '
        'height="{n * 8}" fill="#4a7"/>\' for i, n in enumerate(counts.values()))\n'
        'SVG(f\'<svg xmlns="http://www.w3.org/2000/svg" width="200" height="125">{bars}</svg>\')',
    ),
    ("code", "sum(counts.values()) / len(counts)"),
    ("code", "counts['owls']"),
]


def _notebook(relay: RelayProcess, title: str, cells: list[tuple[str, str]]) -> str:
    http = httpx.Client(base_url=relay.url, headers=relay.headers, timeout=30)
    notebook = http.post("/api/notebooks", json={"title": title}).json()["id"]
    events, after, runs = [], None, []
    for cell_type, source in cells:
        cell = uuid.uuid4().hex
        events.append(
            _event("cellCreated", cell_id=cell, cell_type=cell_type, after=after, source=source)
        )
        if cell_type == "code":
            runs.append(
                _event(
                    "executionRequested", execution_id=uuid.uuid4().hex, cell_id=cell, source=source
                )
            )
        after = cell
    push(relay, notebook, *events, *runs)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        state = http.get(f"/api/notebooks/{notebook}/snapshot").json()["state"]
        if all(
            c["execution"] is None or c["execution"]["status"] in ("ok", "error")
            for c in state["cells"]
        ):
            return notebook
        time.sleep(0.2)
    raise TimeoutError(f"{title}: the kernel did not finish")


def _editor_token(relay: RelayProcess, notebook: str) -> str:
    made = httpx.post(
        f"{relay.url}/api/notebooks/{notebook}/tokens",
        json={"role": "editor", "label": "Grace"},
        headers=relay.headers,
        timeout=30,
    )
    return made.json()["token"]


def _name(tab: ClientPage, name: str) -> None:
    """What others see this person as: the name field in the header."""
    field = tab.page.locator(".my-name")
    field.fill(name)
    field.press("Enter")
    field.blur()


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="anode-shots-") as tmp:
        relay = RelayProcess(Path(tmp) / "data").start()
        try:
            short = _notebook(relay, "Field notes", SHORT)
            long_cells = [("markdown", "# A long notebook\nEighty cells, each run once.")] + [
                ("code", f"print('row {i}:', sum(range({i * 1000})))") for i in range(79)
            ]
            long = _notebook(relay, "A long notebook", long_cells)
            with sync_browser() as browser:
                context = browser.new_context(viewport={"width": 1200, "height": 900})
                ada = ClientPage.open(context, relay, short)
                _name(ada, "Ada")
                # Grace, in her own browser with an editor link: her caret shows in Ada's view.
                elsewhere = browser.new_context(viewport={"width": 1200, "height": 900})
                grace = ClientPage(elsewhere.new_page(), relay)
                grace.goto(short, token=_editor_token(relay, short))
                _name(grace, "Grace")
                grace.editor(1).click()
                grace.page.keyboard.press("End")
                ada.page.wait_for_timeout(1500)
                ada.page.screenshot(path=HERE / "notebook.png", full_page=True)
                tall = ClientPage.open(context, relay, long)
                tall.page.wait_for_timeout(1000)
                tall.page.screenshot(
                    path=HERE / "long-notebook.jpg", full_page=True, type="jpeg", quality=70
                )
                elsewhere.close()
                context.close()
        finally:
            relay.stop()
    print(f"wrote {HERE / 'notebook.png'} and {HERE / 'long-notebook.jpg'}")


if __name__ == "__main__":
    main()
