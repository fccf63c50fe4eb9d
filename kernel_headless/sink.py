"""Where a running cell's outputs go.

The runner writes to an ``OutputSink``; each host (the Node worker, the
headless browser) provides one that turns the calls into events. Between the
two sits ``CappedSink``, the one gate every output passes: it validates with
``shared_schema`` (so a host never receives an output the relay would reject)
and caps what one cell may add to the log.

Sinks are synchronous on purpose: the runner calls them from inside user code
(``print``, ``display``), where nothing can be awaited. A host that talks to
the network queues the calls and sends them from its own task.
"""

from __future__ import annotations

import json
from typing import Any, Protocol

from shared_schema import limits
from shared_schema.errors import SchemaError
from shared_schema.outputs import STREAM_NAMES, check_output

DEFAULT_CAP_BYTES = 5_000_000


class OutputSink(Protocol):
    """What a running cell writes to. Every call is one nbformat-shaped fact."""

    def stream(self, name: str, text: str) -> None:
        """Append ``text`` to the ``stdout`` or ``stderr`` stream."""

    def output(self, output: dict) -> None:
        """Add a ``display_data``, ``execute_result`` or ``error`` output (an nbformat dict).

        ``display_data`` may carry ``"transient": {"display_id": ...}``.
        """

    def update_display(self, display_id: str, data: dict, metadata: dict) -> None:
        """Replace the data of every output shown under ``display_id``."""

    def clear(self, wait: bool) -> None:
        """Clear the cell's outputs; with ``wait``, only when the next output arrives."""


def safe_text(text: str) -> str:
    """``text`` made encodable as UTF-8, so it never breaks a JSON body.

    Lone surrogates that ``surrogateescape`` produced (bytes decoded badly)
    become those bytes again, decoded with ``replace``; any other lone
    surrogate becomes U+FFFD.
    """
    if text.isascii():
        return text
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        pass
    escaped = "".join(_keep_escaped_byte(char) for char in text)
    return escaped.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def _keep_escaped_byte(char: str) -> str:
    code = ord(char)
    if 0xD800 <= code <= 0xDFFF and not 0xDC80 <= code <= 0xDCFF:
        return "\ufffd"
    return char


def format_size(size: int) -> str:
    """``12.3 MB``: decimal units, as people read file sizes."""
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if size >= scale:
            return f"{size / scale:.1f} {unit}"
    return f"{size} B"


