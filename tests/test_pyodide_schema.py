"""``shared_schema`` in real Pyodide: every module imports, and the sample log
folds to exactly what CPython folds it to.

Browsers and kernels fold the same log as the relay; if Pyodide read it
differently (a module it lacks, a float or string that behaves otherwise),
they would disagree about the notebook. One Pyodide start (~3 s) covers both.
"""

from __future__ import annotations

import json

import pytest

from tests.pyodide import REPO_ROOT, run_in_pyodide
from tests.test_stored_logs import SAMPLE_LOG, folded_public

pytestmark = pytest.mark.slow

PROGRAM = """
import importlib, json, sys

MODULES = json.loads({modules!r})
LOG = {log!r}

imported = [importlib.import_module(name).__name__ for name in MODULES]

from shared_schema import fold_all, stored_from_json

state = fold_all(stored_from_json(json.loads(line)) for line in LOG.splitlines())
print(json.dumps({{"platform": sys.platform, "modules": imported, "public": state.public()}}))
"""


def schema_modules() -> list[str]:
    package = REPO_ROOT / "shared_schema"
    names = sorted(path.stem for path in package.glob("*.py") if path.stem != "__init__")
    return ["shared_schema", *(f"shared_schema.{name}" for name in names)]


def test_shared_schema_loads_and_folds_alike_in_pyodide() -> None:
    modules = schema_modules()
    assert len(modules) > 5  # the package was found
    log = SAMPLE_LOG.read_text(encoding="utf-8")
    out = run_in_pyodide(PROGRAM.format(modules=json.dumps(modules), log=log))
    result = json.loads(out)
    assert result["platform"] == "emscripten"
    assert result["modules"] == modules
    assert result["public"] == folded_public(SAMPLE_LOG)
