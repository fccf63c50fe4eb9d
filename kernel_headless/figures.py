"""matplotlib figures inline, as Jupyter shows them: at ``plt.show()`` and at a cell's end.

The kernel points ``MPLBACKEND`` at ``inline_backend`` before any cell runs,
so ``import matplotlib.pyplot`` picks it: drawing is matplotlib's own Agg
renderer, and showing a figure publishes it as a ``display_data`` (PNG, or
the formats ``%config InlineBackend.figure_formats = ["svg"]`` chose) and
closes it. Nothing here imports matplotlib until a cell has.
"""

from __future__ import annotations

import base64
import io
import sys
from typing import Any

from . import display as _display

#: ``MPLBACKEND``: the backend module matplotlib loads (``inline_backend``).
BACKEND = "module://kernel_headless.inline_backend"
#: What a figure is published as, in order; ``%config InlineBackend.figure_formats`` sets it.
FORMATS = ["png"]
_KNOWN_FORMATS = {"png": "image/png", "svg": "image/svg+xml", "jpeg": "image/jpeg"}


def set_formats(formats: list[str]) -> None:
    chosen = [name.lower().replace("retina", "png") for name in formats]
    unknown = [name for name in chosen if name not in _KNOWN_FORMATS]
    if not chosen or unknown:
        raise ValueError(f"figure formats are some of {', '.join(_KNOWN_FORMATS)}, not {formats}")
    FORMATS[:] = list(dict.fromkeys(chosen))


def show_figures() -> None:
    """Publish every open figure, then close them all (matplotlib_inline's ``show``)."""
    pyplot = sys.modules.get("matplotlib.pyplot")
    if pyplot is None:
        return
    try:
        for number in pyplot.get_fignums():
            figure = pyplot.figure(number)
            _display.publish_display_data(*figure_bundle(figure))
    finally:
        pyplot.close("all")


def figure_bundle(figure: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """A figure as ``(data, metadata)``: each chosen format, and its text form."""
    data: dict[str, Any] = {"text/plain": repr(figure)}
    metadata: dict[str, Any] = {}
    for name in FORMATS:
        buffer = io.BytesIO()
        figure.savefig(buffer, format=name, bbox_inches="tight")
        raw = buffer.getvalue()
        mime = _KNOWN_FORMATS[name]
        data[mime] = raw.decode() if name == "svg" else base64.b64encode(raw).decode()
        if name == "png":
            width, height = figure.get_size_inches() * figure.dpi
            metadata[mime] = {"width": round(width), "height": round(height)}
    return data, metadata
