"""The built-in model's scene layouts and their coverage masks.

A layout is one shape (circle, square, triangle, ring, cross, stripes or
diamond) with a centre, a base radius, a rotation and a background shade,
drawn once from a fixed seed. It carries no colours: a picture of layout l
with shape colour f and background colour b (sRGB in [0, 1]) is

    image = f * m_l + b * g_l * (1 - m_l)

where m_l is the shape's anti-aliased coverage in [0, 1] and g_l the
background's vertical shade, 1 + shade * (2 y / H - 1). It is linear in the
colours, which is what makes the denoiser exact (denoiser.py).

A prompt also moves the geometry, continuously (conditioning.py): the radius
is scaled, the centre is pulled towards a side and the shape is morphed
towards the named shapes by blending signed distance functions. That
geometry is a small vector; ``coverage`` draws every layout under it.
Shapes are drawn in resolution-free coordinates, so the same seed gives the
same scenes at every size.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch

LAYOUT_COUNT = 384
LAYOUT_SEED = 20240117

SHAPES = ("circle", "square", "triangle", "ring", "cross", "stripes", "diamond")

# Named colours (sRGB in [0, 1]).
PALETTE = {
    "red": (0.85, 0.10, 0.10),
    "orange": (0.95, 0.55, 0.10),
    "yellow": (0.95, 0.88, 0.15),
    "green": (0.15, 0.65, 0.20),
    "blue": (0.15, 0.30, 0.90),
    "purple": (0.55, 0.20, 0.75),
    "pink": (0.95, 0.55, 0.75),
    "brown": (0.50, 0.30, 0.12),
    "white": (0.95, 0.95, 0.95),
    "grey": (0.50, 0.50, 0.50),
    "black": (0.07, 0.07, 0.07),
}

RADIUS_RANGE = (0.14, 0.30)  # base shape radius as a fraction of min(width, height)
MEDIUM_RADIUS = 0.22
SIDE_TARGETS = {"left": 0.25, "right": 0.75, "top": 0.25, "bottom": 0.75, "center": 0.5}
SHADE_RANGE = 0.1
STRIPE_PERIOD = 0.5  # stripes' period as a share of the radius
# A square turned by 45 degrees is a diamond: these two stand upright, tilted
# by at most MAX_TILT radians (the layout's rotation scaled down).
UPRIGHT_SHAPES = ("square", "diamond")
MAX_TILT = 0.25

# The geometry vector: how a prompt moves every layout.
LOG_SCALE, MEDIUM_PULL, TARGET_X, TARGET_Y, PULL_X, PULL_Y, OWN_SHAPE = range(7)
SHAPE_MIX = slice(7, 7 + len(SHAPES))  # weight of each named shape's distance
GEOMETRY_SIZE = 7 + len(SHAPES)


def neutral_geometry() -> torch.Tensor:
    """The geometry of a prompt without geometry words: every layout as drawn."""
    geometry = torch.zeros(GEOMETRY_SIZE, dtype=torch.float64)
    geometry[TARGET_X] = geometry[TARGET_Y] = 0.5
    geometry[OWN_SHAPE] = 1.0
    return geometry


@dataclass(frozen=True)
class Layouts:
    """Every layout's parameters, one entry each (float64 tensors, shape a long tensor)."""

    shape: torch.Tensor  # index into SHAPES
    centre_x: torch.Tensor  # fraction of width
    centre_y: torch.Tensor  # fraction of height
    radius: torch.Tensor  # fraction of min(width, height)
    rotation: torch.Tensor  # radians
    shade: torch.Tensor  # background gradient strength

    def __len__(self) -> int:
        return int(self.shape.shape[0])


@lru_cache(maxsize=2)
def draw_layouts(count: int = LAYOUT_COUNT, seed: int = LAYOUT_SEED) -> Layouts:
    """The model's layouts; they depend only on count and seed."""
    rng = np.random.default_rng(seed)
    radius = rng.uniform(*RADIUS_RANGE, count)
    margin = 0.9 * radius
    return Layouts(
        shape=torch.arange(count) % len(SHAPES),  # balanced shape kinds
        centre_x=torch.from_numpy(rng.uniform(margin, 1.0 - margin)),
        centre_y=torch.from_numpy(rng.uniform(margin, 1.0 - margin)),
        radius=torch.from_numpy(radius),
        rotation=torch.from_numpy(rng.uniform(0.0, 2.0 * np.pi, count)),
        shade=torch.from_numpy(rng.uniform(-SHADE_RANGE, SHADE_RANGE, count)),
    )


def _box(qx: torch.Tensor, qy: torch.Tensor, half_w, half_h) -> torch.Tensor:
    """Signed distance (exact inside, close enough outside for antialiasing)."""
    return torch.maximum(qx.abs() - half_w, qy.abs() - half_h)


