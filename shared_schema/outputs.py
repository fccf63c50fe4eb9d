"""Cell outputs in the nbformat v4 model, validated.

An output is a plain dict exactly as nbformat stores it, so a notebook
exports to ``.ipynb`` without translation. The one extra key is
``transient.display_id`` (as on the Jupyter wire), which ties a
``display_data`` to later ``displayUpdated`` events.
"""

from __future__ import annotations

import json
from typing import Any

from . import fields, limits
from .errors import SchemaError

OUTPUT_TYPES = ("stream", "display_data", "execute_result", "error")
STREAM_NAMES = ("stdout", "stderr")

#: Kernels write stdout and stderr; nbformat allows any name (old files hold ``stdin``).
_stream_name = fields.text(limits.MAX_KEY, allow_empty=False)
_short_text = fields.text(limits.MAX_REASON * 10)
_traceback = fields.string_list(limits.MAX_TRACEBACK_LINES, limits.MAX_STREAM_TEXT)
_execution_count = fields.optional(fields.integer(0, limits.MAX_EXECUTION_COUNT))
_metadata = fields.json_object(limits.MAX_METADATA_BYTES)

_ALLOWED_KEYS = {
    "stream": {"output_type", "name", "text"},
    "display_data": {"output_type", "data", "metadata", "transient"},
    "execute_result": {"output_type", "data", "metadata", "execution_count", "transient"},
    "error": {"output_type", "ename", "evalue", "traceback"},
}


def check_output(value: Any) -> dict:
    """Validate one nbformat output; return a normalized copy."""
    if not isinstance(value, dict):
        raise SchemaError("invalid_arg", "an output must be an object")
    kind = value.get("output_type")
    if kind not in _ALLOWED_KEYS:
        raise SchemaError(
            "invalid_arg", f"output_type must be one of {', '.join(OUTPUT_TYPES)}", "output_type"
        )
    unexpected = set(value) - _ALLOWED_KEYS[kind]
    if unexpected:
        raise SchemaError(
            "unexpected_arg", f"a {kind} output has no field {sorted(unexpected)[0]!r}"
        )
    if kind == "stream":
        output = {
            "output_type": kind,
            "name": _field(value, "name", _stream_name),
            "text": _field(value, "text", fields.text(limits.MAX_STREAM_TEXT)),
        }
    elif kind == "error":
        output = {
            "output_type": kind,
            "ename": _field(value, "ename", _short_text),
            "evalue": _field(value, "evalue", fields.text(limits.MAX_STREAM_TEXT)),
            "traceback": _field(value, "traceback", _traceback),
        }
    else:
        output = {
            "output_type": kind,
            "data": _field(value, "data", check_mime_bundle),
            "metadata": _field(value, "metadata", _metadata, default={}),
        }
        if kind == "execute_result":
            output["execution_count"] = _field(value, "execution_count", _execution_count)
        if "transient" in value:
            output["transient"] = _field(value, "transient", _check_transient)
    size = len(json.dumps(output, separators=(",", ":")))
    if size > limits.MAX_OUTPUT_BYTES:
        raise SchemaError(
            "too_large", f"the output is {size} bytes; the limit is {limits.MAX_OUTPUT_BYTES}"
        )
    return output


def check_mime_bundle(value: Any) -> dict:
    """``{"text/plain": "...", "image/png": "<base64>", "application/json": {...}}``."""
    if not isinstance(value, dict) or not value:
        raise SchemaError("invalid_arg", "must be a non-empty object of MIME type to data")
    for mime, data in value.items():
        if not isinstance(mime, str) or "/" not in mime or len(mime) > limits.MAX_KEY:
            raise SchemaError("invalid_arg", f"{str(mime)[:40]!r} is not a MIME type")
        fields.json_value(limits.MAX_OUTPUT_BYTES)(data)
    return dict(value)


def display_id_of(output: dict) -> str | None:
    transient = output.get("transient")
    return transient.get("display_id") if isinstance(transient, dict) else None


def _check_transient(value: Any) -> dict:
    if not isinstance(value, dict) or set(value) - {"display_id"}:
        raise SchemaError("invalid_arg", "transient may only hold display_id")
    if "display_id" in value:
        fields.text(limits.MAX_KEY, allow_empty=False)(value["display_id"])
    return dict(value)


def _field(value: dict, key: str, check: fields.Check, default: Any = ...) -> Any:
    if key not in value:
        if default is ...:
            raise SchemaError("missing_arg", "is required", key)
        return default
    try:
        return check(value[key])
    except SchemaError as error:
        raise error.at(key) from None
