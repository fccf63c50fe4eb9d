"""Run Python programs in real Pyodide (under Node) from CPython tests.

`run_in_pyodide` starts `tests/pyodide_host.mjs` as a subprocess, copies the
named local packages into Pyodide's filesystem, runs the program and returns
what it printed. Node and `node_modules/pyodide` come with the test command
(`make test`); when they are missing the test fails loudly instead of
skipping, so code meant for the browser is never silently left untested.
"""

from __future__ import annotations

import shutil
import subprocess
import textwrap
from collections.abc import Sequence
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
HOST = REPO_ROOT / "tests" / "pyodide_host.mjs"
PYODIDE_DIR = REPO_ROOT / "node_modules" / "pyodide"


def _node() -> str:
    node = shutil.which("node")
    if node is None:
        pytest.fail("Pyodide tests need `node` on PATH (install Node 20+)", pytrace=False)
    if not (PYODIDE_DIR / "pyodide.mjs").is_file():
        pytest.fail(
            f"Pyodide is not installed at {PYODIDE_DIR}: run `make setup` (or `npm ci`)",
            pytrace=False,
        )
    return node


def run_in_pyodide(
    code: str,
    packages: Sequence[str] = ("shared_schema",),
    timeout: float = 120,
) -> str:
    """Run `code` in Pyodide with `packages` (repo-relative dirs) importable; return its stdout.

    Top-level `await` works. Raises AssertionError, with Pyodide's stderr (the
    Python traceback), if the program raised or the host failed.
    """
    command = [_node(), str(HOST), *packages]
    try:
        result = subprocess.run(
            command,
            input=textwrap.dedent(code),
            capture_output=True,
            text=True,
            cwd=REPO_ROOT,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired as exc:
        raise AssertionError(
            f"Pyodide program timed out after {timeout} s\nstderr:\n{exc.stderr or ''}"
        ) from None
    if result.returncode != 0:
        raise AssertionError(
            f"Pyodide program failed (exit {result.returncode})\n{result.stderr}"
            + (f"\nstdout:\n{result.stdout}" if result.stdout else "")
        )
    return result.stdout
