"""The kernel's cell runner in CPython: a real ``Runner`` writing to a ``RecordingSink``.

Every output a test sees is also checked with ``shared_schema``'s
``check_output``, so what the runner produces is what the relay accepts.
The same runner is exercised in real Pyodide by ``test_kernel_pyodide.py``.
"""

from __future__ import annotations

import asyncio
import base64
import builtins
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kernel_headless import display as display_module
from kernel_headless.display import HTML, Image, format_mimebundle
from kernel_headless.execution import Runner, transform_magics
from kernel_headless.sink import CappedSink, RecordingSink
from kernel_headless.streams import StreamWriter
from shared_schema import limits
from shared_schema.outputs import STREAM_NAMES, check_output

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 16


def run(runner: Runner, source: str) -> tuple[str, RecordingSink]:
    """Run one cell; check that every call the sink got is valid on the wire."""
    sink = RecordingSink()
    status = asyncio.run(runner.run(source, sink))
    _check_calls(sink)
    return status, sink


def _check_calls(sink: RecordingSink) -> None:
    for call in sink.calls:
        if call["call"] == "output":
            assert check_output(call["output"]) == call["output"]
        elif call["call"] == "stream":
            assert call["name"] in STREAM_NAMES and call["text"]
            assert len(call["text"]) <= limits.MAX_STREAM_TEXT
        elif call["call"] == "update_display":
            check_output({"output_type": "display_data", "data": call["data"],
                          "metadata": call["metadata"]})  # fmt: skip
        json.dumps(call).encode("utf-8")  # JSON-safe, even with odd text


def only_error(sink: RecordingSink) -> dict:
    errors = [output for output in sink.outputs if output["output_type"] == "error"]
    assert len(errors) == 1, sink.calls
    return errors[0]


@pytest.fixture
def runner() -> Runner:
    return Runner()


@pytest.fixture(autouse=True)
def _forget_the_ipython_stand_in() -> Iterator[None]:
    """Runs register ``IPython`` in ``sys.modules``; leave the test process as it was."""
    before = set(sys.modules)
    yield
    for name in [name for name in sys.modules if name not in before]:
        if name == "IPython" or name.startswith("IPython."):
            del sys.modules[name]


# --- streams ---------------------------------------------------------------------------


def test_many_prints_become_a_few_stream_calls_with_the_exact_text(runner: Runner) -> None:
    status, sink = run(runner, "for i in range(100_000):\n    print(i)")
    assert status == "ok"
    assert sink.text("stdout") == "".join(f"{i}\n" for i in range(100_000))
    assert 1 <= len(sink.calls) <= 50, len(sink.calls)


def test_writer_forwards_by_size_age_and_flush() -> None:
    now = [0.0]
    sink = RecordingSink()
    writer = StreamWriter("stdout", sink, clock=lambda: now[0], max_delay=0.05, max_bytes=10)
    writer.write("abc")
    writer.write("def")
    assert sink.calls == []  # young and small: still buffered
    writer.write("ghijk")  # 11 characters now
    assert [c["text"] for c in sink.calls] == ["abcdefghij", "k"]  # no chunk above max_bytes
    writer.write("l")
    now[0] = 0.06
    writer.write("m")  # the buffer has grown old
    writer.write("n")
    writer.flush()
    assert [c["text"] for c in sink.calls] == ["abcdefghij", "k", "lm", "n"]
    writer.flush()
    assert len(sink.calls) == 4


def test_writer_behaves_like_a_text_stream() -> None:
    sink = RecordingSink()
    writer = StreamWriter("stderr", sink)
    assert not writer.isatty() and writer.writable() and not writer.readable()
    assert writer.encoding == "utf-8" and writer.errors and writer.name == "<stderr>"
    with pytest.raises(TypeError, match="must be str, not bytes"):
        writer.write(b"raw")
    with pytest.raises(TypeError):
        writer.write(42)  # type: ignore[arg-type]
    with pytest.raises(OSError):  # io.UnsupportedOperation
        writer.fileno()
    assert writer.write("a") == 1
    writer.writelines(["b\n", "c\n"])
    writer.close()
    writer.write("still works\n")
    writer.flush()
    assert sink.text("stderr") == "ab\nc\nstill works\n"


