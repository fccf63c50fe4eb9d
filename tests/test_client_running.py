"""Running code and showing what it made: Chromium, a real relay, real auto-started kernels.

Run above / below, cancelling a queued run, each cell's state and time, the
kernel status in the header; outputs with terminal colours, long outputs
that scroll and collapse, images, SVG and JSON; markdown with highlighted
code. One relay and one browser context for the module (a cold Pyodide
start once); each test opens its own notebook.
"""

from __future__ import annotations

import re
import uuid

import pytest

from client import ansi
from tests.chromium import context_fixture  # noqa: F401 - the *_fixture names are fixtures
from tests.client_helpers import (
    RUN_TIMEOUT_MS,
    SYNC_TIMEOUT_MS,
    ClientPage,
    _event,
    cell_ids,
    new_notebook,
    push,
)
from tests.conftest import RelayProcess, module_relay

# --- terminal colours, without a browser ---------------------------------------------------


def test_ansi_runs() -> None:
    """SGR codes become classes; other escapes vanish; 256 and true colours map to the 16."""
    assert ansi.runs("\x1b[1;31mError\x1b[0m: bad") == [
        ("Error", "ansi-bold ansi-red"),
        (": bad", ""),
    ]
    assert ansi.runs("\x1b[92mok\x1b[39m \x1b[44mblue\x1b[49m") == [
        ("ok", "ansi-bright-green"), (" ", ""), ("blue", "ansi-bg-blue"),
    ]  # fmt: skip
    assert ansi.runs("\x1b[38;5;196mr\x1b[38;2;0;0;139mb\x1b[m") == [
        ("r", "ansi-bright-red"),
        ("b", "ansi-blue"),
    ]
    assert ansi.strip("a\x1b]0;title\x07b\x1b[2Kc\x1b[?25ld\x1b") == "abcd"  # noqa: B005 (ours, not str.strip)
    assert ansi.runs("\x1b[1mx\x1b[22my") == [("x", "ansi-bold"), ("y", "")]
    assert ansi.runs("") == [] and ansi.runs("plain") == [("plain", "")]


# --- in a browser ---------------------------------------------------------------------------


relay = module_relay("client-running")


def _notebook(relay: RelayProcess, *sources: str) -> str:
    """A notebook whose code cells hold ``sources``, in order."""
    notebook = new_notebook(relay, "running", source=sources[0])
    after = cell_ids(relay, notebook)[0]
    for source in sources[1:]:
        cell_id = uuid.uuid4().hex
        push(
            relay,
            notebook,
            _event("cellCreated", cell_id=cell_id, cell_type="code", after=after, source=source),
        )
        after = cell_id
    return notebook


