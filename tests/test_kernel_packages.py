"""Packages in a real Node kernel: by import, by ``%pip`` (PEP 783 wheels too), and a
notebook's recorded requirements.

Wheels come from PyPI in the test setup, once: ``humanize`` (pure Python),
``typing-extensions`` (pure) and ``pydantic-core`` (compiled for Pyodide,
``pyemscripten_2026_0_wasm32``, PEP 783). The by-import test builds a folder
laid out like a Pyodide distribution from them, with a ``pyodide-lock.json``
it writes, and serves it with ``anode serve --pyodide-packages``.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest

from tests.kernels import (  # noqa: F401 - the *_fixture names are fixtures
    Kernels,
    Notebook,
    download_wheel,
    kernels_fixture,
    notebooks_fixture,
    only_error,
    stream_text,
)

pytestmark = pytest.mark.slow

PYODIDE_PLATFORM = ["--platform", "pyemscripten_2026_0_wasm32", "--abi", "cp314",
                    "--implementation", "cp"]  # fmt: skip


@pytest.fixture(scope="module")
def wheels(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("wheels")
    return {
        "humanize": download_wheel(folder, "humanize"),
        "typing-extensions": download_wheel(folder, "typing-extensions"),
        "pydantic-core": download_wheel(folder, "pydantic-core", *PYODIDE_PLATFORM),
    }


def _distribution(folder: Path, wheels: dict[str, Path]) -> Path:
    """A folder laid out like a Pyodide distribution: the wheels and their lock file."""
    folder.mkdir()
    imports = {"typing-extensions": ["typing_extensions"], "pydantic-core": ["pydantic_core"]}
    depends = {"pydantic-core": ["typing-extensions"]}
    packages = {}
    for name, wheel in wheels.items():
        if name not in imports:
            continue
        shutil.copy(wheel, folder / wheel.name)
        packages[name] = {
            "name": name,
            "version": wheel.name.split("-")[1],
            "file_name": wheel.name,
            "install_dir": "site",
            "sha256": hashlib.sha256(wheel.read_bytes()).hexdigest(),
            "package_type": "package",
            "imports": imports[name],
            "depends": depends.get(name, []),
            "unvendored_tests": False,
        }
    lock = json.loads((Path("node_modules/pyodide/pyodide-lock.json")).read_text())
    (folder / "pyodide-lock.json").write_text(
        json.dumps({"info": lock["info"], "packages": packages})
    )
    return folder


def test_a_cell_loads_what_it_imports_from_a_local_pyodide_distribution(
    tmp_path: Path, relay_process, kernels: Kernels, notebooks, wheels: dict[str, Path]
) -> None:
    folder = _distribution(tmp_path / "pyodide-packages", wheels)
    relay = relay_process("--kernels", "none", "--pyodide-packages", str(folder))
    notebook: Notebook = notebooks(relay.url, relay.token)
    kernels.start(
        relay.url,
        notebook.id,
        token=notebook.kernel_token(),
        pyodide_packages=f"{relay.url}/pyodide-packages/",
    )
    [imported, again, unknown] = notebook.wait_done(
        *notebook.run_many(
            [
                "import pydantic_core\npydantic_core.SchemaValidator({'type': 'int'})"
                ".validate_python('42')",
                "import pydantic_core, typing_extensions\npydantic_core.__version__",
                "import no_such_package_here",
            ]
        ),
        timeout=120,
    )
    assert imported.status == "ok", imported.outputs
    assert "Loaded" in stream_text(imported.outputs) and "pydantic" in stream_text(imported.outputs)
    assert imported.outputs[-1]["data"] == {"text/plain": "42"}  # compiled code, validating
    assert again.status == "ok" and "Loaded" not in stream_text(again.outputs)  # loaded once
    version = wheels["pydantic-core"].name.split("-")[1]
    assert again.outputs[-1]["data"] == {"text/plain": repr(version)}
    error = only_error(unknown.outputs)
    assert error["ename"] == "ModuleNotFoundError"
    assert "%pip install no_such_package_here" in "\n".join(error["traceback"])


def test_pip_installs_a_pyodide_wheel_and_the_notebook_keeps_its_requirements(
    tmp_path: Path, relay_process, kernels: Kernels, notebooks, wheels: dict[str, Path]
) -> None:
    wheelhouse = tmp_path / "wheelhouse"
    wheelhouse.mkdir()
    for wheel in wheels.values():
        shutil.copy(wheel, wheelhouse / wheel.name)
    relay = relay_process("--kernels", "none", "--wheels", str(wheelhouse))
    notebook: Notebook = notebooks(relay.url, relay.token)
    index = [f"{relay.url}/wheels/simple/"]  # only the relay's wheelhouse: nothing else
    first = kernels.start(relay.url, notebook.id, token=notebook.kernel_token(), index_urls=index)
    [install, use] = notebook.wait_done(
        *notebook.run_many(
            [
                "%pip install pydantic-core humanize",
                "import pydantic_core, humanize\nhumanize.intcomma(1234567)",
            ]
        ),
        timeout=120,
    )
    assert install.status == "ok", install.outputs
    assert use.status == "ok", use.outputs
    assert use.outputs[-1]["data"] == {"text/plain": "'1,234,567'"}
    versions = {name: wheel.name.split("-")[1] for name, wheel in wheels.items()}
    expected = [f"pydantic-core=={versions['pydantic-core']}", f"humanize=={versions['humanize']}"]
    recorded = notebook.events("requirementsAdded")
    assert [e["args"]["requirements"] for e in recorded] == [expected]
    assert notebook.sync().metadata["anode"]["requirements"] == expected

    # Another kernel, later: it installs the notebook's requirements before its first cell.
    first.proc.terminate()
    first.proc.wait(30)
    kernels.start(relay.url, notebook.id, token=notebook.kernel_token(), index_urls=index)
    [later] = notebook.wait_done(notebook.run("import humanize\nhumanize.naturalsize(3000)"))
    assert later.status == "ok", later.outputs
    said = stream_text(later.outputs)
    assert "Installing this notebook's requirements" in said and "humanize==" in said
    assert later.outputs[-1]["data"] == {"text/plain": "'3.0 kB'"}

    # An editor takes one off; the export carries what is left.
    notebook.push({"id": "rm-1", "name": "requirementRemoved", "v": 1,
                   "args": {"package": "Pydantic-Core"}})  # fmt: skip
    exported = notebook.http.get(f"/api/notebooks/{notebook.id}/ipynb").json()
    assert exported["metadata"]["anode"]["requirements"] == [expected[1]]


def test_a_browser_kernel_loads_imports_from_the_folder_its_relay_names(
    tmp_path: Path, relay_process, wheels: dict[str, Path]
) -> None:
    """``anode kernel --host browser`` asks the relay's /api/health where packages are."""
    from tests.chromium import require_chromium
    from tests.test_kernel_browser import BrowserKernel
    from tests.test_kernel_browser import Notebook as BrowserNotebook

    require_chromium()
    folder = _distribution(tmp_path / "pyodide-packages", wheels)
    relay = relay_process("--kernels", "none", "--no-auth", "--pyodide-packages", str(folder))
    notebook = BrowserNotebook.create(relay.url)
    logs = tmp_path / "logs"
    logs.mkdir()
    kernel = BrowserKernel.start(relay.url, notebook.id, tmp_path / "cache", logs)
    try:
        execution = notebook.run(
            "import typing_extensions, pydantic_core\npydantic_core.__version__"
        )
        cell = notebook.wait_done(execution, timeout=120)
        assert cell["execution"]["status"] == "ok", (cell["outputs"], kernel.log())
        version = wheels["pydantic-core"].name.split("-")[1]
        assert cell["outputs"][-1]["data"] == {"text/plain": repr(version)}
        assert "Loaded" in stream_text(cell["outputs"])
    finally:
        kernel.stop()
        notebook.http.close()