def test_surrogates_and_junk_never_break_json(runner: Runner) -> None:
    escaped = b"caf\xc3\xa9 \xff".decode("ascii", "surrogateescape")  # "caf\udcc3\udca9 \udcff"
    status, sink = run(runner, f"print({escaped!r}); print('lone \\ud800 x\\x00y')")
    assert status == "ok"
    assert sink.text() == "café \ufffd\nlone \ufffd x\x00y\n"


def test_text_printed_before_an_await_shows_while_the_cell_waits(runner: Runner) -> None:
    sink = RecordingSink()

    async def main() -> list[str]:
        task = asyncio.create_task(
            runner.run(
                "import asyncio\nprint('early')\nawait asyncio.sleep(0.2)\nprint('late')", sink
            )
        )
        await asyncio.sleep(0.1)
        seen = [call["text"] for call in sink.calls]
        assert await task == "ok"
        return seen

    assert asyncio.run(main()) == ["early\n"]
    assert sink.text() == "early\nlate\n"


def test_streams_are_restored_after_a_run(runner: Runner) -> None:
    before = sys.stdout, sys.stderr, builtins.input
    run(runner, "print('x')")
    run(runner, "import sys\nsys.stdout = None\n1/0")
    assert (sys.stdout, sys.stderr, builtins.input) == before


def test_prints_and_displays_keep_their_order(runner: Runner) -> None:
    status, sink = run(
        runner,
        "import sys\nprint('a')\nprint('e', file=sys.stderr)\ndisplay(1)\nprint('b')\n2",
    )
    assert status == "ok"
    kinds = [
        (c["call"], c.get("name") or c.get("output", {}).get("output_type")) for c in sink.calls
    ]
    assert kinds == [
        ("stream", "stdout"), ("stream", "stderr"), ("output", "display_data"),
        ("stream", "stdout"), ("output", "execute_result"),
    ]  # fmt: skip


# --- results ---------------------------------------------------------------------------


def test_last_expression_is_the_result(runner: Runner) -> None:
    status, sink = run(runner, "x = 20\nx + 1")
    assert status == "ok"
    assert sink.outputs == [
        {"output_type": "execute_result", "execution_count": 1,
         "data": {"text/plain": "21"}, "metadata": {}},
    ]  # fmt: skip
    assert run(runner, "y = 2")[1].calls == []
    assert run(runner, "None")[1].calls == []
    assert run(runner, "print('p')")[1].outputs == []  # print returns None
    assert run(runner, "# only a comment\n")[0] == "ok"
    assert run(runner, "")[0] == "ok"


@pytest.mark.parametrize("source", ["1;", "1;  # hidden", "1 ;\n\n# trailing\n", "[1,\n 2];"])
def test_a_trailing_semicolon_hides_the_result(runner: Runner, source: str) -> None:
    status, sink = run(runner, source)
    assert status == "ok" and sink.calls == []


def test_a_semicolon_elsewhere_does_not(runner: Runner) -> None:
    assert run(runner, "';'")[1].outputs[0]["data"] == {"text/plain": "';'"}
    assert run(runner, "x = 1; x")[1].outputs[0]["data"] == {"text/plain": "1"}
    assert run(runner, "2  # a;")[1].outputs[0]["data"] == {"text/plain": "2"}


def test_result_history_like_ipython(runner: Runner) -> None:
    for value in ("10", "20", "30"):
        run(runner, value)
    status, sink = run(runner, "(_, __, ___, _1, _3, Out[2])")
    assert sink.outputs[0]["data"]["text/plain"] == "(30, 20, 10, 10, 30, 20)"
    assert sink.outputs[0]["execution_count"] == 4
    assert run(runner, "In[1]")[1].outputs[0]["data"]["text/plain"] == "'10'"