@pytest.mark.slow
def test_run_above_below_cancel_and_cell_state(relay: RelayProcess, context) -> None:
    """Run above / below run the right cells in order; a queued run can be cancelled; a running
    cell shows its time ticking, a finished one how long it ran and on which kernel."""
    from playwright.sync_api import expect

    notebook = _notebook(
        relay,
        "a = 1",
        "print(a * 10)",
        "print('below')",
        "print('spin')\nwhile True: pass",
        "print('after')",
    )
    tab = ClientPage.open(context, relay, notebook)
    expect(tab.cells).to_have_count(5, timeout=SYNC_TIMEOUT_MS)
    for index in range(5):
        tab.expect_status(index, "idle", timeout=SYNC_TIMEOUT_MS)

    tab.cell(2).locator("button.run-above").click()  # cells 0 and 1, not 2
    expect(tab.outputs(1).locator("pre.stream")).to_have_text("10", timeout=RUN_TIMEOUT_MS)
    tab.expect_status(0, "done")
    tab.expect_status(1, "done")
    tab.expect_status(2, "idle")
    expect(tab.cell(0).locator(".prompt")).to_have_text("[1]:")
    expect(tab.cell(1).locator(".prompt")).to_have_text("[2]:")
    status = tab.cell(1).locator(".cell-status")
    expect(status).to_have_text(re.compile(r"^done in \d+\.\d\d s · kernel \S+ \(node\)$"))
    assert tab.cell(1).locator(".cell-status").get_attribute("data-kernel")

    # Run below from the spinning cell: it runs, the next one waits behind it.
    tab.cell(3).locator("button.run-below").click()
    expect(tab.outputs(3).locator("pre.stream")).to_have_text("spin", timeout=RUN_TIMEOUT_MS)
    tab.expect_status(3, "running")
    tab.expect_status(4, "queued")
    expect(tab.cell(4).locator(".cell-status")).to_have_text("queued · 1 ahead")
    expect(tab.cell(3).locator("button.interrupt")).to_be_visible()
    expect(tab.cell(3).locator("button.cancel")).to_be_hidden()
    # The running cell's time moves while it runs.
    running = tab.cell(3).locator(".cell-status")
    expect(running).to_have_text(re.compile(r"^running \d+\.\d s · kernel "))
    first = running.inner_text()
    expect(running).not_to_have_text(first, timeout=SYNC_TIMEOUT_MS)
    expect(tab.page.locator(".kernel-status")).to_have_attribute("data-status", "busy")

    cancel = tab.cell(4).locator("button.cancel")
    expect(cancel).to_be_visible()
    cancel.click()
    tab.expect_status(4, "cancelled", timeout=SYNC_TIMEOUT_MS)
    expect(cancel).to_be_hidden()
    tab.cell(3).locator("button.interrupt").click()
    tab.expect_status(3, "cancelled")
    expect(tab.page.locator(".kernel-status")).to_have_attribute("data-status", "idle")
    expect(tab.outputs(4).locator(".output")).to_have_count(0)  # it never ran

    # Run below from cell 1: cells 1..4 run again in order (cell 0's count stays).
    tab.page.keyboard.press("Escape")
    tab.cell(1).locator("button.run-below").click()
    expect(tab.outputs(2).locator("pre.stream")).to_have_text("below", timeout=RUN_TIMEOUT_MS)
    expect(tab.outputs(3).locator("pre.stream")).to_have_text("spin", timeout=RUN_TIMEOUT_MS)
    tab.cell(3).locator("button.interrupt").click()
    tab.expect_status(3, "cancelled")
    tab.expect_status(4, "done")  # queued behind the interrupted cell, it then ran
    expect(tab.outputs(4).locator("pre.stream")).to_have_text("after")
    expect(tab.cell(0).locator(".prompt")).to_have_text("[1]:")
    prompts = [tab.cell(i).locator(".prompt").inner_text() for i in (1, 2, 4)]
    counts = [int(text.strip("[]:")) for text in prompts]
    assert counts == sorted(counts) and counts[0] > 2, prompts

    # One cell's outputs cleared, the others kept.
    tab.cell(2).locator("button.clear-cell").click()
    expect(tab.outputs(2).locator(".output")).to_have_count(0, timeout=SYNC_TIMEOUT_MS)
    expect(tab.outputs(4).locator("pre.stream")).to_have_text("after")
    assert tab.errors == []
    tab.page.close()


@pytest.mark.slow
def test_kernel_status_says_how_to_start_one(relay: RelayProcess, relay_process, context) -> None:
    """A relay that starts no kernels (``--kernels none``): the header shows the command; with auto
    it does not."""
    from playwright.sync_api import expect

    manual = relay_process("--kernels", "none")
    notebook = new_notebook(manual, "no kernels")
    tab = ClientPage(context.new_page(), manual)
    tab.goto(notebook)
    kernel = tab.page.locator(".kernel-status")
    expect(kernel).to_have_attribute("data-status", "none")
    expect(kernel.locator(".kernel-text")).to_have_text(
        "kernel: none · start one with", timeout=SYNC_TIMEOUT_MS
    )
    expect(kernel.locator(".kernel-command")).to_have_text(
        f"anode kernel --relay {manual.url} --notebook {notebook}"
    )
    assert tab.errors == []
    tab.page.close()
    # An auto-starting relay (the module's): nothing to do by hand.
    tab = ClientPage(context.new_page(), relay)
    tab.goto(new_notebook(relay, "auto kernels"))
    kernel = tab.page.locator(".kernel-status")
    expect(kernel.locator(".kernel-text")).to_have_text(
        "kernel: none (one starts when you run a cell)", timeout=SYNC_TIMEOUT_MS
    )
    expect(kernel.locator(".kernel-command")).to_be_hidden()
    assert tab.errors == []
    tab.page.close()


_PNG = (
    "iVBORw0KGgoAAAANSUhEUgAAAAIAAAACCAIAAAD91JpzAAAAFklEQVR4nGP8z8DAwMDAxMDAwMDAAAANHQEDK+mm"
    "yAAAAABJRU5ErkJggg=="
)


