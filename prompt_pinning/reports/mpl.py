"""matplotlib for the run plots, when it is installed.

Figures are built with ``matplotlib.figure.Figure`` on an Agg canvas: no pyplot, no
``matplotlib.use``, no change to rcParams, so a host process (the WebUI) that uses
matplotlib itself is not disturbed, and nothing ever opens a window.
"""
from __future__ import annotations

import io
import logging
import threading
from pathlib import Path
from typing import Any

from .files import atomic_write_bytes

logger = logging.getLogger(__name__)

DPI = 100
_missing_logged = threading.Event()


def matplotlib_available() -> bool:
    """Whether matplotlib's Figure and Agg canvas import; when not, says so once per process."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: F401
        from matplotlib.figure import Figure  # noqa: F401
    except ImportError as error:
        if not _missing_logged.is_set():
            _missing_logged.set()
            logger.warning("matplotlib is not available (%s); run plots are drawn with Pillow", error)
        return False
    return True


def new_figure(width: float, height: float) -> Any:
    """A Figure of ``width`` x ``height`` inches on its own Agg canvas, laid out automatically."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def png_bytes(figure: Any) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI, facecolor="white", pil_kwargs={"compress_level": 1})
    return buffer.getvalue()


def save_figure(figure: Any, path: Path) -> None:
    atomic_write_bytes(Path(path), png_bytes(figure))