def test_containers_are_pretty_printed(runner: Runner) -> None:
    text = run(runner, "{'key': list(range(40))}")[1].outputs[0]["data"]["text/plain"]
    assert text.startswith("{'key': [0,\n") and text.count("\n") == 39


def test_top_level_await_and_async_functions(runner: Runner) -> None:
    status, sink = run(runner, "import asyncio\nawait asyncio.sleep(0.01)\n'slept'")
    assert status == "ok" and sink.outputs[0]["data"]["text/plain"] == "'slept'"
    run(runner, "async def double(x):\n    await asyncio.sleep(0)\n    return 2 * x")
    assert run(runner, "await double(21)")[1].outputs[0]["data"]["text/plain"] == "42"
    source = (
        "async def count(n):\n    for i in range(n):\n        yield i\n[i async for i in count(3)]"
    )
    assert run(runner, source)[1].outputs[0]["data"]["text/plain"] == "[0, 1, 2]"


def test_namespace_is_main_with_display_and_get_ipython(runner: Runner) -> None:
    status, sink = run(
        runner,
        "import pickle\nclass Point:\n    pass\n"
        "(__name__, type(pickle.loads(pickle.dumps(Point()))).__name__,"
        " callable(display), get_ipython().execution_count)",
    )
    assert status == "ok"
    assert sink.outputs[0]["data"]["text/plain"] == "('__main__', 'Point', True, 1)"


def test_execution_count_counts_every_run_and_reset_starts_over(runner: Runner) -> None:
    run(runner, "x = 1")
    run(runner, "1/0")
    run(runner, "def (")
    assert runner.execution_count == 3
    assert run(runner, "x")[1].outputs[0]["execution_count"] == 4
    runner.reset()
    assert runner.execution_count == 0
    status, sink = run(runner, "x")
    assert status == "error" and only_error(sink)["ename"] == "NameError"
    assert runner.execution_count == 1


# --- errors ----------------------------------------------------------------------------


def test_traceback_shows_user_frames_only(runner: Runner) -> None:
    run(runner, "def inner():\n    return {}['missing']")
    status, sink = run(runner, "import json\n\ndef outer():\n    return inner()\n\nouter()")
    assert status == "error"
    error = only_error(sink)
    assert error["ename"] == "KeyError" and error["evalue"] == "'missing'"
    text = "\n".join(error["traceback"])
    assert text.startswith("Traceback (most recent call last):")
    assert '"<cell-2>", line 6, in <module>' in text and "    outer()" in text
    assert '"<cell-1>", line 2, in inner' in text and "return {}['missing']" in text
    assert "kernel_headless" not in text and "execution.py" not in text
    assert error["traceback"][-1] == "KeyError: 'missing'"


def test_traceback_keeps_library_frames_and_chained_causes(runner: Runner) -> None:
    status, sink = run(
        runner,
        "import json\ntry:\n    json.loads('{')\nexcept ValueError as e:\n"
        "    raise RuntimeError('bad config') from e",
    )
    text = "\n".join(only_error(sink)["traceback"])
    assert "json" in text and "decoder.py" in text  # the library's own frame
    assert "The above exception was the direct cause" in text
    assert text.endswith("RuntimeError: bad config")


def test_syntax_error_shows_the_line_and_a_caret(runner: Runner) -> None:
    status, sink = run(runner, "x = 1\ny = (2 +\n")
    error = only_error(sink)
    assert status == "error" and error["ename"] == "SyntaxError"
    assert error["traceback"][:2] == ['  File "<cell-1>", line 2', "    y = (2 +"]
    assert error["traceback"][2].strip() == "^"
    assert "ast.py" not in "\n".join(error["traceback"])


def test_keyboard_interrupt_is_a_cancelled_run(runner: Runner) -> None:
    status, sink = run(runner, "x = 1\nraise KeyboardInterrupt")
    assert status == "cancelled"
    assert only_error(sink)["ename"] == "KeyboardInterrupt"
    assert run(runner, "x")[1].outputs[0]["data"]["text/plain"] == "1"


