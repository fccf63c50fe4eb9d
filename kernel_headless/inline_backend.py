"""The matplotlib backend a kernel runs with (``MPLBACKEND``; see ``figures``).

Only matplotlib imports this module, once a cell has imported matplotlib:
drawing is its Agg renderer; ``plt.show()`` publishes the open figures.
"""

from __future__ import annotations

from typing import Any

from matplotlib.backend_bases import FigureManagerBase
from matplotlib.backends.backend_agg import FigureCanvasAgg

from .figures import show_figures

FigureCanvas = FigureCanvasAgg
FigureManager = FigureManagerBase


def show(*_args: Any, **_kwargs: Any) -> None:
    """``plt.show()``: the figures so far appear now, in order with the cell's other output."""
    show_figures()
