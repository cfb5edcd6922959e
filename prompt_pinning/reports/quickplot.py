"""Small charts drawn straight with Pillow, for the per-individual loss plot.

One is written for every individual, so it must cost milliseconds, not the tenth
of a second a matplotlib figure takes.
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np
from PIL import Image, ImageDraw, ImageFont

INK = (29, 35, 48)
MUTED = (102, 112, 133)
GRID = (227, 230, 235)
BARS = (59, 111, 182)
CURVE = (46, 139, 87)
MEAN = (217, 130, 43)


def finite(values) -> np.ndarray:
    """The finite entries of ``values`` as a flat float64 array."""
    array = np.asarray(values, dtype=np.float64).ravel()
    return array[np.isfinite(array)]


@lru_cache(maxsize=4)
def font(size: int) -> ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow without FreeType sizes
        return ImageFont.load_default()


def _frame(draw: ImageDraw.ImageDraw, box: tuple[int, int, int, int], title: str, low: str, high: str,
           x_low: str, x_high: str) -> None:
    left, top, right, bottom = box
    draw.text(((left + right) // 2, top - 18), title, fill=INK, font=font(12), anchor="mm")
    for k in range(5):
        y = top + (bottom - top) * k / 4
        draw.line([(left, y), (right, y)], fill=GRID)
    draw.rectangle(box, outline=MUTED)
    draw.text((left - 4, top), high, fill=MUTED, font=font(10), anchor="ra")
    draw.text((left - 4, bottom), low, fill=MUTED, font=font(10), anchor="rd")
    draw.text((left, bottom + 4), x_low, fill=MUTED, font=font(10), anchor="la")
    draw.text((right, bottom + 4), x_high, fill=MUTED, font=font(10), anchor="ra")


def histogram_panel(draw: ImageDraw.ImageDraw, box, values: np.ndarray, title: str, color=BARS) -> None:
    """Histogram of ``values`` inside ``box`` (left, top, right, bottom), mean as a dashed line."""
    if values.size == 0:
        _empty(draw, box, title)
        return
    low, span = _range(values)
    bins = min(24, max(5, int(np.sqrt(values.size)) + 1))
    counts, _ = np.histogram(values, bins=bins, range=(low, low + span))
    tallest = max(1, int(counts.max()))
    _frame(draw, box, title, "0", str(tallest), f"{low:.3g}", f"{low + span:.3g}")
    left, top, right, bottom = box
    bar_width = (right - left) / bins
    for k, count in enumerate(counts):
        if count:
            x0 = left + k * bar_width + 1
            draw.rectangle([x0, bottom - (bottom - top) * count / tallest, x0 + bar_width - 2, bottom], fill=color)
    mean_x = left + (float(values.mean()) - low) / span * (right - left)
    for y in range(top, bottom, 8):
        draw.line([(mean_x, y), (mean_x, min(y + 4, bottom))], fill=MEAN, width=2)


def sorted_panel(draw: ImageDraw.ImageDraw, box, values: np.ndarray, title: str, color=CURVE) -> None:
    """``values`` in increasing order: the distribution as a curve."""
    if values.size == 0:
        _empty(draw, box, title)
        return
    low, span = _range(values)
    _frame(draw, box, title, f"{low:.3g}", f"{low + span:.3g}", "1", str(values.size))
    left, top, right, bottom = box
    ordered = np.sort(values)
    xs = left + np.arange(ordered.size) * (right - left) / max(1, ordered.size - 1)
    ys = bottom - (ordered - low) / span * (bottom - top)
    points = list(zip(xs.tolist(), ys.tolist()))
    if len(points) > 1:
        draw.line(points, fill=color, width=2)
    for x, y in points if len(points) <= 200 else ():
        draw.ellipse([x - 2, y - 2, x + 2, y + 2], fill=color)


def _range(values: np.ndarray) -> tuple[float, float]:
    low, high = float(values.min()), float(values.max())
    return low, (high - low) or max(abs(high), 1e-12)


def _empty(draw: ImageDraw.ImageDraw, box, title: str) -> None:
    left, top, right, bottom = box
    draw.text(((left + right) // 2, top - 18), title, fill=INK, font=font(12), anchor="mm")
    draw.rectangle(box, outline=GRID)
    draw.text(((left + right) // 2, (top + bottom) // 2), "no finite values", fill=MUTED, font=font(12), anchor="mm")


def loss_plot(values: np.ndarray, title: str, width: int = 560, height: int = 224) -> Image.Image:
    """Histogram (left) and sorted values (right) of finite ``values``."""
    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)
    draw.text((width // 2, 4), title, fill=INK, font=font(12), anchor="ma")
    half = width // 2
    histogram_panel(draw, (48, 48, half - 16, height - 28), values, "pair losses")
    sorted_panel(draw, (half + 48, 48, width - 16, height - 28), values, "sorted pair losses")
    return image


def four_panels(title: str, panels, width: int = 640, height: int = 448) -> Image.Image:
    """A 2x2 grid; ``panels`` holds (kind, values, title, colour) with kind "hist" or "sorted"."""
    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)
    draw.text((width // 2, 4), title, fill=INK, font=font(13), anchor="ma")
    cell_w, cell_h = width // 2, (height - 24) // 2
    for k, (kind, values, panel_title, color) in enumerate(panels):
        x, y = (k % 2) * cell_w, 24 + (k // 2) * cell_h
        box = (x + 52, y + 30, x + cell_w - 16, y + cell_h - 26)
        draw_panel = histogram_panel if kind == "hist" else sorted_panel
        draw_panel(draw, box, values, panel_title, color)
    return image
