"""The per-individual and per-generation loss plots, drawn with Pillow.

One ``loss_plot.png`` is written for every individual; Pillow draws it in a few
milliseconds, several times faster than a matplotlib figure
(``benchmarks/bench_plots.py`` prints both).
"""
from __future__ import annotations

from typing import Optional

import numpy as np
from PIL import Image, ImageDraw

from .charts import INK, MUTED, Axes, Series, axes_frame, dashed_line, empty_panel, font, legend

BARS = (59, 111, 182)
CURVE = (46, 139, 87)
MEAN = (217, 130, 43)


def finite(values) -> np.ndarray:
    """The finite entries of ``values`` as a flat float64 array."""
    array = np.asarray(values, dtype=np.float64).ravel()
    return array[np.isfinite(array)]


def _value_range(values: np.ndarray) -> tuple[float, float]:
    low, high = float(values.min()), float(values.max())
    if high == low:
        half = max(abs(high) * 0.05, 1e-6)
        return low - half, high + half
    return low, high


def histogram_counts(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(counts, bin edges) as the histogram panel draws them."""
    low, high = _value_range(values)
    bins = min(24, max(5, int(np.sqrt(values.size)) + 1))
    return np.histogram(values, bins=bins, range=(low, high))


def histogram_panel(image: Image.Image, box, values: np.ndarray, title: str, value_name: str, count_name: str,
                    color=BARS) -> Optional[Axes]:
    """Histogram of ``values`` inside ``box`` (left, top, right, bottom); the dashed line is the mean,
    named in a legend above the panel."""
    if values.size == 0:
        empty_panel(image, box, title, "no finite values")
        return None
    counts, edges = histogram_counts(values)
    tallest = max(1, int(counts.max()))
    axes = axes_frame(image, box, title, (float(edges[0]), float(edges[-1])), (0.0, tallest * 1.08),
                      value_name, count_name)
    draw = ImageDraw.Draw(image)
    bottom = box[3]
    for count, low, high in zip(counts, edges[:-1], edges[1:]):
        if count:
            x0, x1 = float(axes.to_x(low)), float(axes.to_x(high))
            draw.rectangle([x0 + 1, float(axes.to_y(count)), x1 - 1, bottom], fill=color)
    mean = float(values.mean())
    mean_x = float(axes.to_x(mean))
    dashed_line(draw, [(mean_x, box[1]), (mean_x, bottom)], MEAN)
    legend(draw, (box[2] - 110, box[1] - 36), [Series(np.empty(0), np.empty(0), f"mean {mean:.3g}", MEAN, dashed=True)])
    return axes


def sorted_panel(image: Image.Image, box, values: np.ndarray, title: str, rank_name: str, value_name: str,
                 color=CURVE) -> Optional[Axes]:
    """``values`` in increasing order against their rank (1 = lowest): the distribution as a curve."""
    if values.size == 0:
        empty_panel(image, box, title, "no finite values")
        return None
    low, high = _value_range(values)
    pad = (high - low) * 0.05
    axes = axes_frame(image, box, title, (0.5, values.size + 0.5), (low - pad, high + pad), rank_name, value_name,
                      integer_x=True)
    draw = ImageDraw.Draw(image)
    ordered = np.sort(values)
    xs, ys = axes.to_x(np.arange(1, ordered.size + 1)), axes.to_y(ordered)
    points = list(zip(xs.tolist(), ys.tolist()))
    if len(points) > 1:
        draw.line(points, fill=color, width=2)
    for x, y in points if len(points) <= 200 else ():
        draw.ellipse([x - 2, y - 2, x + 2, y + 2], fill=color)
    return axes


def loss_plot(values: np.ndarray, title: str, width: int = 640, height: int = 260) -> Image.Image:
    """Histogram (left) and sorted values (right) of an individual's finite pair losses."""
    image = Image.new("RGB", (width, height), "white")
    ImageDraw.Draw(image).text((width // 2, 4), title, fill=INK, font=font(12), anchor="ma")
    half = width // 2
    histogram_panel(image, (64, 62, half - 16, height - 40), values, "pair losses", "pair loss (LDR-FLIP)",
                    "pairs")
    sorted_panel(image, (half + 64, 62, width - 16, height - 40), values, "sorted pair losses",
                 "pair, from lowest loss", "pair loss (LDR-FLIP)")
    return image


def four_panels(title: str, panels, width: int = 720, height: int = 520,
                note: Optional[str] = None) -> Image.Image:
    """A 2x2 grid; ``panels`` holds (kind, values, title, x name, y name, colour), kind "hist" or "sorted"."""
    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)
    draw.text((width // 2, 4), title, fill=INK, font=font(13), anchor="ma")
    if note:
        draw.text((width // 2, 22), note, fill=MUTED, font=font(10), anchor="ma")
    cell_w, cell_h = width // 2, (height - 30) // 2
    for k, (kind, values, panel_title, x_name, y_name, color) in enumerate(panels):
        x, y = (k % 2) * cell_w, 30 + (k // 2) * cell_h
        box = (x + 64, y + 52, x + cell_w - 16, y + cell_h - 38)
        if kind == "hist":
            histogram_panel(image, box, values, panel_title, x_name, y_name, color)
        else:
            sorted_panel(image, box, values, panel_title, x_name, y_name, color)
    return image
