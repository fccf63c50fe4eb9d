"""``.ipynb`` in and out: real notebooks through the relay's import and export endpoints.

Every file under ``tests/data/ipynb`` (collected from nbformat's and
nbconvert's sources: v3 and 4.0-4.5, images, HTML, errors, raw cells,
attachments) is imported, exported, validated with ``nbformat.validate``,
imported again and compared cell by cell, both with the second import and
with what nbformat itself reads from the original file.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import nbformat
import pytest

from shared_schema import NotebookState, stored
from shared_schema import events as ev
from shared_schema.ipynb import filename, read_notebook, write_notebook
from shared_schema.materializer import advance
from tests.admin import AdminClient
from tests.kernels import event, new_id

FILES = Path(__file__).parent / "data" / "ipynb"
#: Files nbformat itself refuses, or that break the schema Anode keeps.
BAD_FILES = {
    "nbformat-invalid.ipynb": "cell 0",
    "nbformat-invalid_cell_id.ipynb": "cell 0",
    "nbformat-test2.ipynb": "nbformat 2",
    "nbformat-v4_5_invalid_metadata.ipynb": "metadata.kernelspec",
}
GOOD_FILES = sorted(path.name for path in FILES.glob("*.ipynb") if path.name not in BAD_FILES)
#: Notebook metadata that nbformat's reader drops (``strip_transient``) or Anode keeps apart.
TRANSIENT_METADATA = {"orig_nbformat", "orig_nbformat_minor", "signature", "title"}


def _import(client: AdminClient, body: bytes | str, query: str = "") -> Any:
    return client.post(f"/api/notebooks/import{query}", content=body)


def _export(client: AdminClient, notebook: str, query: str = "") -> Any:
    response = client.get(f"/api/notebooks/{notebook}/ipynb{query}")
    assert response.status_code == 200, response.text
    return response


def _comparable(node: dict[str, Any], *, with_ids: bool = True) -> dict[str, Any]:
    """A notebook as nbformat reads it, reduced to what a round trip must keep."""
    cells = []
    for cell in node["cells"]:
        kept = {
            "cell_type": cell["cell_type"],
            "source": cell["source"],
            "metadata": {k: v for k, v in cell["metadata"].items() if k != "trusted"},
        }
        if with_ids:
            kept["id"] = cell.get("id")
        if cell["cell_type"] == "code":
            kept["execution_count"] = cell.get("execution_count")
            kept["outputs"] = [dict(output) for output in cell.get("outputs", [])]
        else:
            kept["attachments"] = cell.get("attachments") or {}
        cells.append(kept)
    metadata = {k: v for k, v in node["metadata"].items() if k not in TRANSIENT_METADATA}
    return {"metadata": metadata, "cells": cells}


def _read_as_nbformat(text: str | bytes) -> Any:
    node = nbformat.reads(text, as_version=4)
    return json.loads(json.dumps(node))  # NotebookNode -> plain dicts


@pytest.mark.parametrize("name", GOOD_FILES)
def test_a_real_notebook_survives_import_export_import(client: AdminClient, name: str) -> None:
    original = (FILES / name).read_bytes()
    first = _import(client, original)
    assert first.status_code == 201, first.text
    created = first.json()
    assert set(created) == {"id", "title", "cells"} and created["title"]

    exported = _export(client, created["id"])
    assert exported.headers["content-type"].startswith("application/x-ipynb+json")
    disposition = exported.headers["content-disposition"]
    assert disposition.startswith('attachment; filename="') and '.ipynb"' in disposition
    document = json.loads(exported.content)
    assert (document["nbformat"], document["nbformat_minor"]) == (4, 5)
    nbformat.validate(nbformat.from_dict(document))  # raises on any schema problem
    assert document["metadata"]["title"] == created["title"]

    again = _import(client, exported.content)
    assert again.status_code == 201, again.text
    assert again.json()["cells"] == created["cells"] == len(document["cells"])
    second = json.loads(_export(client, again.json()["id"]).content)
    assert _comparable(_read_as_nbformat(exported.content)) == _comparable(
        _read_as_nbformat(json.dumps(second))
    )

    # And against nbformat's own reading of the file we started from: everything kept
    # (cell ids too, where the file had them).
    # (nbformat makes random ids for files before 4.5 and for repeated ones).
    raw = json.loads(original)
    ids = [cell.get("id") for cell in raw.get("cells", [])]
    kept_ids = (
        raw["nbformat"] == 4
        and raw["nbformat_minor"] >= 5
        and all(ids)
        and len(set(ids)) == len(ids)
    )
    reference = _read_as_nbformat(original)
    assert _comparable(_read_as_nbformat(exported.content), with_ids=kept_ids) == (
        _comparable(reference, with_ids=kept_ids)
    )


def test_what_a_real_notebook_keeps(client: AdminClient) -> None:
    """Spot checks on files whose content is known: images, errors, attachments, raw cells."""
    created = _import(client, (FILES / "nbconvert-notebook2.ipynb").read_bytes()).json()
    cells = client.get(f"/api/notebooks/{created['id']}/snapshot").json()["state"]["cells"]
    images = [o for c in cells for o in c["outputs"] if "image/png" in o.get("data", {})]
    assert images and all(isinstance(o["data"]["image/png"], str) for o in images)
    shown = [c for c in cells if c["outputs"]]
    assert all(c["imported"] is not None and c["execution"] is None for c in shown)

    errors = _import(client, (FILES / "nbformat-many_tracebacks.ipynb").read_bytes())
    state = client.get(f"/api/notebooks/{errors.json()['id']}/snapshot").json()["state"]
    raised = [o for c in state["cells"] for o in c["outputs"] if o["output_type"] == "error"]
    assert raised and raised[0]["ename"] and raised[0]["traceback"]

    attached = _import(client, (FILES / "nbconvert-attachment.ipynb").read_bytes())
    state = client.get(f"/api/notebooks/{attached.json()['id']}/snapshot").json()["state"]
    markdown = [c for c in state["cells"] if c["attachments"]]
    assert markdown and "attachment:" in markdown[0]["source"]
    bundle = next(iter(markdown[0]["attachments"].values()))
    assert "image/png" in bundle

    raw = _import(client, (FILES / "nbconvert-rawtest.ipynb").read_bytes())
    state = client.get(f"/api/notebooks/{raw.json()['id']}/snapshot").json()["state"]
    assert {c["cell_type"] for c in state["cells"]} == {"raw"}
    assert any(c["metadata"].get("raw_mimetype") for c in state["cells"])


def test_a_v3_notebook_is_upgraded_as_nbformat_does(client: AdminClient) -> None:
    original = (FILES / "nbformat-test3.ipynb").read_text()
    created = _import(client, original)
    assert created.status_code == 201, created.text
    exported = _read_as_nbformat(_export(client, created.json()["id"]).content)
    reference = _read_as_nbformat(original)  # nbformat's v3 -> v4 upgrade
    assert (
        _comparable(exported, with_ids=False)["cells"]
        == _comparable(reference, with_ids=False)["cells"]
    )


def test_imported_outputs_show_until_the_cell_runs_here(client: AdminClient) -> None:
    created = _import(client, (FILES / "nbformat-test4.5.ipynb").read_bytes()).json()
    url = f"/api/notebooks/{created['id']}"
    cells = client.get(f"{url}/snapshot").json()["state"]["cells"]
    cell = next(c for c in cells if c["outputs"])
    assert cell["imported"] == {"execution_count": cell["imported"]["execution_count"]}
    request = event("executionRequested", execution_id=new_id("x"), cell_id=cell["id"], source="1")
    assert client.post(f"{url}/events", json={"events": [request]}).status_code == 200
    after = client.get(f"{url}/snapshot").json()["state"]["cells"]
    ran = next(c for c in after if c["id"] == cell["id"])
    assert ran["outputs"] == [] and ran["imported"] is None and ran["execution"]
    exported = json.loads(_export(client, created["id"]).content)
    written = next(c for c in exported["cells"] if c["id"] == cell["id"])
    assert written["outputs"] == [] and written["execution_count"] is None


def test_the_title_comes_from_the_query_the_metadata_or_the_first_heading(
    client: AdminClient,
) -> None:
    def titled(document: dict[str, Any], query: str = "") -> str:
        response = _import(client, json.dumps(document), query)
        assert response.status_code == 201, response.text
        listed = {nb["id"]: nb["title"] for nb in client.get("/api/notebooks").json()["notebooks"]}
        assert listed[response.json()["id"]] == response.json()["title"]
        return response.json()["title"]

    heading = nbformat.v4.new_notebook(
        cells=[
            nbformat.v4.new_code_cell("1"),
            nbformat.v4.new_markdown_cell("Intro\n\n## Data *and* plots ##\n"),
        ]
    )
    assert titled(heading) == "Data *and* plots"
    heading.metadata["title"] = "From metadata"
    assert titled(heading) == "From metadata"
    assert titled(heading, "?title=Chosen") == "Chosen"
    assert titled(nbformat.v4.new_notebook()) == "Imported notebook"


def test_export_at_a_seq_is_the_notebook_as_it_was(client: AdminClient, notebook: str) -> None:
    url = f"/api/notebooks/{notebook}"
    cell = new_id("c")
    head = client.post(
        f"{url}/events", json={"events": [event("cellCreated", cell_id=cell, source="old")]}
    ).json()["head"]
    client.post(
        f"{url}/events",
        json={"events": [event("cellSourceEdited", cell_id=cell, base_rev=0, ops=[3, "er"])]},
    )
    now = json.loads(_export(client, notebook).content)
    then = json.loads(_export(client, notebook, f"?at={head}").content)
    assert now["cells"][0]["source"] == ["older"] and then["cells"][0]["source"] == ["old"]
    past = client.get(f"{url}/ipynb?at=99999")
    assert past.status_code == 400 and past.json()["error"] == "at_past_head"


def _bad(client: AdminClient, body: bytes | str, *words: str, status: int = 400) -> None:
    before = client.get("/api/notebooks").json()["notebooks"]
    response = _import(client, body)
    assert response.status_code == status, response.text
    answer = response.json()
    assert answer["error"] and all(word in answer["detail"] for word in words), answer
    assert client.get("/api/notebooks").json()["notebooks"] == before  # nothing created


@pytest.mark.parametrize("name", sorted(BAD_FILES))
def test_files_nbformat_refuses_create_nothing(client: AdminClient, name: str) -> None:
    _bad(client, (FILES / name).read_bytes(), BAD_FILES[name])


def test_bad_files_name_their_first_problem_and_create_nothing(client: AdminClient) -> None:
    _bad(client, b"this is not json", "not valid JSON")
    _bad(client, b"[1, 2]", "JSON object")
    _bad(client, json.dumps({"cells": []}), "nbformat")

    def notebook(*cells: dict[str, Any]) -> str:
        return json.dumps({"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": cells})

    good = nbformat.v4.new_code_cell("print(1)")
    bad_type = {"cell_type": "heading", "id": "x", "metadata": {}, "source": "# no"}
    _bad(client, notebook(good, bad_type), "cell 1")
    broken_output = {**good, "id": "b", "outputs": [{"output_type": "stream", "name": "stdout"}]}
    _bad(client, notebook(good, broken_output), "cell 1")
    unknown_output = {**good, "outputs": [{"output_type": "pyout", "data": {}}]}
    _bad(client, notebook(unknown_output), "cell 0")
    huge_value = nbformat.v4.new_notebook(metadata={"widgets": {"state": "x" * 70_000}})
    _bad(client, json.dumps(huge_value), "metadata.widgets", "limit")


def test_limits_on_size_cells_and_outputs(tmp_path: Path) -> None:
    from relay.config import RelayConfig

    config = RelayConfig(data_dir=tmp_path / "data", push_rate=0, max_body_bytes=1_000_000)
    with AdminClient(config) as client:
        big = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x" * 1_200_000)])
        _bad(client, json.dumps(big), "limit", status=413)
        many = [{"output_type": "stream", "name": "stdout", "text": "."}] * 1_001
        crowded = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("1", outputs=many)])
        _bad(client, json.dumps(crowded), "cell 0", "1000")
        cells = [nbformat.v4.new_raw_cell("") for _ in range(10_001)]
        _bad(client, json.dumps(nbformat.v4.new_notebook(cells=cells)), "10000")


def test_the_browser_mapping_reads_what_the_relay_writes() -> None:
    """``shared_schema.ipynb`` alone (as the browser runs it, no nbformat) on a 4.5 file."""
    original = json.loads((FILES / "nbformat-test4.5.ipynb").read_text())
    plan = read_notebook(original)
    state = NotebookState()
    for seq, item in enumerate([ev.NotebookInitialized(title=plan.title), *plan.events()], 1):
        advance(state, stored(seq, f"e{seq}", item, "user:ada", float(seq)))
    written = write_notebook(state)
    nbformat.validate(nbformat.from_dict(written))
    assert _comparable(_read_as_nbformat(json.dumps(written))) == _comparable(
        _read_as_nbformat(json.dumps(original))
    )


def test_download_names_are_safe() -> None:
    assert filename("Data: 2024/Q1 <draft>") == "Data_ 2024_Q1 _draft.ipynb"
    assert filename("../../etc/passwd") == "etc_passwd.ipynb"
    assert filename("") == "notebook.ipynb"
    assert filename("Café") == "Café.ipynb"


def test_attachments_become_data_urls_and_nothing_else() -> None:
    from shared_schema.ipynb import inline_attachments

    png = {"image/png": "iVBORw0KGgo=\n"}
    svg = {"image/svg+xml": "<svg xmlns='http://www.w3.org/2000/svg'/>"}
    hostile = {"image/png": "x)<img src=x onerror=alert(1)>"}
    source = "![a](attachment:a.png) ![b](attachment:a.png.1) ![c](attachment:c.svg) " * 1
    shown = inline_attachments(
        source + "![h](attachment:h.png)",
        {"a.png": png, "a.png.1": svg, "c.svg": svg, "h.png": hostile},
    )
    assert "![a](data:image/png;base64,iVBORw0KGgo=)" in shown
    assert shown.count("data:image/svg+xml;base64,") == 2
    assert "onerror" not in shown and "![h](attachment:h.png)" in shown