class CappedSink:
    """Forwards to ``sink`` until the cell has produced ``cap_bytes``, then drops.

    Text is cut at the cap; a display, result or display update that does not
    fit is dropped whole. Errors always pass, so a cell that floods its output
    and then fails still shows why. ``finish()`` then emits one stderr notice
    that says how much was not shown, and why any output was refused.
    Sizes are UTF-8 bytes for text and serialized JSON for outputs.
    """

    def __init__(self, sink: OutputSink, cap_bytes: int = DEFAULT_CAP_BYTES) -> None:
        self.sink = sink
        self.cap_bytes = cap_bytes
        self.used_bytes = 0
        self.dropped_bytes = 0
        self.refused: list[str] = []
        self._stderr_needs_newline = False
        self._finished = False

    def stream(self, name: str, text: str) -> None:
        if name not in STREAM_NAMES:
            self.refused.append(f"{name!r:.40} is not a stream (stdout, stderr)")
            return
        text = safe_text(text)
        size = len(text.encode("utf-8"))
        room = max(self.cap_bytes - self.used_bytes, 0)
        if size > room:
            # Cut at the cap; a character split there is dropped whole.
            text = text.encode("utf-8")[:room].decode("utf-8", "ignore")
            shown = len(text.encode("utf-8"))
            self.dropped_bytes += size - shown
            size = shown
        self.used_bytes += size
        self._forward_text(name, text)

    def output(self, output: dict) -> None:
        checked = self._check(output)
        if checked is None:
            return
        if checked["output_type"] == "error" or self._take(checked):
            self.sink.output(checked)

    def update_display(self, display_id: str, data: dict, metadata: dict) -> None:
        as_output = {
            "output_type": "display_data",
            "data": data,
            "metadata": metadata,
            "transient": {"display_id": display_id},
        }
        checked = self._check(as_output)
        if checked is not None and self._take(checked):
            self.sink.update_display(display_id, checked["data"], checked["metadata"])

    def clear(self, wait: bool) -> None:
        self.sink.clear(wait)

    def finish(self) -> None:
        """Emit the notice about what was not shown, once, as the cell's last output."""
        if self._finished:
            return
        self._finished = True
        lines = []
        if self.dropped_bytes:
            lines.append(
                f"[output truncated: {format_size(self.dropped_bytes)} more was not shown;"
                f" the cap is {format_size(self.cap_bytes)} per cell]"
            )
        if self.refused:
            count = len(self.refused)
            plural = "outputs were" if count > 1 else "output was"
            lines.append(f"[{count} {plural} not shown: {self.refused[0]}]")
        if lines:
            lead = "\n" if self._stderr_needs_newline else ""
            self.sink.stream("stderr", lead + "\n".join(lines) + "\n")

    def _forward_text(self, name: str, text: str) -> None:
        for start in range(0, len(text), limits.MAX_STREAM_TEXT):
            self.sink.stream(name, text[start : start + limits.MAX_STREAM_TEXT])
        if text:
            self._stderr_needs_newline = name == "stderr" and not text.endswith("\n")

    def _check(self, output: dict) -> dict | None:
        try:
            return check_output(output)
        except SchemaError as error:
            self.refused.append(str(error))
            return None

    def _take(self, output: dict) -> bool:
        size = len(json.dumps(output, separators=(",", ":")))
        if self.used_bytes + size > self.cap_bytes:
            self.dropped_bytes += size
            return False
        self.used_bytes += size
        return True


class RecordingSink:
    """Keeps every call, in order, as a JSON-ready dict.

    For hosts that batch (``drain()`` hands over what accumulated) and for
    tests. Calls look like ``{"call": "stream", "name": "stdout", "text": "hi\\n"}``.
    """

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []

    def stream(self, name: str, text: str) -> None:
        self.calls.append({"call": "stream", "name": name, "text": text})

    def output(self, output: dict) -> None:
        self.calls.append({"call": "output", "output": output})

    def update_display(self, display_id: str, data: dict, metadata: dict) -> None:
        self.calls.append(
            {"call": "update_display", "display_id": display_id, "data": data, "metadata": metadata}
        )

    def clear(self, wait: bool) -> None:
        self.calls.append({"call": "clear", "wait": wait})

    def drain(self) -> list[dict[str, Any]]:
        """The calls so far, forgetting them; adjacent text to one stream comes as one call.

        ``print(..., flush=True)`` in a loop makes a call per line; a host that
        sends what accumulated while Python ran sends it as one event.
        """
        calls, self.calls = self.calls, []
        return coalesce(calls)

    def text(self, name: str = "stdout") -> str:
        """Everything written to one stream."""
        return "".join(c["text"] for c in self.calls if c["call"] == "stream" and c["name"] == name)

    @property
    def outputs(self) -> list[dict]:
        """The ``output()`` calls' outputs (no streams, updates or clears)."""
        return [c["output"] for c in self.calls if c["call"] == "output"]


def coalesce(calls: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Merge adjacent ``stream`` calls to the same stream (up to the schema's text limit)."""
    merged: list[dict[str, Any]] = []
    for call in calls:
        last = merged[-1] if merged else None
        if (
            last is not None
            and call["call"] == last["call"] == "stream"
            and call["name"] == last["name"]
            and len(last["text"]) + len(call["text"]) <= limits.MAX_STREAM_TEXT
        ):
            merged[-1] = {**last, "text": last["text"] + call["text"]}
        else:
            merged.append(call)
    return merged
