"""Reports of a pinning run: images with infotext, JSON, plots, GIFs and index.html.

Names are imported lazily so the report worker process can load the plotting
modules without loading torch.
"""
from __future__ import annotations

from typing import Any

__all__ = ["FINAL_JSON", "INDEX_HTML", "ReportWriter"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from . import writer

        return getattr(writer, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
