"""Jupyter's ``.ipynb`` in and out: the one mapping between a notebook and nbformat 4.

The relay (import and export endpoints) and the browser (local-only
notebooks, offline downloads) run this same code. ``.ipynb`` is the exchange
format, never the storage format: an import becomes ordinary events
(``cellImported`` per cell, ``notebookMetadataSet`` per metadata key), and
an export is a reading of the folded state.

The relay reads files with the reference ``nbformat`` package first, which
upgrades v3 and older 4.x files, and validates every export against
nbformat 4.5's schema; the browser takes 4.x files as they are. What both
sides need beyond that lives here: which parts of a cell are kept (all of
them, unknown metadata included), how multi-line strings are joined and
split (as nbformat's ``rejoin_lines`` / ``split_lines`` define them), and
how a title is chosen.
"""

from __future__ import annotations

import base64
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from . import events as ev
from . import fields, limits
from .errors import SchemaError
from .ids import CellId, is_valid_id
from .state import NotebookState

NBFORMAT = 4
NBFORMAT_MINOR = 5
DEFAULT_TITLE = "Imported notebook"
#: Cells one imported notebook may hold.
MAX_CELLS = 10_000
#: Where Anode keeps its own part of a notebook's metadata (``requirements``).
ANODE_KEY = "anode"

_HEADING = re.compile(r"\s{0,3}#{1,6}\s+(?P<text>.+?)(?:\s+#+)?\s*")
_metadata_value = fields.json_value(limits.MAX_METADATA_BYTES)


@dataclass(frozen=True, slots=True)
class ImportPlan:
    """What an ``.ipynb`` becomes: a title, notebook metadata and one event per cell."""

    title: str
    metadata: dict[str, Any]
    cells: list[ev.CellImported]

    def events(self) -> list[ev.Event]:
        """The events that turn a fresh notebook into this one, in order."""
        keys: list[ev.Event] = [
            ev.NotebookMetadataSet(key=key, value=value) for key, value in self.metadata.items()
        ]
        return keys + list(self.cells)


def read_notebook(
    document: Any, *, title: str | None = None, new_id: Callable[[], str] | None = None
) -> ImportPlan:
    """Map a parsed nbformat 4 document to events, or raise ``SchemaError`` naming the
    first problem (``path`` says where: ``cells[3].outputs[0]``)."""
    new_id = new_id or _new_cell_id
    if not isinstance(document, dict):
        raise _problem("an .ipynb file holds a JSON object")
    version = document.get("nbformat")
    if version != NBFORMAT:
        raise _problem(
            f"this is an nbformat {version!r} file; only nbformat 4 is read here"
            " (the relay upgrades v3 files: import them there)",
            "nbformat",
        )
    metadata = document.get("metadata", {})
    if not isinstance(metadata, dict):
        raise _problem("must be an object", "metadata")
    cells = document.get("cells")
    if not isinstance(cells, list):
        raise _problem("must be a list of cells", "cells")
    if len(cells) > MAX_CELLS:
        raise SchemaError(
            "too_large", f"the notebook has {len(cells)} cells; the limit is {MAX_CELLS}", "cells"
        )
    kept = {}
    for key, value in metadata.items():
        if key == "title":
            continue  # the notebook's title is its own field; export writes it back
        try:
            kept[fields.text(limits.MAX_KEY, allow_empty=False)(key)] = _metadata_value(value)
        except SchemaError as error:
            raise error.at(f"metadata.{key}") from None
    seen: set[str] = set()
    imported: list[ev.CellImported] = []
    after: CellId | None = None
    for index, cell in enumerate(cells):
        try:
            event = _read_cell(cell, after, seen, new_id)
        except SchemaError as error:
            raise error.at(f"cells[{index}]") from None
        imported.append(event)
        seen.add(event.cell_id)
        after = event.cell_id
    chosen = title if title is not None else _title_of(metadata, imported)
    return ImportPlan(title=chosen[: limits.MAX_TITLE], metadata=kept, cells=imported)


def write_notebook(state: NotebookState) -> dict[str, Any]:
    """The notebook as an nbformat 4.5 document, lines split as Jupyter writes them."""
    metadata = dict(state.metadata)
    if state.title:
        metadata["title"] = state.title
    return {
        "nbformat": NBFORMAT,
        "nbformat_minor": NBFORMAT_MINOR,
        "metadata": metadata,
        "cells": [_write_cell(state, cell) for cell in state.visible_cells()],
    }


def inline_attachments(source: str, attachments: dict[str, dict[str, Any]]) -> str:
    """A markdown source with each ``attachment:NAME`` image as a ``data:`` URL, so the
    renderer (which keeps no unknown URL scheme) shows it as Jupyter does."""
    for name in sorted(attachments, key=len, reverse=True):  # "a.png" after "a.png.1"
        url = _data_url(attachments[name])
        if url is None:
            continue
        for written in {name, quote(name)}:
            source = source.replace(f"attachment:{written}", url)
    return source


def _data_url(bundle: dict[str, Any]) -> str | None:
    for mime in _IMAGE_MIMES:
        data = bundle.get(mime)
        if not isinstance(data, str):
            continue
        if mime == "image/svg+xml":  # text in the bundle; base64 in the URL
            data = base64.b64encode(data.encode()).decode()
        data = "".join(data.split())
        if _BASE64.fullmatch(data):  # nothing else may reach the markdown it goes into
            return f"data:{mime};base64,{data}"
    return None


_BASE64 = re.compile(r"[A-Za-z0-9+/]+={0,2}")


#: Image types an attachment is shown as, in order of preference.
_IMAGE_MIMES = ("image/png", "image/jpeg", "image/gif", "image/webp", "image/svg+xml")


