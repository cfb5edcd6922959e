"""Line and scatter panels drawn with Pillow, for the run plots.

A run plot is redrawn while the run goes on and once more at its end, when the
run waits for it; drawing it directly takes milliseconds.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np
from PIL import ImageDraw

from .quickplot import GRID, INK, MUTED, font

PALETTE = [(59, 111, 182), (217, 130, 43), (46, 139, 87), (194, 65, 12), (124, 58, 237), (14, 116, 144),
           (190, 24, 93), (101, 163, 13), (120, 113, 108), (234, 179, 8)]


@dataclass
class Series:
    xs: np.ndarray
    ys: np.ndarray
    label: str = ""
    color: tuple = PALETTE[0]
    dots: bool = False  # draw points instead of a line


def color(k: int) -> tuple:
    return PALETTE[k % len(PALETTE)]


def _ticks(low: float, high: float, log: bool) -> list[float]:
    if log:
        first, last = math.floor(math.log10(low)), math.ceil(math.log10(high))
        step = max(1, (last - first) // 5)
        ticks = [10.0**e for e in range(first, last + 1, step) if low <= 10.0**e <= high]
        if len(ticks) < 3:  # a narrow range: label 2x and 5x too
            ticks = [m * 10.0**e for e in range(first, last + 1) for m in (1, 2, 5) if low <= m * 10.0**e <= high]
        return ticks or [low, high]
    span = high - low
    step = 10 ** math.floor(math.log10(span / 4))
    for factor in (1, 2, 5, 10):
        if span / (step * factor) <= 5:
            step *= factor
            break
    start = math.ceil(low / step) * step
    return [start + k * step for k in range(int((high - start) / step + 1e-9) + 1)]


def _limits(values: np.ndarray, log: bool) -> Optional[tuple[float, float]]:
    values = values[np.isfinite(values) & ((values > 0) if log else True)]
    if values.size == 0:
        return None
    low, high = float(values.min()), float(values.max())
    if log:
        return (low / 1.2, high * 1.2) if low != high else (low / 2, high * 2)
    pad = (high - low) * 0.05 or abs(high) * 0.1 or 1.0
    return low - pad, high + pad


def line_panel(draw: ImageDraw.ImageDraw, box: tuple[int, int, int, int], series: Sequence[Series], title: str,
               xlabel: str = "", log: bool = False, hlines: Sequence[tuple[float, tuple]] = (),
               vlines: Sequence[tuple[float, tuple]] = (), legend: bool = True, integer_x: bool = True) -> None:
    """Series inside ``box`` (left, top, right, bottom) with grid, tick labels and a legend.

    ``integer_x`` labels only whole x values (generations, evaluations)."""
    left, top, right, bottom = box
    draw.text(((left + right) // 2, top - 16), title, fill=INK, font=font(12), anchor="mm")
    xs = np.concatenate([np.asarray(s.xs, dtype=np.float64) for s in series] + [np.array([v for v, _ in vlines])])
    ys = np.concatenate([np.asarray(s.ys, dtype=np.float64) for s in series] + [np.array([v for v, _ in hlines])])
    x_range, y_range = _limits(xs, False), _limits(ys, log)
    draw.rectangle(box, outline=MUTED)
    if x_range is None or y_range is None:
        draw.text(((left + right) // 2, (top + bottom) // 2), "nothing to plot yet", fill=MUTED, font=font(11),
                  anchor="mm")
        return
    (x0, x1), (y0, y1) = x_range, y_range

    def to_x(x):
        return left + (np.asarray(x, dtype=np.float64) - x0) / (x1 - x0) * (right - left)

    def to_y(y):
        y = np.asarray(y, dtype=np.float64)
        if log:
            with np.errstate(divide="ignore", invalid="ignore"):
                share = (np.log10(y) - math.log10(y0)) / (math.log10(y1) - math.log10(y0))
        else:
            share = (y - y0) / (y1 - y0)
        return bottom - share * (bottom - top)

    for tick in _ticks(y0, y1, log):
        y = float(to_y(tick))
        draw.line([(left, y), (right, y)], fill=GRID)
        draw.text((left - 4, y), f"{tick:.3g}", fill=MUTED, font=font(10), anchor="rm")
    for tick in _ticks(x0, x1, False):
        if float(tick).is_integer() or not integer_x:
            draw.text((float(to_x(tick)), bottom + 4), f"{tick:g}", fill=MUTED, font=font(10), anchor="ma")
    if xlabel:
        draw.text(((left + right) // 2, bottom + 18), xlabel, fill=MUTED, font=font(10), anchor="ma")
    for value, line_color in hlines:
        y = float(to_y(value))
        _dashed(draw, [(left, y), (right, y)], line_color)
    for value, line_color in vlines:
        x = float(to_x(value))
        _dashed(draw, [(x, top), (x, bottom)], line_color)
    for s in series:
        px, py = to_x(s.xs), to_y(s.ys)
        keep = np.isfinite(px) & np.isfinite(py)
        points = list(zip(px[keep].tolist(), py[keep].tolist()))
        if s.dots or len(points) == 1:
            for x, y in points:
                draw.ellipse([x - 2, y - 2, x + 2, y + 2], fill=s.color)
        elif points:
            draw.line(points, fill=s.color, width=2)
    labelled = [s for s in series if s.label]
    if legend and labelled and len(labelled) <= 10:
        _legend(draw, (right - 6, top + 6), labelled)


def _dashed(draw: ImageDraw.ImageDraw, ends: list[tuple[float, float]], line_color: tuple) -> None:
    (xa, ya), (xb, yb) = ends
    length = max(1.0, math.hypot(xb - xa, yb - ya))
    for start in np.arange(0, length, 10):
        end = min(start + 6, length)
        draw.line([(xa + (xb - xa) * start / length, ya + (yb - ya) * start / length),
                   (xa + (xb - xa) * end / length, ya + (yb - ya) * end / length)], fill=line_color, width=2)


def _legend(draw: ImageDraw.ImageDraw, corner: tuple[int, int], series: Sequence[Series]) -> None:
    width = 26 + max(int(draw.textlength(s.label[:24], font=font(10))) for s in series)
    right, top = corner
    left = right - width
    draw.rectangle([left, top, right, top + 6 + 13 * len(series)], fill=(255, 255, 255), outline=GRID)
    for k, s in enumerate(series):
        y = top + 9 + 13 * k
        draw.line([(left + 4, y), (left + 18, y)], fill=s.color, width=3)
        draw.text((left + 22, y), s.label[:24], fill=INK, font=font(10), anchor="lm")