def test_cancelling_the_task_interrupts_an_awaiting_cell(runner: Runner) -> None:
    sink = RecordingSink()

    async def main() -> str:
        task = asyncio.create_task(runner.run("import asyncio\nawait asyncio.sleep(30)", sink))
        await asyncio.sleep(0.05)
        task.cancel()
        return await task

    assert asyncio.run(main()) == "cancelled"
    error = only_error(sink)
    assert error["ename"] == "KeyboardInterrupt" and "<cell-1>" in "\n".join(error["traceback"])
    assert run(runner, "1 + 1")[0] == "ok"


def test_cancelled_error_raised_by_the_cell_is_an_ordinary_error(runner: Runner) -> None:
    status, sink = run(runner, "import asyncio\nraise asyncio.CancelledError()")
    assert status == "error" and only_error(sink)["ename"] == "CancelledError"


@pytest.mark.parametrize(
    "call", ["import sys; sys.exit()", "import sys; sys.exit(3)", "exit()", "quit()"]
)
def test_system_exit_does_not_exit(runner: Runner, call: str) -> None:
    run(runner, "kept = 'yes'")
    status, sink = run(runner, call)
    error = only_error(sink)
    assert status == "error" and error["ename"] == "SystemExit"
    assert "does not exit" in error["evalue"] and "does not exit" in error["traceback"][-1]
    assert run(runner, "kept")[1].outputs[0]["data"]["text/plain"] == "'yes'"


def test_recursion_and_memory_errors_leave_the_runner_usable(runner: Runner) -> None:
    status, sink = run(runner, "def down(n):\n    return down(n + 1)\ndown(0)")
    error = only_error(sink)
    assert status == "error" and error["ename"] == "RecursionError"
    assert any("Previous line repeated" in line for line in error["traceback"])
    status, sink = run(runner, "bytearray(1 << 60)")
    assert status == "error" and only_error(sink)["ename"] == "MemoryError"
    assert run(runner, "sum(range(10))")[1].outputs[0]["data"]["text/plain"] == "45"


def test_input_fails_clearly_instead_of_hanging(runner: Runner) -> None:
    status, sink = run(runner, "name = input('Your name? ')")
    error = only_error(sink)
    assert error["ename"] == "StdinNotImplementedError"
    assert error["evalue"] == "input() is not supported in Anode yet"
    assert "name = input('Your name? ')" in "\n".join(error["traceback"])


def test_broken_str_of_an_exception(runner: Runner) -> None:
    source = "class Odd(Exception):\n    def __str__(self):\n        raise ValueError\nraise Odd()"
    error = only_error(run(runner, source)[1])
    assert error["ename"] == "Odd" and "str() failed" in error["evalue"]


# --- magics ----------------------------------------------------------------------------


def test_pip_magics_call_the_hosts_installer() -> None:
    installed: list[list[str]] = []

    async def pip(args: list[str]) -> str:
        installed.append(args)
        print("installed", *args[1:])
        return "a value nobody should see"

    runner = Runner(pip=pip)
    status, sink = run(
        runner, '%pip install numpy "pandas>=2"\nif True:\n    !pip install -U rich\n'
    )
    assert status == "ok"
    assert installed == [["install", "numpy", "pandas>=2"], ["install", "-U", "rich"]]
    assert sink.outputs == []  # the installer's return value is not a result
    assert sink.text() == "installed numpy pandas>=2\ninstalled -U rich\n"


def test_pip_without_an_installer_and_unknown_magics_fail_clearly(runner: Runner) -> None:
    error = only_error(run(runner, "%pip install numpy")[1])
    assert error["ename"] == "UsageError" and "%pip is not available" in error["evalue"]
    error = only_error(run(runner, "x = 1\n%timeit x + 1")[1])
    assert error["evalue"].startswith(
        "unknown magic %timeit (Anode runs %pip; it accepts and ignores "
    )
    assert "%matplotlib" in error["evalue"]  # says what does work
    assert error["traceback"][-2] == "    %timeit x + 1"
    assert error["traceback"][-1] == f"UsageError: {error['evalue']}"
    assert only_error(run(runner, "%%time\nx = 1")[1])["evalue"].startswith("unknown magic %%time")
    assert "not supported" in only_error(run(runner, "!ls -l")[1])["evalue"]
    with pytest.raises(Exception, match="unknown magic %who"):
        runner.get_ipython().run_line_magic("who", "")


