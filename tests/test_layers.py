"""The dependency rule of DESIGN.md, checked on every import of every module.

``relay``, ``client`` and ``kernel_headless`` each build on ``shared_schema``
and on no other part of ours; ``shared_schema`` on nothing of ours; ``anode``,
the composition root, may use them all. An import the rule forbids fails
here, with the file and line that made it.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
OURS = {"shared_schema", "relay", "client", "kernel_headless", "anode", "tests", "bench"}
ALLOWED = {
    "shared_schema": {"shared_schema"},
    "relay": {"relay", "shared_schema"},
    "client": {"client", "shared_schema"},
    "kernel_headless": {"kernel_headless", "shared_schema"},
    "anode": {"anode", "relay", "kernel_headless", "shared_schema"},
}


def _imports(path: Path, package: str) -> list[tuple[int, str]]:
    """(line, top-level package of ours) for every import in ``path``, relative ones resolved."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            names = [package if node.level else (node.module or "")]
        else:
            continue
        found += [(node.lineno, name.split(".")[0]) for name in names if name.split(".")[0] in OURS]
    return found


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_each_part_imports_only_what_it_builds_on(package: str) -> None:
    wrong = [
        f"{path.relative_to(ROOT)}:{line} imports {imported}"
        for path in sorted((ROOT / package).rglob("*.py"))
        for line, imported in _imports(path, package)
        if imported not in ALLOWED[package]
    ]
    assert not wrong, "\n".join(wrong)


def test_the_rule_sees_a_forbidden_import(tmp_path: Path) -> None:
    """The walker itself: absolute, dotted and relative imports are all seen."""
    module = tmp_path / "mod.py"
    module.write_text(
        "import relay.api\nfrom kernel_headless import launcher\nfrom . import x\nimport os\n"
    )
    expected = [(1, "relay"), (2, "kernel_headless"), (3, "client")]
    assert _imports(module, "client") == expected