def shape_distance(shape: str, qx: torch.Tensor, qy: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
    """Signed distance to a shape of radius r centred at the origin (negative inside)."""
    if shape == "circle":
        return torch.hypot(qx, qy) - r
    if shape == "ring":
        return (torch.hypot(qx, qy) - 0.7 * r).abs() - 0.3 * r
    if shape == "square":
        return _box(qx, qy, 0.8 * r, 0.8 * r)
    if shape == "stripes":
        period = STRIPE_PERIOD * r
        phase = torch.remainder(qx / period, 1.0)
        band = ((phase - 0.5).abs() - 0.25) * period  # negative on every other half period
        return torch.maximum(_box(qx, qy, 0.85 * r, 0.85 * r), band)
    if shape == "diamond":
        return (qx.abs() + qy.abs()) / math.sqrt(2.0) - 0.75 * r
    if shape == "cross":
        return torch.minimum(_box(qx, qy, r, 0.32 * r), _box(qx, qy, 0.32 * r, r))
    if shape == "triangle":
        planes = [qx * math.cos(a) + qy * math.sin(a) for a in (math.pi / 2 + k * 2 * math.pi / 3 for k in range(3))]
        return torch.maximum(torch.maximum(planes[0], planes[1]), planes[2]) - 0.55 * r
    raise ValueError(f"shape must be one of {', '.join(SHAPES)}; got {shape!r}")


def tilt(rotation: torch.Tensor) -> torch.Tensor:
    """An upright shape's rotation: the layout's rotation in [0, 2 pi) scaled into [-MAX_TILT, MAX_TILT]."""
    return (rotation / math.pi - 1.0) * MAX_TILT


def _rotated(dx: torch.Tensor, dy: torch.Tensor, angle: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    cos_r, sin_r = angle.cos(), angle.sin()
    return (cos_r * dx + sin_r * dy).float(), (-sin_r * dx + cos_r * dy).float()


def placed(layouts: Layouts, geometry: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(centre_x, centre_y, radius) of every layout under a geometry vector."""
    g = geometry.double()
    log_r = layouts.radius.log()
    log_r = log_r + g[MEDIUM_PULL] * (math.log(MEDIUM_RADIUS) - log_r) + g[LOG_SCALE]
    cx = layouts.centre_x + g[PULL_X] * (g[TARGET_X] - layouts.centre_x)
    cy = layouts.centre_y + g[PULL_Y] * (g[TARGET_Y] - layouts.centre_y)
    return cx, cy, log_r.exp()


def coverage(layouts: Layouts, geometry: torch.Tensor, width: int, height: int,
             grid_w: int, grid_h: int, select: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Coverage m (L, grid_h, grid_w) and background shade g (L, grid_h, grid_w), float32.

    The image is width x height pixels, sampled at the centres of a grid_w x
    grid_h grid; edges are antialiased over one grid cell. ``select`` picks
    some layouts (all by default).
    """
    index = torch.arange(len(layouts)) if select is None else select
    cx, cy, radius = (t[index] for t in placed(layouts, geometry))
    unit = float(min(width, height))
    cell = max(width / grid_w, height / grid_h) / unit  # grid cell size in shape units
    xs = (torch.arange(grid_w, dtype=torch.float64) + 0.5) * (width / grid_w)
    ys = (torch.arange(grid_h, dtype=torch.float64) + 0.5) * (height / grid_h)
    dx = (xs[None, None, :] - cx[:, None, None] * width) / unit
    dy = (ys[None, :, None] - cy[:, None, None] * height) / unit
    rotation = layouts.rotation[index][:, None, None]
    turned = {False: _rotated(dx, dy, rotation), True: _rotated(dx, dy, tilt(rotation))}
    r = radius.float()[:, None, None]
    g = geometry.double()
    own = layouts.shape[index]
    distance = torch.zeros_like(turned[False][0])
    if float(g[OWN_SHAPE]) > 0.0:
        for k, name in enumerate(SHAPES):
            rows = (own == k).nonzero().flatten()
            if len(rows):
                qx, qy = turned[name in UPRIGHT_SHAPES]
                distance[rows] = float(g[OWN_SHAPE]) * shape_distance(name, qx[rows], qy[rows], r[rows])
    for k, name in enumerate(SHAPES):
        share = float(g[SHAPE_MIX][k])
        if share > 0.0:
            distance = distance + share * shape_distance(name, *turned[name in UPRIGHT_SHAPES], r)
    mask = (0.5 - distance / cell).clamp(0.0, 1.0)
    shade = layouts.shade[index].float()[:, None, None]
    gradient = 1.0 + shade * (2.0 * (ys.float() / height)[None, :, None] - 1.0)
    return mask, gradient.expand_as(mask)
