"""Per-run plots: ``cma_plot.png``, ``cma_mo_plot.png`` (size limiter) and ``loss_history.png``.

Drawn with matplotlib (``run_figures``) in the report worker; where matplotlib is not
installed, with Pillow (the functions ``pillow_*`` here), after one log line.
"""
from __future__ import annotations

import io
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np
from PIL import Image, ImageDraw

from .charts import INK, PALETTE, Series, empty_panel, font, heatmap_panel, line_panel
from .files import atomic_write_bytes
from .mpl import matplotlib_available, save_figure
from .plot_data import GAIN_AXIS, cma_records, gain_note, gain_summary, main_axis_lengths, size_points, stack

CMA_PLOT = "cma_plot.png"
CMA_MO_PLOT = "cma_mo_plot.png"
LOSS_HISTORY_PLOT = "loss_history.png"
LIMIT_COLOR = (194, 65, 12)
BASELINE_COLOR = (85, 85, 85)
VALIDATION_COLOR = (217, 130, 43)


def write_cma_plot(path: Path, records: Sequence[Any], unit_labels: Sequence[str] = ()) -> None:
    if matplotlib_available():
        from .run_figures import cma_figure

        save_figure(cma_figure(records, unit_labels), path)
    else:
        _save(pillow_cma_plot(records, unit_labels), path)


def write_cma_mo_plot(path: Path, rows: Sequence[dict[str, Any]], size_limit: float) -> None:
    if matplotlib_available():
        from .run_figures import cma_mo_figure

        save_figure(cma_mo_figure(rows, size_limit), path)
    else:
        _save(pillow_cma_mo_plot(rows, size_limit), path)


def write_loss_history_plot(path: Path, records: Sequence[Any]) -> None:
    if matplotlib_available():
        from .run_figures import loss_history_figure

        save_figure(loss_history_figure(records), path)
    else:
        _save(pillow_loss_history(records), path)


def _save(image: Image.Image, path: Path) -> None:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=1)
    atomic_write_bytes(Path(path), buffer.getvalue())