def test_harmless_pasted_magics_are_no_ops(runner: Runner) -> None:
    source = "%matplotlib inline\n%matplotlib\nx = 1\nx + 1"
    status, sink = run(runner, source)
    assert status == "ok"
    assert [call["call"] for call in sink.calls] == ["output"]  # no note: Anode does that anyway
    assert sink.outputs[0]["data"]["text/plain"] == "2"
    source = (
        "%config InlineBackend.figure_format = 'retina'\n"
        "%load_ext autoreload\n"
        "%autoreload 2\n"
        "if True:\n"
        "    %matplotlib  widget\n"
        "print('ran')"
    )
    status, sink = run(runner, source)
    assert status == "ok" and sink.outputs == []
    assert sink.text("stderr").splitlines() == [  # the figure format is taken (figures.py)
        "%load_ext autoreload: ignored (no effect in Anode)",
        "%autoreload 2: ignored (no effect in Anode)",
        "%matplotlib widget: ignored (no effect in Anode)",
    ]
    assert sink.text() == "ran\n"
    assert runner.get_ipython().run_line_magic("matplotlib", "inline") is None


@pytest.mark.parametrize(
    "source",
    [
        "msg = ('value: %s'\n       % 3)",
        "text = '''\n%not_a_magic\n!nor this\n'''",
        "total = 7 \\\n    % 4",
        "ok = 1 \\\n    != 2",
    ],
)
def test_percent_and_bang_inside_code_are_not_magics(source: str) -> None:
    assert transform_magics(source) == source
    assert run(Runner(), source)[0] == "ok"


def test_magics_keep_line_numbers() -> None:
    source = "a = 1\n%pip install x\nb = 2\n"
    transformed = transform_magics(source)
    assert transformed.count("\n") == source.count("\n")
    assert transformed.splitlines()[1] == "await __anode_pip__(['install', 'x']);"


# --- display ---------------------------------------------------------------------------


class Rich:
    def _repr_html_(self) -> str:
        return "<b>rich</b>"

    def _repr_markdown_(self) -> str:
        return "**rich**"

    def _repr_svg_(self) -> str:
        return "<svg></svg>"

    def _repr_png_(self) -> bytes:
        return PNG

    def _repr_jpeg_(self) -> tuple[bytes, dict]:
        return b"\xff\xd8jpeg", {"width": 10}

    def _repr_json_(self) -> dict:
        return {"a": [1, 2]}

    def _repr_latex_(self) -> str:
        return r"$x^2$"

    def __repr__(self) -> str:
        return "Rich()"


def test_every_repr_method_becomes_a_mime_type() -> None:
    data, metadata = format_mimebundle(Rich())
    assert data == {
        "text/html": "<b>rich</b>",
        "text/markdown": "**rich**",
        "image/svg+xml": "<svg></svg>",
        "image/png": base64.b64encode(PNG).decode(),
        "image/jpeg": base64.b64encode(b"\xff\xd8jpeg").decode(),
        "application/json": {"a": [1, 2]},
        "text/latex": "$x^2$",
        "text/plain": "Rich()",
    }
    assert metadata == {"image/jpeg": {"width": 10}}
    assert format_mimebundle(Rich, include=None)[0] == {"text/plain": repr(Rich)}  # a class
    assert set(format_mimebundle(Rich(), include=["text/html"])[0]) == {"text/html"}


