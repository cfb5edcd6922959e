"""Per-run plots: ``cma_plot.png`` (four CMA panels) and ``cma_mo_plot.png`` (size limiter)."""
from __future__ import annotations

import io
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional, Sequence

import numpy as np
from PIL import Image, ImageDraw

from .charts import PALETTE, Series, color, line_panel
from .files import atomic_write_bytes
from .quickplot import INK, font

if TYPE_CHECKING:  # records imports torch; the worker process never needs it
    from ..records import GenerationRecord

CMA_PLOT = "cma_plot.png"
CMA_MO_PLOT = "cma_mo_plot.png"
LIMIT_COLOR = (194, 65, 12)


def cma_records(records: Sequence[GenerationRecord]) -> list[GenerationRecord]:
    """Generations that come from the search (generation 0 is the unmodified prompt)."""
    return [r for r in records if r.generation > 0 and np.isfinite(r.sigma)]


def _stack(records: Sequence[Any], field: str) -> Optional[np.ndarray]:
    """Per-generation vectors as a (G, N) array; None when their lengths differ or are empty."""
    rows = [np.asarray(getattr(r, field), dtype=np.float64).ravel() for r in records]
    if not rows or len({row.size for row in rows}) != 1 or rows[0].size == 0:
        return None
    return np.vstack(rows)


def _columns(gens: np.ndarray, values: Optional[np.ndarray], labels: Sequence[str]) -> list[Series]:
    if values is None:
        return []
    named = len(labels) == values.shape[1]
    return [Series(gens, values[:, k], labels[k] if named else "", color(k)) for k in range(values.shape[1])]


def _save(image: Image.Image, path: Path) -> None:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=1)
    atomic_write_bytes(Path(path), buffer.getvalue())


def _canvas(width: int, height: int, title: str) -> tuple[Image.Image, ImageDraw.ImageDraw]:
    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)
    draw.text((width // 2, 6), title, fill=INK, font=font(14), anchor="ma")
    return image, draw


def write_cma_plot(path: Path, records: Sequence[Any], unit_labels: Sequence[str] = ()) -> None:
    """f-values, sigma and axis ratio; object variables; scaling of all main axes; std per coordinate."""
    records = [r for r in records if r.generation > 0 and np.isfinite(r.sigma)]
    gens = np.array([r.generation for r in records], dtype=np.float64)
    image, draw = _canvas(960, 680, "CMA-ES over the generations")
    boxes = [(70, 60, 460, 300), (550, 60, 940, 300), (70, 390, 460, 630), (550, 390, 940, 630)]
    best = np.array([np.nanmin(r.losses) if len(r.losses) else np.nan for r in records])
    median = np.array([np.nanmedian(r.losses) if len(r.losses) else np.nan for r in records])
    line_panel(draw, boxes[0], [
        Series(gens, best, "best loss", PALETTE[0]),
        Series(gens, median, "median loss", (147, 174, 214)),
        Series(gens, np.array([r.sigma for r in records]), "sigma", PALETTE[2]),
        Series(gens, np.array([r.axis_ratio for r in records]), "axis ratio", PALETTE[1]),
    ], "f-values, sigma and axis ratio", "generation", log=True)
    line_panel(draw, boxes[1], _columns(gens, _stack(records, "centroid"), unit_labels),
               "object variables (centroid offsets)", "generation")
    eigen = _stack(records, "eigenvalues")
    scales = None if eigen is None else np.sort(np.sqrt(np.clip(eigen, 0, None)), axis=1)
    line_panel(draw, boxes[2], _columns(gens, scales, ()), "scaling of all main axes", "generation", log=True)
    line_panel(draw, boxes[3], _columns(gens, _stack(records, "diag_std"), unit_labels),
               "standard deviations per coordinate", "generation", log=True)
    _save(image, path)


def write_cma_mo_plot(path: Path, rows: Sequence[dict[str, Any]], size_limit: float) -> None:
    """Loss against distance from the original weights, and that distance over the run."""
    points = [(r["g"], r["loss"], r["size"]) for r in rows if r.get("size") is not None and r.get("loss") is not None]
    image, draw = _canvas(960, 360, "size limiter")
    gens, losses, sizes = (np.array(column, dtype=np.float64) for column in zip(*points)) if points else \
        (np.empty(0), np.empty(0), np.empty(0))
    last = max(1.0, float(gens.max())) if gens.size else 1.0
    by_age = [Series(sizes[gens == g], losses[gens == g], "", _age_color(g / last), dots=True) for g in np.unique(gens)]
    line_panel(draw, (70, 60, 460, 300), by_age, "loss against size (darker: later generations)", "size",
               vlines=[(size_limit, LIMIT_COLOR)], integer_x=False)
    line_panel(draw, (550, 60, 940, 300), [Series(np.arange(sizes.size), sizes, "", PALETTE[0], dots=True)],
               "size of each evaluated individual (dashed: limit)", "evaluation", hlines=[(size_limit, LIMIT_COLOR)])
    _save(image, path)


def _age_color(share: float) -> tuple:
    light, dark = np.array([180, 205, 235]), np.array([20, 50, 110])
    return tuple(int(v) for v in light + (dark - light) * min(1.0, max(0.0, share)))
