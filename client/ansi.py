"""Terminal colours (ANSI SGR codes) in streams and tracebacks, as styled runs of text.

``runs(text)`` splits text into ``(chunk, classes)`` pairs: the escape codes
are gone, and each chunk carries the CSS classes its SGR state asks for
(``ansi-bold``, ``ansi-red``, ``ansi-bg-green``, ``ansi-bright-blue``…).
256-colour and true-colour codes map to the nearest of the 16 named colours,
so a class name is all that ever reaches the page: no style text from an
output, nothing to sanitize. Any other escape sequence (cursor movement,
OSC titles) is dropped.

Pure Python (no ``js``): tested in CPython.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

#: CSI sequences (ESC [ … final byte) and OSC ones (ESC ] … BEL or ESC \), and a lone ESC.
_ESCAPE = re.compile(r"\x1b\[([0-9;:?]*)([@-~])|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?|\x1b")

COLOURS = ("black", "red", "green", "yellow", "blue", "magenta", "cyan", "white")


@dataclass(frozen=True, slots=True)
class Style:
    bold: bool = False
    dim: bool = False
    italic: bool = False
    underline: bool = False
    fg: str | None = None
    bg: str | None = None

    def classes(self) -> str:
        names = [
            f"ansi-{flag}" for flag in ("bold", "dim", "italic", "underline") if getattr(self, flag)
        ]
        if self.fg:
            names.append(f"ansi-{self.fg}")
        if self.bg:
            names.append(f"ansi-bg-{self.bg}")
        return " ".join(names)


def _cube(n: int) -> str:
    """The nearest of the 16 colours to xterm's colour ``n`` (16-255)."""
    if n >= 232:  # grey ramp
        level = (n - 232) * 10 + 8
        return (
            "black"
            if level < 64
            else "bright-black"
            if level < 160
            else "white"
            if level < 224
            else "bright-white"
        )
    n -= 16
    return _nearest(*(0 if c == 0 else 55 + 40 * c for c in (n // 36, n // 6 % 6, n % 6)))


def _nearest(r: int, g: int, b: int) -> str:
    index = (1 if r > 127 else 0) | (2 if g > 127 else 0) | (4 if b > 127 else 0)
    bright = max(r, g, b) > 200
    return f"bright-{COLOURS[index]}" if bright and index else COLOURS[index]


def _extended(codes: list[int], i: int) -> tuple[str | None, int]:
    """A 38/48 colour starting at ``codes[i]`` (the 5 or 2): the colour and the next index."""
    if i < len(codes) and codes[i] == 5 and i + 1 < len(codes):
        n = codes[i + 1]
        name = (
            (COLOURS[n] if n < 8 else f"bright-{COLOURS[n - 8]}") if n < 16 else _cube(min(n, 255))
        )
        return name, i + 2
    if i < len(codes) and codes[i] == 2 and i + 3 < len(codes):
        return _nearest(*codes[i + 1 : i + 4]), i + 4
    return None, len(codes)


def _apply(style: Style, params: str) -> Style:
    """The style after one SGR sequence (``ESC[ params m``)."""
    codes = (
        [int(part) if part.isdigit() else 0 for part in re.split(r"[;:]", params)]
        if params
        else [0]
    )
    i = 0
    while i < len(codes):
        code = codes[i]
        i += 1
        if code == 0:
            style = Style()
        elif code == 1:
            style = replace(style, bold=True)
        elif code == 2:
            style = replace(style, dim=True)
        elif code == 3:
            style = replace(style, italic=True)
        elif code == 4:
            style = replace(style, underline=True)
        elif code == 22:
            style = replace(style, bold=False, dim=False)
        elif code == 23:
            style = replace(style, italic=False)
        elif code == 24:
            style = replace(style, underline=False)
        elif 30 <= code <= 37:
            style = replace(style, fg=COLOURS[code - 30])
        elif 90 <= code <= 97:
            style = replace(style, fg=f"bright-{COLOURS[code - 90]}")
        elif code == 39:
            style = replace(style, fg=None)
        elif 40 <= code <= 47:
            style = replace(style, bg=COLOURS[code - 40])
        elif 100 <= code <= 107:
            style = replace(style, bg=f"bright-{COLOURS[code - 100]}")
        elif code == 49:
            style = replace(style, bg=None)
        elif code in (38, 48):
            colour, i = _extended(codes, i)
            style = replace(style, **{"fg" if code == 38 else "bg": colour})
    return style


def runs(text: str) -> list[tuple[str, str]]:
    """``text`` as ``(chunk, css classes)`` runs, escape codes removed; adjacent runs of one style
    merged."""
    out: list[tuple[str, str]] = []
    style = Style()
    position = 0

    def emit(chunk: str) -> None:
        if not chunk:
            return
        classes = style.classes()
        if out and out[-1][1] == classes:
            out[-1] = (out[-1][0] + chunk, classes)
        else:
            out.append((chunk, classes))

    for match in _ESCAPE.finditer(text):
        emit(text[position : match.start()])
        position = match.end()
        if match.group(2) == "m":
            style = _apply(style, match.group(1) or "")
    emit(text[position:])
    return out


def strip(text: str) -> str:
    """``text`` without any escape code."""
    return "".join(chunk for chunk, _ in runs(text))