def test_repr_mimebundle_wins_and_brings_metadata() -> None:
    class Bundle:
        def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> tuple[dict, dict]:
            return {"text/html": "<i>b</i>", "application/vnd.custom+json": {"k": 1}}, {"x": 1}

        def _repr_html_(self) -> str:
            return "never used"

    data, metadata = format_mimebundle(Bundle())
    assert data["text/html"] == "<i>b</i>" and data["application/vnd.custom+json"] == {"k": 1}
    assert "text/plain" in data and metadata == {"x": 1}


def test_a_broken_repr_costs_a_mime_type_not_the_cell(runner: Runner) -> None:
    source = (
        "class Broken:\n"
        "    def _repr_html_(self):\n        raise ValueError('no html today')\n"
        "    def _repr_json_(self):\n        return {'not': object()}\n"
        "    def __repr__(self):\n        return 'Broken()'\n"
        "Broken()"
    )
    status, sink = run(runner, source)
    assert status == "ok"
    assert sink.outputs[0]["data"] == {"text/plain": "Broken()"}
    assert "_repr_html_() failed: ValueError: no html today" in sink.text("stderr")
    status, sink = run(runner, "class NoRepr:\n    def __repr__(self):\n        1/0\nNoRepr()")
    assert status == "ok" and "repr() failed" in sink.outputs[0]["data"]["text/plain"]


def test_rich_result_and_display_of_helper_objects(runner: Runner, tmp_path: Path) -> None:
    (tmp_path / "dot.png").write_bytes(PNG)
    source = f"""
from IPython.display import HTML, Markdown, SVG, Image, JSON, Javascript, Latex, Math, Pretty
display(HTML('<p>h</p>'), Markdown('# m'), SVG('<svg/>'), Latex('$a$'), Math('b'),
        Javascript('1'), JSON({{'k': [1]}}, expanded=True), Pretty('as is'))
display(Image(data={PNG!r}, width=40), Image(filename={str(tmp_path / "dot.png")!r}),
        Image(url='https://example.org/a.jpg', width=3))
HTML('<b>last</b>')
"""
    status, sink = run(runner, source)
    assert status == "ok", sink.calls
    shown = [output["data"] for output in sink.outputs]
    assert shown[0]["text/html"] == "<p>h</p>"
    assert shown[1]["text/markdown"] == "# m"
    assert shown[2]["image/svg+xml"] == "<svg/>"
    assert shown[3]["text/latex"] == "$a$"
    assert shown[4]["text/latex"] == r"$\displaystyle b$"
    assert shown[5]["application/javascript"] == "1"
    assert shown[6]["application/json"] == {"k": [1]}
    assert sink.outputs[6]["metadata"] == {"application/json": {"expanded": True, "root": "root"}}
    assert shown[7] == {"text/plain": "as is"}
    assert shown[8]["image/png"] == shown[9]["image/png"] == base64.b64encode(PNG).decode()
    assert sink.outputs[8]["metadata"] == {"image/png": {"width": 40}}
    assert shown[10]["text/html"] == '<img src="https://example.org/a.jpg" width="3"/>'
    assert sink.outputs[-1]["output_type"] == "execute_result"
    assert sink.outputs[-1]["data"] == {"text/html": "<b>last</b>", "text/plain": "<HTML object>"}


def test_display_ids_and_updates(runner: Runner) -> None:
    source = """
from IPython.display import display, update_display
h = display('one', display_id=True)
display('two', display_id='fixed')
h.update('one, updated')
update_display('two, updated', display_id='fixed')
display(display_id='later').display('late')
"""
    status, sink = run(runner, source)
    assert status == "ok"
    first, second, third = sink.outputs
    fresh = first["transient"]["display_id"]
    assert len(fresh) >= 16 and second["transient"] == {"display_id": "fixed"}
    assert third["transient"] == {"display_id": "later"}
    updates = [(c["display_id"], c["data"]) for c in sink.calls if c["call"] == "update_display"]
    assert updates == [
        (fresh, {"text/plain": "'one, updated'"}),
        ("fixed", {"text/plain": "'two, updated'"}),
    ]
    with pytest.raises(ValueError):
        display_module.display("x", display_id="x" * 500)


