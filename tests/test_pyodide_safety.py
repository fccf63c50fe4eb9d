"""Lint that guards Pyodide safety (STYLE habit 10).

``shared_schema`` must be pure standard library, and nothing the kernel
runs inside Pyodide may import, at module level, a module Pyodide lacks.
The CPython-only modules of ``kernel_headless`` (its launchers) are listed
here by name so that adding one is a deliberate act.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

#: Standard-library modules Pyodide does not ship or cannot run.
MISSING_IN_PYODIDE = {
    "multiprocessing", "subprocess", "threading", "tkinter", "curses", "readline",
    "venv", "ensurepip", "idlelib", "turtle", "turtledemo", "dbm", "lzma",
    "ssl", "socket", "select", "selectors", "resource", "termios", "pty",
}  # fmt: skip

#: kernel_headless's CPython side (the ``anode`` command's), never loaded into Pyodide.
CPYTHON_ONLY = ROOT / "kernel_headless" / "launch"
#: The matplotlib backend: only matplotlib itself imports it, so it may import matplotlib.
MATPLOTLIB_BACKEND = ROOT / "kernel_headless" / "inline_backend.py"


def _modules(package: str) -> list[Path]:
    return sorted(p for p in (ROOT / package).rglob("*.py") if not p.is_relative_to(CPYTHON_ONLY))


def _top_level_imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), str(path))
    names = []
    for node in tree.body:  # module level only: imports inside functions are lazy
        if isinstance(node, ast.Import):
            names += [alias.name.split(".")[0] for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.append(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("path", _modules("shared_schema"), ids=lambda p: p.name)
def test_shared_schema_is_standard_library_only(path: Path) -> None:
    for name in _top_level_imports(path):
        assert name in sys.stdlib_module_names or name == "__future__", (
            f"{path.name} imports {name}"
        )
        assert name not in MISSING_IN_PYODIDE, f"{path.name} imports {name}, which Pyodide lacks"


@pytest.mark.parametrize("path", _modules("kernel_headless"), ids=lambda p: p.name)
def test_kernel_modules_import_only_what_pyodide_has(path: Path) -> None:
    for name in _top_level_imports(path):
        allowed = name in sys.stdlib_module_names or name in (
            "__future__",
            "shared_schema",
            "kernel_headless",
        )
        allowed = allowed or (path == MATPLOTLIB_BACKEND and name == "matplotlib")
        assert allowed, (
            f"{path.name} imports {name} at module level; import it lazily or list the module as "
            "CPython-only"
        )
        assert name not in MISSING_IN_PYODIDE, f"{path.name} imports {name}, which Pyodide lacks"
