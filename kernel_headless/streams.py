"""``sys.stdout`` and ``sys.stderr`` while a cell runs: text files that coalesce.

A ``print`` in a loop must not become one event per call, and text must stay
in order with displays and errors. So writes are buffered and handed to the
sink in chunks: when the buffer is older than ``max_delay``, bigger than
``max_bytes``, on ``flush()``, and right before any other output (the runner
flushes both writers first). When an event loop runs, a timer also flushes a
buffer that would otherwise wait for the next write, so text printed before
an ``await asyncio.sleep(5)`` shows at once.
"""

from __future__ import annotations

import asyncio
import io
import time
from collections.abc import Callable, Iterable

from .sink import OutputSink, safe_text


class StreamWriter(io.TextIOBase):
    """A write-only text stream that forwards to ``sink.stream(name, text)`` in chunks.

    ``max_bytes`` is counted in characters, the unit of the schema's stream
    limit; no chunk handed to the sink is longer. ``sink`` may be swapped:
    the runner keeps one writer per stream and points it at each cell in turn.
    """

    def __init__(
        self,
        name: str,
        sink: OutputSink,
        clock: Callable[[], float] = time.monotonic,
        max_delay: float = 0.05,
        max_bytes: int = 64_000,
    ) -> None:
        super().__init__()
        self.stream_name = name
        self.sink = sink
        self.clock = clock
        self.max_delay = max_delay
        self.max_bytes = max_bytes
        self._parts: list[str] = []
        self._size = 0
        self._oldest = 0.0
        self._timer: asyncio.TimerHandle | None = None

    # What code that inspects sys.stdout expects of a text stream.
    @property
    def name(self) -> str:  # type: ignore[override]
        return f"<{self.stream_name}>"

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return "utf-8"

    @property
    def errors(self) -> str:  # type: ignore[override]
        return "replace"

    def isatty(self) -> bool:
        return False

    def writable(self) -> bool:
        return True

    def fileno(self) -> int:
        raise io.UnsupportedOperation("a cell's output stream has no file descriptor")

    def write(self, text: str) -> int:  # type: ignore[override]
        if not isinstance(text, str):
            raise TypeError(f"write() argument must be str, not {type(text).__name__}")
        if not text:
            return 0
        if not self._parts:
            self._oldest = self.clock()
            self._schedule_flush()
        self._parts.append(text)
        self._size += len(text)
        if self._size >= self.max_bytes or self.clock() - self._oldest >= self.max_delay:
            self.flush()
        return len(text)

    def writelines(self, lines: Iterable[str]) -> None:  # type: ignore[override]
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if not self._parts:
            return
        # Take the buffer first: a sink that prints (to us) must not see it twice.
        text = safe_text("".join(self._parts))
        self._parts = []
        self._size = 0
        for start in range(0, len(text), self.max_bytes):
            self.sink.stream(self.stream_name, text[start : start + self.max_bytes])

    def close(self) -> None:
        """Flush only: the runner owns this stream, and user code closing it must not break it."""
        self.flush()

    def _schedule_flush(self) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        self._timer = loop.call_later(self.max_delay, self.flush)