def test_clear_output_waits_after_flushing_text(runner: Runner) -> None:
    source = (
        "from IPython.display import clear_output\n"
        "print('old')\nclear_output(wait=True)\nprint('new')"
    )
    status, sink = run(runner, source)
    assert [c["call"] for c in sink.calls] == ["stream", "clear", "stream"]
    assert sink.calls[1] == {"call": "clear", "wait": True}
    assert run(runner, "display(1, clear=True)")[1].calls[0] == {"call": "clear", "wait": True}


def test_raw_bundles_metadata_and_ipython_display(runner: Runner) -> None:
    source = """
display({'text/plain': 'raw', 'text/html': '<u>raw</u>'}, raw=True, metadata={'tag': 1})
class Custom:
    def _ipython_display_(self):
        print('custom display')
display(Custom())
Custom()
"""
    status, sink = run(runner, source)
    assert sink.outputs[0]["data"] == {"text/plain": "raw", "text/html": "<u>raw</u>"}
    assert sink.outputs[0]["metadata"] == {"tag": 1}
    assert sink.text() == "custom display\ncustom display\n"
    assert len(sink.outputs) == 1


def test_ipython_imports_work_and_point_here(runner: Runner) -> None:
    source = (
        "import IPython\nfrom IPython.display import HTML, display\n"
        "from IPython.core.display import Markdown\nfrom IPython import get_ipython\n"
        "(HTML.__module__, get_ipython() is IPython.get_ipython(), type(get_ipython()).__name__)"
    )
    status, sink = run(runner, source)
    assert status == "ok", sink.calls
    assert sink.outputs[0]["data"]["text/plain"] == "('kernel_headless.display', True, 'Shell')"
    error = only_error(run(runner, "import IPython.lib.pretty")[1])
    assert error["ename"] == "ModuleNotFoundError"


def test_display_outside_a_cell_prints_text(capsys: pytest.CaptureFixture[str]) -> None:
    display_module.display(HTML("<b>x</b>"), [1, 2])
    display_module.clear_output()
    assert capsys.readouterr().out == "<HTML object>\n[1, 2]\n"


def test_image_needs_a_known_format() -> None:
    with pytest.raises(ValueError, match="unknown image format"):
        Image(data=PNG, format="tiff")
    assert Image(data=b"\xff\xd8rest").mimetype == "image/jpeg"
    with pytest.raises(ValueError, match="download"):
        Image(url="https://example.org/x.png", embed=True)


# --- the output cap ----------------------------------------------------------------------


def test_output_past_the_cap_is_cut_with_one_notice() -> None:
    runner = Runner(cap_bytes=1_000)
    status, sink = run(runner, "for _ in range(5):\n    print('x' * 1000)\ndisplay(1)\n1/0")
    assert status == "error"
    assert sink.text() == "x" * 1000
    assert [c["call"] for c in sink.calls][-2:] == [
        "output",
        "stream",
    ]  # the error, then the notice
    assert only_error(sink)["ename"] == "ZeroDivisionError"  # errors always pass
    notices = [c for c in sink.calls if c["call"] == "stream" and c["name"] == "stderr"]
    assert notices == [
        {"call": "stream", "name": "stderr",
         "text": "[output truncated: 4.1 kB more was not shown; the cap is 1.0 kB per cell]\n"},
    ]  # fmt: skip
    status, sink = run(runner, "print('fine')")
    assert sink.calls == [{"call": "stream", "name": "stdout", "text": "fine\n"}]  # per cell


def test_capped_sink_refuses_what_the_schema_would_reject() -> None:
    sink = RecordingSink()
    capped = CappedSink(sink, cap_bytes=100_000_000)
    too_long = "x" * (limits.MAX_OUTPUT_BYTES + 1)
    huge = {"output_type": "display_data", "data": {"text/plain": too_long}, "metadata": {}}
    capped.output(huge)
    capped.output({"output_type": "display_data", "data": {}, "metadata": {}})
    capped.stream("stderr", "partial line")
    capped.finish()
    capped.finish()
    assert sink.calls[0] == {"call": "stream", "name": "stderr", "text": "partial line"}
    assert sink.calls[1]["text"].startswith("\n[2 outputs were not shown: ")
    assert "the limit is" in sink.calls[1]["text"] and len(sink.calls) == 2


