"""Pyodide starts under Node from the local npm package, with no network."""

import json

import pytest

from tests.pyodide import run_in_pyodide

pytestmark = pytest.mark.slow


def test_pyodide_runs_python_in_emscripten() -> None:
    out = run_in_pyodide(
        "import sys, json; print(json.dumps([sys.platform, sys.version_info[:2]]))"
    )
    platform, version = json.loads(out)
    assert platform == "emscripten"
    assert version >= [3, 11]
