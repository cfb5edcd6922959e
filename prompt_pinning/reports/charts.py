"""Charts drawn with Pillow: axes with named, ticked axes, line panels, heatmaps and legends.

The per-individual and per-generation loss plots use them (one per individual, so they
must cost milliseconds), and so do the run plots where matplotlib is not installed.
Every panel uses ``ticks.nice_ticks``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Callable, Optional, Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from .ticks import nice_ticks, tick_labels

INK = (29, 35, 48)
MUTED = (102, 112, 133)
GRID = (227, 230, 235)
PALETTE = [(59, 111, 182), (217, 130, 43), (46, 139, 87), (194, 65, 12), (124, 58, 237), (14, 116, 144),
           (190, 24, 93), (101, 163, 13), (120, 113, 108), (234, 179, 8)]
LEGEND_ROW = 14


@lru_cache(maxsize=8)
def font(size: int) -> ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow without FreeType sizes
        return ImageFont.load_default()


@dataclass
class Series:
    xs: np.ndarray
    ys: np.ndarray
    label: str = ""
    color: tuple = PALETTE[0]
    dots: bool = False  # points instead of a line
    dashed: bool = False


@dataclass
class Axes:
    """Where a panel's data go: ``to_x``/``to_y`` map data to pixels inside ``box``."""

    box: tuple[int, int, int, int]
    x_range: tuple[float, float]
    y_range: tuple[float, float]
    log: bool = False

    def to_x(self, x) -> np.ndarray:
        left, _, right, _ = self.box
        x0, x1 = self.x_range
        return left + (np.asarray(x, dtype=np.float64) - x0) / (x1 - x0) * (right - left)

    def to_y(self, y) -> np.ndarray:
        _, top, _, bottom = self.box
        y0, y1 = self.y_range
        y = np.asarray(y, dtype=np.float64)
        if self.log:
            with np.errstate(divide="ignore", invalid="ignore"):
                share = (np.log10(y) - math.log10(y0)) / (math.log10(y1) - math.log10(y0))
        else:
            share = (y - y0) / (y1 - y0)
        return bottom - share * (bottom - top)


def data_range(values: np.ndarray, log: bool = False, pad: float = 0.05) -> Optional[tuple[float, float]]:
    """The span of the finite (and, on a log axis, positive) ``values``, padded; None if there are none."""
    values = np.asarray(values, dtype=np.float64).ravel()
    values = values[np.isfinite(values) & ((values > 0) if log else True)]
    if values.size == 0:
        return None
    low, high = float(values.min()), float(values.max())
    if log:
        return (low / 1.2, high * 1.2) if low != high else (low / 2, high * 2)
    margin = (high - low) * pad or abs(high) * 0.1 or 1.0
    return low - margin, high + margin


def vertical_text(image: Image.Image, center: tuple[float, float], text: str, size: int = 10,
                  fill: tuple = MUTED) -> None:
    """``text`` turned a quarter left (read bottom to top), centred on ``center``."""
    width = int(font(size).getlength(text)) + 4
    strip = Image.new("L", (width, size + 6), 0)
    ImageDraw.Draw(strip).text((2, 1), text, fill=255, font=font(size))
    turned = strip.rotate(90, expand=True)
    x, y = int(center[0] - turned.width / 2), int(center[1] - turned.height / 2)
    image.paste(Image.new("RGB", turned.size, fill), (x, y), turned)