def filename(title: str) -> str:
    """A safe download name for a notebook: ``<title>.ipynb``."""
    stem = re.sub(r"[^\w .,()+-]+", "_", title).strip(" ._") or "notebook"
    return f"{stem[:100]}.ipynb"


# --- reading ------------------------------------------------------------------


def _read_cell(
    cell: Any, after: CellId | None, seen: set[str], new_id: Callable[[], str]
) -> ev.CellImported:
    if not isinstance(cell, dict):
        raise _problem("a cell must be an object")
    cell_type = cell.get("cell_type")
    if cell_type not in ev.CELL_TYPES:
        raise _problem(
            f"cell type {str(cell_type)[:40]!r} does not exist: cells are code, markdown or raw",
            "cell_type",
        )
    cell_id = cell.get("id")
    if not is_valid_id(cell_id) or cell_id in seen:
        cell_id = new_id()  # older files have none; nbformat repairs duplicates the same way
    args: dict[str, Any] = {
        "cell_id": cell_id,
        "cell_type": cell_type,
        "after": after,
        "source": _joined(cell.get("source", ""), "source"),
        "metadata": cell.get("metadata", {}),
    }
    if cell_type == "code":
        outputs = cell.get("outputs", [])
        if not isinstance(outputs, list):
            raise _problem("must be a list", "outputs")
        args["outputs"] = [_rejoined_output(output, i) for i, output in enumerate(outputs)]
        args["execution_count"] = cell.get("execution_count")
    elif "attachments" in cell:
        attachments = cell["attachments"]
        if not isinstance(attachments, dict):
            raise _problem("must be an object", "attachments")
        args["attachments"] = {
            name: _rejoined_bundle(bundle) for name, bundle in attachments.items()
        }
    try:
        return ev.decode("cellImported", 1, args)  # type: ignore[return-value]
    except SchemaError as error:
        raise SchemaError(error.code, error.detail, error.path.removeprefix("args.")) from None


def _rejoined_output(output: Any, index: int) -> Any:
    if not isinstance(output, dict):
        return output  # the output check says what is wrong
    output = dict(output)
    if output.get("output_type") == "stream":
        output["text"] = _joined(output.get("text", ""), f"outputs[{index}].text")
    elif isinstance(output.get("data"), dict):
        output["data"] = _rejoined_bundle(output["data"])
    return output


def _rejoined_bundle(bundle: Any) -> Any:
    """nbformat's ``_rejoin_mimebundle``: multi-line text back into one string."""
    if not isinstance(bundle, dict):
        return bundle
    return {
        mime: "".join(value)
        if not _is_json_mime(mime)
        and isinstance(value, list)
        and all(isinstance(line, str) for line in value)
        else value
        for mime, value in bundle.items()
    }


def _joined(value: Any, path: str) -> str:
    if isinstance(value, list) and all(isinstance(line, str) for line in value):
        return "".join(value)
    if isinstance(value, str):
        return value
    raise _problem("must be a string or a list of strings", path)


def _title_of(metadata: dict[str, Any], cells: list[ev.CellImported]) -> str:
    title = metadata.get("title")
    if isinstance(title, str) and title.strip():
        return title.strip()
    for cell in cells:
        if cell.cell_type != "markdown":
            continue
        for line in cell.source.splitlines():
            heading = _HEADING.fullmatch(line)
            if heading:
                return heading["text"].strip()
    return DEFAULT_TITLE


# --- writing ------------------------------------------------------------------


def _write_cell(state: NotebookState, cell: Any) -> dict[str, Any]:
    written: dict[str, Any] = {
        "id": cell.id,
        "cell_type": cell.cell_type,
        "metadata": dict(cell.metadata),
        "source": cell.source.splitlines(True),
    }
    if cell.cell_type != "code":
        if cell.attachments:
            written["attachments"] = {
                name: _split_bundle(bundle) for name, bundle in cell.attachments.items()
            }
        return written
    run = state.executions.get(cell.execution_id) if cell.execution_id else None
    outputs = run.outputs if run is not None else cell.imported_outputs
    written["outputs"] = [_written_output(output) for output in outputs]
    written["execution_count"] = run.execution_count if run is not None else cell.imported_count
    return written


def _written_output(output: dict[str, Any]) -> dict[str, Any]:
    """An output as a file holds it: no ``transient`` (a live display id), lines split."""
    written = {key: value for key, value in output.items() if key != "transient"}
    kind = written["output_type"]
    if kind == "stream":
        written["text"] = written["text"].splitlines(True)
    elif kind in ("display_data", "execute_result"):
        written["data"] = _split_bundle(written["data"])
        written.setdefault("metadata", {})
        if kind == "execute_result":
            written.setdefault("execution_count", None)
    return written


#: MIME types nbformat splits into lines besides ``text/*``.
_SPLIT_MIMES = frozenset({"application/javascript", "image/svg+xml"})


def _split_bundle(bundle: dict[str, Any]) -> dict[str, Any]:
    """nbformat's ``_split_mimebundle``: text types as lists of lines."""
    return {
        mime: value.splitlines(True)
        if isinstance(value, str) and (mime.startswith("text/") or mime in _SPLIT_MIMES)
        else value
        for mime, value in bundle.items()
    }


def _is_json_mime(mime: str) -> bool:
    return mime == "application/json" or (
        mime.startswith("application/") and mime.endswith("+json")
    )


def _new_cell_id() -> str:
    return secrets.token_hex(4)


def _problem(detail: str, path: str = "") -> SchemaError:
    return SchemaError("invalid_notebook", detail, path)