@pytest.mark.slow
def test_outputs_colours_long_images_json(relay: RelayProcess, context) -> None:
    """A real kernel prints colours and raises; long output scrolls and collapses; PNG, JPEG,
    SVG and JSON render (SVG in a sandboxed frame)."""
    from playwright.sync_api import expect

    source = (
        "from IPython.display import Image, SVG, JSON, display\n"
        "import base64\n"
        "print('\\x1b[1;31mred\\x1b[0m plain \\x1b[42mon green\\x1b[0m')\n"
        f"display(Image(data=base64.b64decode({_PNG!r}), width=40))\n"
        "display({'image/jpeg': "
        "'/9j/4AAQSkZJRgABAQAAAQABAAD/2wBDAAgGBgcGBQgHBwcJCQgKDBQNDAsLDBkSEw8UHRofHh0aHBwg'}, "
        "raw=True)\n"
        'display(SVG(\'<svg xmlns="http://www.w3.org/2000/svg" width="20" height="20">'
        '<circle cx="10" cy="10" r="9" fill="red"/></svg>\'))\n'
        "display(JSON({'name': 'anode', 'nested': {'deep': [1, 2, 3]}, 'ok': True}))\n"
    )
    notebook = _notebook(
        relay,
        source,
        "\n".join(f"print({i})" for i in range(3)) + "\nfor i in range(100): print(i)",
        "def f():\n    return 1 / 0\nf()",
    )
    tab = ClientPage.open(context, relay, notebook)
    expect(tab.cells).to_have_count(3, timeout=SYNC_TIMEOUT_MS)
    tab.page.click("button.run-all")
    tab.expect_status(2, "error")
    tab.expect_status(0, "done")

    # Colours: spans with classes, no escape code left anywhere.
    stream = tab.outputs(0).locator("pre.stream")
    expect(stream.locator("span.ansi-red.ansi-bold")).to_have_text("red")
    expect(stream.locator("span.ansi-bg-green")).to_have_text("on green")
    expect(stream).to_have_text("red plain on green")
    traceback = tab.outputs(2).locator("pre.error")
    expect(traceback).to_contain_text("ZeroDivisionError")
    for index in range(3):
        assert "\x1b" not in tab.outputs(index).inner_text()

    # Images: PNG with its width, JPEG, SVG in a sandboxed frame; JSON as a tree.
    png = tab.outputs(0).locator(".output.image[data-mime='image/png'] img")
    expect(png).to_have_attribute("src", re.compile(r"^data:image/png;base64,iVBOR"))
    expect(png).to_have_attribute("width", "40")
    assert png.evaluate("img => img.complete && img.naturalWidth") == 2  # it decoded
    expect(tab.outputs(0).locator(".output.image[data-mime='image/jpeg'] img")).to_have_count(1)
    svg = tab.outputs(0).locator(".output.svg iframe.output-frame")
    expect(svg).to_have_attribute("sandbox", "allow-scripts")
    expect(tab.outputs(0).frame_locator(".output.svg iframe").locator("circle")).to_have_count(1)
    tree = tab.outputs(0).locator(".output.json")
    expect(tree.locator("details.json-node").first).to_have_attribute("open", "")
    expect(tree.locator(".json-key", has_text="name")).to_have_count(1)
    expect(tree.locator(".json-string")).to_have_text('"anode"')
    nested = tree.locator(
        "details.json-node details.json-node"
    ).first  # "nested", the first object inside
    expect(nested.locator("summary").first).to_contain_text("nested: {…} 1 key")
    assert nested.get_attribute("open") is None  # deeper levels start folded
    expect(nested.locator(".json-key", has_text="deep")).to_be_hidden()
    nested.locator("summary").first.click()
    expect(nested.locator(".json-key", has_text="deep")).to_be_visible()

    # A long output starts in a scrolling box; "show all" shows it whole; collapse hides it.
    outputs = tab.outputs(1)
    expect(outputs.locator("pre.stream")).to_contain_text("99", timeout=RUN_TIMEOUT_MS)
    expect(outputs).to_have_class(re.compile(r"\bscrolled\b"))
    assert outputs.evaluate("e => e.scrollHeight > e.clientHeight")
    tab.cell(1).locator("button.toggle-scroll").click()
    expect(outputs).not_to_have_class(re.compile(r"\bscrolled\b"))
    tab.cell(1).locator("button.toggle-outputs").click()
    expect(outputs).to_be_hidden()
    note = tab.cell(1).locator(".outputs-collapsed")
    expect(note).to_have_text(re.compile(r"1 output hidden \(10\d lines\)"))
    note.click()
    expect(outputs).to_be_visible()
    expect(note).to_be_hidden()
    # Short outputs are not boxed.
    expect(tab.outputs(2)).not_to_have_class(re.compile(r"\bscrolled\b"))
    assert tab.errors == []
    tab.page.close()


