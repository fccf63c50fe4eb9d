"""The cell runner in real Pyodide: the kernel's real home (Python 3.14, WebLoop).

One Pyodide start (~3-4 s) runs a handful of cells through ``Runner`` and
prints what the sink recorded as JSON; CPython checks it against the schema.
"""

from __future__ import annotations

import json

import pytest

from shared_schema.outputs import check_output
from tests.pyodide import run_in_pyodide

pytestmark = pytest.mark.slow

PROGRAM = """
import json, sys
from kernel_headless.execution import Runner
from kernel_headless.sink import RecordingSink

CELLS = [
    "print('hello from', 'pyodide')\\n6 * 7",
    "def fail():\\n    return 1 / 0\\nfail()",
    "import asyncio\\nawait asyncio.sleep(0.01)\\n'awaited'",
    "from IPython.display import HTML, display\\n"
    "h = display(HTML('<b>1</b>'), display_id='progress')\\nh.update(HTML('<b>2</b>'))",
    "raise KeyboardInterrupt",
    "sys_platform = __import__('sys').platform\\nsys_platform",
]
runner = Runner()
runs = []
for source in CELLS:
    sink = RecordingSink()
    status = await runner.run(source, sink)
    runs.append({"status": status, "calls": sink.calls})

# WebLoop's timers flush text printed before an await while the cell still waits.
import asyncio
sink = RecordingSink()
task = asyncio.ensure_future(
    runner.run("print('early')\\nawait asyncio.sleep(0.3)\\nprint('late')", sink)
)
await asyncio.sleep(0.15)
early = sink.text()
await task
print(json.dumps({"platform": sys.platform, "runs": runs, "early": early, "all": sink.text()}))
"""


def test_runner_in_pyodide() -> None:
    result = json.loads(run_in_pyodide(PROGRAM, packages=("shared_schema", "kernel_headless")))
    assert result["platform"] == "emscripten"
    runs = result["runs"]
    for run in runs:
        for call in run["calls"]:
            if call["call"] == "output":
                assert check_output(call["output"]) == call["output"]
    printed, failed, awaited, displayed, interrupted, platform = runs

    assert printed["status"] == "ok"
    assert printed["calls"] == [
        {"call": "stream", "name": "stdout", "text": "hello from pyodide\n"},
        {"call": "output", "output": {"output_type": "execute_result", "execution_count": 1,
                                      "data": {"text/plain": "42"}, "metadata": {}}},
    ]  # fmt: skip

    assert failed["status"] == "error"
    error = failed["calls"][0]["output"]
    assert error["ename"] == "ZeroDivisionError"
    text = "\n".join(error["traceback"])
    assert '"<cell-2>", line 3, in <module>' in text and "return 1 / 0" in text
    assert "kernel_headless" not in text

    assert awaited["status"] == "ok"
    assert awaited["calls"][0]["output"]["data"] == {"text/plain": "'awaited'"}

    assert displayed["status"] == "ok"
    shown, update = displayed["calls"]
    assert shown["output"]["transient"] == {"display_id": "progress"}
    assert shown["output"]["data"]["text/html"] == "<b>1</b>"
    assert update["call"] == "update_display" and update["display_id"] == "progress"
    assert update["data"]["text/html"] == "<b>2</b>"

    assert interrupted["status"] == "cancelled"
    assert interrupted["calls"][0]["output"]["ename"] == "KeyboardInterrupt"

    assert platform["calls"][0]["output"]["data"] == {"text/plain": "'emscripten'"}
    assert platform["calls"][0]["output"]["execution_count"] == 6

    assert result["early"] == "early\n" and result["all"] == "early\nlate\n"