def test_capped_sink_cuts_text_on_a_character_boundary() -> None:
    sink = RecordingSink()
    capped = CappedSink(sink, cap_bytes=5)
    capped.stream("stdout", "ééé")  # 6 bytes
    capped.finish()
    assert sink.text() == "éé"
    assert "6 B" not in sink.text("stderr") and "2 B more" in sink.text("stderr")


def test_drain_merges_text_that_flush_true_split(runner: Runner) -> None:
    status, sink = run(
        runner, "for i in range(1000):\n    print(i, flush=True)\ndisplay(0)\nprint('end')"
    )
    assert len(sink.calls) > 1000  # flush() is honoured: each line left on its own
    drained = sink.drain()
    assert [call["call"] for call in drained] == ["stream", "output", "stream"]
    assert drained[0]["text"] == "".join(f"{i}\n" for i in range(1000))
    assert sink.calls == []


def test_a_stream_kept_from_an_earlier_cell_writes_to_the_running_one(runner: Runner) -> None:
    run(
        runner,
        "import logging, sys\nlog = logging.getLogger('cells')\n"
        "log.addHandler(logging.StreamHandler(sys.stdout))\nlog.propagate = False",
    )
    status, sink = run(runner, "log.warning('from cell 2')")
    assert sink.text() == "from cell 2\n"


def test_a_hosts_own_capped_sink_is_used_as_is(runner: Runner) -> None:
    recorded = RecordingSink()
    capped = CappedSink(recorded, cap_bytes=10)
    asyncio.run(runner.run("print('0123456789abcdef')", capped))
    assert recorded.text() == "0123456789"
    assert recorded.text("stderr") == ""  # the notice is the host's to emit
    capped.finish()
    assert recorded.text("stderr").startswith("[output truncated: 7 B more was not shown")


# --- matplotlib, with the real package ----------------------------------------------------


def test_matplotlib_figures_show_inline_at_show_and_at_the_end(runner: Runner) -> None:
    import base64

    status, sink = run(
        runner,
        "import matplotlib.pyplot as plt\n"
        "print('before')\n"
        "plt.plot([1, 2, 3]); plt.show()\n"
        "print('after')\n"
        "fig, ax = plt.subplots(figsize=(2, 1))\n"
        "ax.bar([1, 2], [3, 4]);",
    )
    assert status == "ok", sink.calls
    kinds = [(c["call"], c.get("output", {}).get("output_type")) for c in sink.calls]
    assert kinds == [
        ("stream", None),
        ("output", "display_data"),
        ("stream", None),
        ("output", "display_data"),
    ]
    first, second = sink.outputs
    for figure in (first, second):
        assert base64.b64decode(figure["data"]["image/png"]).startswith(b"\x89PNG")
        assert figure["data"]["text/plain"].startswith("<Figure size")
    assert second["metadata"]["image/png"] == {"width": 200, "height": 100}
    status, sink = run(runner, "len(plt.get_fignums())")  # shown figures are closed
    assert sink.outputs[0]["data"]["text/plain"] == "0"

    status, sink = run(
        runner, "%config InlineBackend.figure_formats = ['svg']\nplt.plot([3, 1])\nNone"
    )
    assert status == "ok" and "<svg" in sink.outputs[0]["data"]["image/svg+xml"]
    assert "image/png" not in sink.outputs[0]["data"]
    run(runner, "%config InlineBackend.figure_format = 'png'")


def test_a_missing_module_says_how_to_install_it(runner: Runner) -> None:
    status, sink = run(runner, "import surely_not_installed_anywhere.sub")
    assert status == "error"
    error = sink.outputs[0]
    assert error["ename"] == "ModuleNotFoundError"
    assert "%pip install surely_not_installed_anywhere" in "\n".join(error["traceback"])