def _canvas(width: int, height: int, title: str) -> Image.Image:
    image = Image.new("RGB", (width, height), "white")
    ImageDraw.Draw(image).text((width // 2, 6), title, fill=INK, font=font(14), anchor="ma")
    return image


# ---- Pillow, where matplotlib is missing ---------------------------------------------------
def pillow_cma_plot(records: Sequence[Any], unit_labels: Sequence[str] = ()) -> Image.Image:
    """The matplotlib figure's panels: four line panels, then centroid and std heatmaps (one row per unit)."""
    records = cma_records(records)
    gens = np.array([r.generation for r in records], dtype=np.float64)
    centroid, stds = stack(records, "centroid"), stack(records, "diag_std")
    units = centroid.shape[1] if centroid is not None else 0
    labels = list(unit_labels) if len(unit_labels) == units else [str(k) for k in range(1, units + 1)]
    label_width = max([int(font(10).getlength(label)) for label in labels] + [40]) + 12
    heat = max(120, 16 * units)
    image = _canvas(1180, 560 + heat + 80, "CMA-ES over the generations")
    summary = gain_summary(records)
    line_panel(image, (90, 60, 470, 250), [
        Series(gens, 100 * summary["best"], "generation best", PALETTE[0]),
        Series(gens, 100 * summary["median"], "generation median", (147, 174, 214)),
    ], "gain of the generation's individuals", "generation", "gain, same seeds (%)", legend_at=(480, 60),
        hlines=[Series(np.empty(0), np.array(0.0), "unmodified prompt", BASELINE_COLOR, dashed=True)])
    line_panel(image, (680, 60, 1040, 250), [Series(gens, np.array([r.sigma for r in records]), "", PALETTE[2])],
               "step size sigma", "generation", "sigma (weight offset)", log=True)
    line_panel(image, (90, 320, 470, 510), [Series(gens, np.array([r.axis_ratio for r in records]), "", PALETTE[1])],
               "axis ratio", "generation", "longest / shortest axis", log=True)
    lengths = main_axis_lengths(records)
    axis_series = [] if lengths is None else (
        [Series(gens, lengths[:, k], "", (184, 184, 184)) for k in range(1, lengths.shape[1] - 1)]
        + [Series(gens, lengths[:, -1], "longest axis", PALETTE[3]),
           Series(gens, lengths[:, 0], "shortest axis", PALETTE[0])])
    line_panel(image, (680, 320, 1040, 510), axis_series, "scaling of all main axes", "generation",
               "sqrt(eigenvalue of C)", log=True, legend_at=(1050, 320))
    top = 580
    for box_left, box_right, values, title, key, diverging in (
            (label_width, 570, centroid, "centroid offset per unit", "centroid offset (weight)", True),
            (580 + label_width, 1160, stds, "search std per unit (small: tight)", "std (weight offset, log)", False)):
        box = (box_left, top, box_right, top + heat)
        if values is None or not gens.size:
            empty_panel(image, box, title)
        else:
            heatmap_panel(image, box, gens, values, labels, title, key, diverging)
    return image


def pillow_cma_mo_plot(rows: Sequence[dict[str, Any]], size_limit: float) -> Image.Image:
    """Loss against size, and size per evaluation; darker points are later generations."""
    gens, losses, sizes = size_points(rows)
    image = _canvas(1080, 380, "size limiter: distance from the original weights (darker: later generations)")
    last = max(1.0, float(gens.max())) if gens.size else 1.0
    by_age = [Series(sizes[gens == g], losses[gens == g], "", _age_color(g / last), dots=True) for g in np.unique(gens)]
    limit_x = Series(np.array(size_limit), np.empty(0), f"size limit {size_limit:g}", LIMIT_COLOR, dashed=True)
    limit_y = Series(np.empty(0), np.array(size_limit), f"size limit {size_limit:g}", LIMIT_COLOR, dashed=True)
    line_panel(image, (90, 60, 470, 310), by_age, "loss against size", "size: L2 distance (weight)",
               "loss (LDR-FLIP)", vlines=[limit_x], integer_x=False)
    line_panel(image, (580, 60, 940, 310), [Series(np.arange(1, sizes.size + 1), sizes, "", PALETTE[0], dots=True)],
               "size of each evaluated individual", "evaluation (in order)", "size (weight)", hlines=[limit_y],
               legend_at=(950, 60))
    return image


def pillow_loss_history(records: Sequence[Any]) -> Image.Image:
    """``run_figures.loss_history_figure`` drawn with Pillow."""
    records = cma_records(records)
    summary = gain_summary(records)
    gens = summary["generation"]
    image = _canvas(980, 380, "improvement over the unmodified prompt, each on the same seeds")
    series = [Series(gens, 100 * summary["median"], "generation median (own seeds)", (122, 156, 198)),
              Series(gens, 100 * summary["best"], "generation best (own seeds)", PALETTE[0], dots=True)]
    if np.isfinite(summary["validation"]).any():
        series.append(Series(gens, 100 * summary["validation"], "best validated so far (validation seeds)",
                             VALIDATION_COLOR))
    hlines = [Series(np.empty(0), np.array(0.0), "unmodified prompt (0)", BASELINE_COLOR, dashed=True)]
    line_panel(image, (90, 50, 660, 310), series, "", "generation", GAIN_AXIS, hlines=hlines,
               legend_at=(670, 50))
    ImageDraw.Draw(image).text((10, 356), gain_note(summary), fill=INK, font=font(10))
    return image


def _age_color(share: float) -> tuple:
    light, dark = np.array([180, 205, 235]), np.array([20, 50, 110])
    return tuple(int(v) for v in light + (dark - light) * min(1.0, max(0.0, share)))