def axes_frame(image: Image.Image, box: tuple[int, int, int, int], title: str, x_range: tuple[float, float],
               y_range: tuple[float, float], xlabel: str, ylabel: str, log: bool = False,
               integer_x: bool = False) -> Axes:
    """Title, grid, tick labels on both axes, axis names and the frame; returns the mapping."""
    draw = ImageDraw.Draw(image)
    left, top, right, bottom = box
    axes = Axes(box, x_range, y_range, log)
    draw.text(((left + right) // 2, top - 8), title, fill=INK, font=font(12), anchor="md")
    y_ticks = nice_ticks(*y_range, log=log)
    for tick, label in zip(y_ticks, tick_labels(y_ticks, log)):
        y = float(axes.to_y(tick))
        draw.line([(left, y), (right, y)], fill=GRID)
        draw.text((left - 4, y), label, fill=MUTED, font=font(10), anchor="rm")
    x_ticks = [t for t in nice_ticks(*x_range) if not integer_x or float(t).is_integer()]
    for tick, label in zip(x_ticks, tick_labels(x_ticks)):
        x = float(axes.to_x(tick))
        draw.line([(x, bottom), (x, bottom + 3)], fill=MUTED)
        draw.text((x, bottom + 4), label, fill=MUTED, font=font(10), anchor="ma")
    draw.rectangle(box, outline=MUTED)
    draw.text(((left + right) // 2, bottom + 18), xlabel, fill=MUTED, font=font(10), anchor="ma")
    vertical_text(image, (left - 44, (top + bottom) / 2), ylabel)
    return axes


def empty_panel(image: Image.Image, box: tuple[int, int, int, int], title: str,
                note: str = "nothing to plot yet") -> None:
    draw = ImageDraw.Draw(image)
    left, top, right, bottom = box
    draw.text(((left + right) // 2, top - 8), title, fill=INK, font=font(12), anchor="md")
    draw.rectangle(box, outline=GRID)
    draw.text(((left + right) // 2, (top + bottom) // 2), note, fill=MUTED, font=font(11), anchor="mm")


def line_panel(image: Image.Image, box: tuple[int, int, int, int], series: Sequence[Series], title: str,
               xlabel: str, ylabel: str, log: bool = False, hlines: Sequence[Series] = (),
               vlines: Sequence[Series] = (), integer_x: bool = True,
               legend_at: Optional[tuple[int, int]] = None) -> Optional[Axes]:
    """Series inside ``box`` (left, top, right, bottom); reference lines are one-value Series.

    The legend, if ``legend_at`` is given, is drawn there (outside the data)."""
    xs = np.concatenate([np.asarray(s.xs, dtype=np.float64).ravel() for s in series]
                        + [np.asarray([v.xs for v in vlines], dtype=np.float64).ravel()])
    ys = np.concatenate([np.asarray(s.ys, dtype=np.float64).ravel() for s in series]
                        + [np.asarray([h.ys for h in hlines], dtype=np.float64).ravel()])
    x_range, y_range = data_range(xs), data_range(ys, log)
    if x_range is None or y_range is None:
        empty_panel(image, box, title)
        return None
    axes = axes_frame(image, box, title, x_range, y_range, xlabel, ylabel, log, integer_x)
    draw = ImageDraw.Draw(image)
    left, top, right, bottom = box
    for line in hlines:
        y = float(axes.to_y(line.ys))
        dashed_line(draw, [(left, y), (right, y)], line.color)
    for line in vlines:
        x = float(axes.to_x(line.xs))
        dashed_line(draw, [(x, top), (x, bottom)], line.color)
    for s in series:
        px, py = axes.to_x(s.xs), axes.to_y(s.ys)
        keep = np.isfinite(px) & np.isfinite(py)
        points = list(zip(px[keep].tolist(), py[keep].tolist()))
        if s.dots or len(points) == 1:
            for x, y in points:
                draw.ellipse([x - 2, y - 2, x + 2, y + 2], fill=s.color)
        elif points:
            draw.line(points, fill=s.color, width=2)
    if legend_at is not None:
        legend(draw, legend_at, [s for s in [*series, *hlines, *vlines] if s.label])
    return axes


def dashed_line(draw: ImageDraw.ImageDraw, ends: list[tuple[float, float]], line_color: tuple) -> None:
    (xa, ya), (xb, yb) = ends
    length = max(1.0, math.hypot(xb - xa, yb - ya))
    for start in np.arange(0, length, 10):
        end = min(start + 6, length)
        draw.line([(xa + (xb - xa) * start / length, ya + (yb - ya) * start / length),
                   (xa + (xb - xa) * end / length, ya + (yb - ya) * end / length)], fill=line_color, width=2)


def legend(draw: ImageDraw.ImageDraw, corner: tuple[int, int], series: Sequence[Series]) -> None:
    """One row per series (its mark and label) from ``corner`` (left, top) downwards."""
    left, top = corner
    for k, s in enumerate(series):
        y = top + LEGEND_ROW * k + 6
        if s.dots:
            draw.ellipse([left + 8, y - 3, left + 14, y + 3], fill=s.color)
        elif s.dashed:
            dashed_line(draw, [(left + 2, y), (left + 20, y)], s.color)
        else:
            draw.line([(left + 2, y), (left + 20, y)], fill=s.color, width=3)
        draw.text((left + 26, y), s.label, fill=INK, font=font(10), anchor="lm")


def diverging_color(share: float) -> tuple:
    """Blue (-1) through white (0) to red (+1)."""
    share = min(1.0, max(-1.0, share))
    end = np.array([178, 24, 43]) if share > 0 else np.array([33, 102, 172])
    return tuple(int(v) for v in np.array([247, 247, 247]) + (end - 247) * abs(share))


def sequential_color(share: float) -> tuple:
    """Dark blue (0) to yellow (1)."""
    stops = np.array([[68, 1, 84], [59, 82, 139], [33, 145, 140], [94, 201, 98], [253, 231, 37]], dtype=np.float64)
    position = min(1.0, max(0.0, share)) * (len(stops) - 1)
    k = min(int(position), len(stops) - 2)
    return tuple(int(v) for v in stops[k] + (stops[k + 1] - stops[k]) * (position - k))


def heatmap_panel(image: Image.Image, box: tuple[int, int, int, int], gens: np.ndarray, values: np.ndarray,
                  row_labels: Sequence[str], title: str, key: str, diverging: bool) -> None:
    """One row per unit (labelled ``number:text``), one column per generation, a colour key below."""
    draw = ImageDraw.Draw(image)
    left, top, right, bottom = box
    rows, columns = values.shape[1], values.shape[0]
    finite = values[np.isfinite(values)]
    if diverging:
        reach = float(np.abs(finite).max()) if finite.size else 1.0
        low, high, to_share = -reach, reach, (lambda v: v / (reach or 1.0))
        paint: Callable[[float], tuple] = diverging_color
    else:
        positive = finite[finite > 0]
        low, high = (float(positive.min()), float(positive.max())) if positive.size else (1e-3, 1.0)
        span = math.log10(high / low) or 1.0
        to_share = (lambda v: math.log10(v / low) / span if v > 0 else 0.0)
        paint = sequential_color
    draw.text(((left + right) // 2, top - 8), title, fill=INK, font=font(12), anchor="md")
    cell_w, cell_h = (right - left) / columns, (bottom - top) / rows
    for g in range(columns):
        for u in range(rows):
            value = float(values[g, u])
            color = paint(to_share(value)) if math.isfinite(value) else GRID
            draw.rectangle([left + g * cell_w, top + u * cell_h, left + (g + 1) * cell_w, top + (u + 1) * cell_h],
                           fill=color)
    draw.rectangle(box, outline=MUTED)
    size = 10 if cell_h >= 11 else 8
    for u, label in enumerate(row_labels):
        draw.text((left - 4, top + (u + 0.5) * cell_h), label, fill=INK, font=font(size), anchor="rm")
    g_ticks = [t for t in nice_ticks(float(gens[0]), float(gens[-1])) if float(t).is_integer()] if gens.size else []
    for tick in g_ticks:
        column = int(np.argmin(np.abs(gens - tick)))
        draw.text((left + (column + 0.5) * cell_w, bottom + 4), f"{tick:g}", fill=MUTED, font=font(10), anchor="ma")
    draw.text(((left + right) // 2, bottom + 18), "generation", fill=MUTED, font=font(10), anchor="ma")
    bar_top = bottom + 36
    for x in range(left, right):
        share = (x - left) / max(1, right - left - 1)
        draw.line([(x, bar_top), (x, bar_top + 8)], fill=paint(share * 2 - 1 if diverging else share))
    for x, text in ((left, f"{low:.3g}"), (right, f"{high:.3g}")):
        draw.text((x, bar_top + 10), text, fill=MUTED, font=font(10), anchor="ma")
    draw.text(((left + right) // 2, bar_top + 10), key, fill=MUTED, font=font(10), anchor="ma")