@pytest.mark.slow
def test_markdown_code_is_highlighted(relay: RelayProcess, context) -> None:
    """Fenced Python in a markdown cell comes out in highlighted spans; other code stays plain."""
    from playwright.sync_api import expect

    notebook = new_notebook(relay, "markdown")
    cell = cell_ids(relay, notebook)[0]
    text = (
        "# Code\n\n```python\ndef f(x):\n    return x + 1  # one more\n```\n\n"
        "```\n<b>not html</b>\n```\n"
    )
    push(relay, notebook, _event("cellTypeChanged", cell_id=cell, cell_type="markdown"))
    tab = ClientPage.open(context, relay, notebook)
    tab.cell(0).locator(
        ".markdown-rendered"
    ).dblclick()  # an empty markdown cell: double-click to write
    # Inserted, not typed: typing Enter inside a fence would auto-indent the next line.
    tab.page.keyboard.insert_text(text)
    tab.expect_source(0, text)
    tab.page.keyboard.press("Control+Enter")
    rendered = tab.cell(0).locator(".markdown-rendered")
    code = rendered.locator("pre code.language-python")
    expect(code.locator(".tok-keyword").first).to_have_text("def")
    expect(code.locator(".tok-comment")).to_have_text("# one more")
    expect(code).to_have_text("def f(x):\n    return x + 1  # one more")
    plain = rendered.locator("pre code:not(.language-python)")
    expect(plain).to_have_text("<b>not html</b>")
    expect(plain.locator("b")).to_have_count(0)
    assert tab.errors == []
    tab.page.close()


@pytest.mark.slow
def test_markdown_math_and_latex_output(relay: RelayProcess, context) -> None:
    """`$…$` and `$$…$$` in markdown, and a kernel's text/latex, render with KaTeX (vendored fonts
    and CSS); dollar amounts stay text; no CSP violation, no console error."""
    from playwright.sync_api import expect

    notebook = _notebook(
        relay,
        "from IPython.display import display\n"
        "display({'text/latex': '$$\\\\frac{a}{b}$$', 'text/plain': 'a/b'}, raw=True)",
    )
    markdown_cell = uuid.uuid4().hex
    text = (
        "Inline $x^2$, costs $5 and $10.\n\nEscaped \\$y$ stays.\n\n$$\n\\int_0^1 f(t)\\,dt\n$$\n"
    )
    push(relay, notebook, _event("cellCreated", cell_id=markdown_cell, cell_type="markdown",
                                 after=cell_ids(relay, notebook)[0], source=text))  # fmt: skip
    page = context.new_page()
    console: list[str] = []
    page.on(
        "console", lambda m: console.append(f"{m.type}: {m.text}") if m.type == "error" else None
    )
    tab = ClientPage(page, relay)
    tab.goto(notebook)
    rendered = tab.cell(1).locator(".markdown-rendered")
    expect(rendered.locator("p .katex")).to_have_count(1)
    expect(rendered.locator("p .katex annotation")).to_have_text(
        "x^2"
    )  # MathML kept for screen readers
    expect(rendered.locator("p").first).to_contain_text("costs $5 and $10.")
    expect(rendered.locator("p").nth(1)).to_have_text("Escaped $y$ stays.")
    expect(rendered.locator(".math-display .katex-display annotation")).to_have_text(
        "\\int_0^1 f(t)\\,dt"
    )
    # The stylesheet and a font came from the relay: KaTeX's layout, not raw text.
    font = rendered.locator(".katex-html").first.evaluate(
        "e => getComputedStyle(e.closest('.katex')).fontFamily"
    )
    assert "KaTeX_Main" in font
    page.wait_for_function("document.fonts.check('1em KaTeX_Main')", timeout=SYNC_TIMEOUT_MS)
    tab.page.click("button.run-all")
    tab.expect_status(0, "done")
    latex = tab.outputs(0).locator("div.output.latex")
    expect(latex.locator(".katex-display annotation")).to_have_text("\\frac{a}{b}")
    assert tab.errors == [] and console == []
    tab.page.close()
