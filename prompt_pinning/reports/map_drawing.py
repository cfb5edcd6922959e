"""Pillow drawings of the maps: a grid of influence heat maps and a scatter of the explored weights.

Pillow, not matplotlib: these are drawn for every run, also where matplotlib is missing.
"""
from __future__ import annotations

from typing import Optional, Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from .influence import OPPONENT

# A dark-to-bright ramp (black, purple, orange, pale yellow): strength of an influence map.
HEAT_STOPS = np.array([[0, 0, 4], [87, 16, 110], [188, 55, 84], [249, 142, 9], [252, 255, 164]], dtype=np.float64)
# viridis: low (good) is dark purple, high is yellow.
LOSS_STOPS = np.array([[68, 1, 84], [59, 82, 139], [33, 145, 140], [94, 201, 98], [253, 231, 37]], dtype=np.float64)
CELL = 96
LABEL_WIDTH = 190
HEAD = 58  # title, note and the colour bar
BAR_WIDTH = 240


def ramp(values: np.ndarray, stops: np.ndarray) -> np.ndarray:
    """Values in [0, 1] to uint8 RGB along ``stops``."""
    v = np.clip(np.nan_to_num(values, nan=0.0), 0.0, 1.0) * (len(stops) - 1)
    low = np.minimum(v.astype(int), len(stops) - 2)
    t = (v - low)[..., None]
    return (stops[low] * (1 - t) + stops[low + 1] * t + 0.5).astype(np.uint8)


def opponent_to_rgb(image: np.ndarray) -> np.ndarray:
    """(3, h, w) opponent channels to (h, w, 3) uint8 sRGB."""
    rgb = np.einsum("dc,chw->hwd", np.linalg.inv(OPPONENT.astype(np.float64)), image.astype(np.float64))
    return (np.clip(rgb, 0, 1) * 255 + 0.5).astype(np.uint8)


def heat_cell(strength: np.ndarray, backdrop: Optional[np.ndarray], scale: float) -> Image.Image:
    """One heat map over a dimmed grey copy of ``backdrop`` ((h, w, 3) uint8)."""
    share = strength / scale if scale > 0 else np.zeros_like(strength)
    heat = ramp(share, HEAT_STOPS).astype(np.float64)
    alpha = np.clip(share, 0.0, 1.0)[..., None] * 0.85
    if backdrop is not None:
        grey = backdrop.astype(np.float64).mean(axis=2, keepdims=True) * 0.6
        heat = grey * (1 - alpha) + heat * alpha
    cell = Image.fromarray(heat.astype(np.uint8), "RGB")
    return cell.resize((CELL, max(1, round(CELL * strength.shape[0] / strength.shape[1]))), Image.Resampling.NEAREST)


def influence_grid(strength: np.ndarray, labels: Sequence[str], notes: Sequence[str],
                   backdrops: Sequence[Optional[np.ndarray]], title: str) -> Image.Image:
    """Rows: units; columns: image slots. ``strength`` is (N, slots, h, w); one scale for all."""
    units, slots = strength.shape[:2]
    scale = float(np.percentile(strength, 99.5)) if strength.size else 0.0
    first = heat_cell(strength[0, 0], None, scale) if units and slots else Image.new("RGB", (CELL, CELL))
    font = ImageFont.load_default()
    labels = [label if len(label) <= 30 else label[:29] + "\u2026" for label in labels]  # a long phrase
    # the text column fits each unit's label and note, whole
    left = max([LABEL_WIDTH] + [int(font.getlength(text)) + 16 for text in (*labels[:units], *notes[:units])])
    width, height = left + slots * (first.width + 4) + 8, HEAD + units * (first.height + 4) + 8
    note = "one colour scale for all units (per unit of weight; the top 0.5% clipped):"
    width = max(width, int(max(font.getlength(title), font.getlength(note))) + 16)  # text is never cut
    canvas = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(canvas)
    draw.text((8, 6), title, fill="black", font=font)
    draw.text((8, 18), note, fill=(90, 90, 90), font=font)
    bar = ramp(np.linspace(0.0, 1.0, BAR_WIDTH)[None, :].repeat(10, axis=0), HEAT_STOPS)
    canvas.paste(Image.fromarray(bar, "RGB"), (30, 34))
    draw.rectangle((29, 33, 30 + BAR_WIDTH, 44), outline=(120, 120, 120))
    draw.text((8, 34), "0", fill="black", font=font)
    draw.text((36 + BAR_WIDTH, 34), f"{scale:.3g}", fill="black", font=font)
    for u in range(units):
        top = HEAD + u * (first.height + 4)
        draw.text((8, top + 4), labels[u], fill="black", font=font)
        draw.text((8, top + 18), notes[u], fill=(90, 90, 90), font=font)
        for k in range(slots):
            backdrop = backdrops[k] if k < len(backdrops) else None
            canvas.paste(heat_cell(strength[u, k], backdrop, scale), (left + k * (first.width + 4), top))
    return canvas


# Ring colours of clusters 1, 2, ... (repeating): distinct from the viridis fill and each other.
RING_COLOURS = [(214, 39, 40), (31, 119, 180), (255, 127, 14), (148, 103, 189), (140, 86, 75),
                (227, 119, 194), (23, 190, 207), (188, 189, 34)]


def ring_colour(cluster: int) -> tuple[int, int, int]:
    return RING_COLOURS[cluster % len(RING_COLOURS)]


def scatter_map(xy: np.ndarray, places: np.ndarray, clusters: np.ndarray, marks: Sequence[tuple[int, int]],
                title: str, note: str, side: int = 640) -> Image.Image:
    """Points coloured by their place in their own generation (``places``, 0 best .. 1 worst, on the
    viridis ramp: dark purple best), each cluster's members ringed in its own colour, each
    cluster's best-placed member numbered."""
    canvas = Image.new("RGB", (side + 120, side + 60), "white")
    draw = ImageDraw.Draw(canvas)
    font = ImageFont.load_default()
    draw.text((8, 6), title, fill="black", font=font)
    draw.text((8, 20), note, fill=(90, 90, 90), font=font)
    if len(xy):
        low, high = xy.min(axis=0), xy.max(axis=0)
        span = np.where(high > low, high - low, 1.0)
        pix = (xy - low) / span * (side - 40) + [20, 40]
        colours = ramp(places, LOSS_STOPS)
        order = np.argsort(-np.nan_to_num(places, nan=np.inf), kind="stable")  # best placed drawn last, on top
        for j in order:
            x, y = pix[j]
            if clusters[j] >= 0:
                draw.ellipse((x - 6, y - 6, x + 6, y + 6), outline=ring_colour(int(clusters[j])), width=2)
            draw.ellipse((x - 3, y - 3, x + 3, y + 3), fill=tuple(int(c) for c in colours[j]))
        for number, j in marks:
            x, y = pix[j]
            draw.rectangle((x + 7, y - 6, x + 21, y + 6), fill="white", outline=ring_colour(number - 1), width=2)
            draw.text((x + 10, y - 5), str(number), fill="black", font=font)
        for step in range(side - 40):  # the colour key
            share = step / (side - 41)
            colour = tuple(int(c) for c in ramp(np.array(share), LOSS_STOPS))
            draw.line((side + 20, 40 + step, side + 34, 40 + step), fill=colour)
        draw.text((side + 38, 36), "0 best", fill="black", font=font)
        draw.text((side + 38, side - 10), "1 worst", fill="black", font=font)
        draw.text((side + 4, side + 6), "place in its", fill="black", font=font)
        draw.text((side + 4, side + 18), "generation", fill="black", font=font)
    return canvas
