"""The built-in model's data: a procedural set of tagged shape images.

Every image is one shape (circle, square, triangle, ring, cross, stripes or
diamond) in one colour on a coloured background. Its colour, size, position,
rotation and background shade are drawn from continuous ranges; the word
tags ("red", "circle", "large", "left", "blue background", ...) name the
nearest category of each parameter.

Shapes are drawn from signed distance functions in resolution-free
coordinates, so a set can be made at any width and height: the same seed
gives the same scenes at every size. Sets are cached per size. A 64x64 set
takes a few tens of milliseconds; a 512x512 set takes a few seconds and
about 1 GB of memory.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch

IMAGE_COUNT = 384
SET_SEED = 20240117

SHAPES = ("circle", "square", "triangle", "ring", "cross", "stripes", "diamond")

# Named colours (sRGB in [0, 1]); each image's colour is jittered around one.
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
COLOUR_JITTER = 0.06

SIZE_RANGE = (0.10, 0.40)  # shape radius as a fraction of min(width, height)
SMALL_BELOW, LARGE_ABOVE = 0.18, 0.30
SIDE_BELOW, SIDE_ABOVE = 0.40, 0.60  # left/right and top/bottom thresholds


@dataclass(frozen=True)
class ImageSet:
    """Images (N, 3, H, W) float32 sRGB in [0, 1] with their word tags."""

    images: torch.Tensor
    tags: tuple[frozenset, ...]
    tag_names: tuple[str, ...]  # every tag used, sorted
    tag_matrix: torch.Tensor  # (N, T) float32, 1 where image n has tag t

    def tag_index(self) -> dict[str, int]:
        return {name: i for i, name in enumerate(self.tag_names)}


@dataclass(frozen=True)
class Scene:
    """Continuous parameters of one image (coordinates are fractions)."""

    shape: str
    colour_name: str
    colour: tuple[float, float, float]
    background_name: str
    background: tuple[float, float, float]
    radius: float  # fraction of min(width, height)
    centre_x: float  # fraction of width
    centre_y: float  # fraction of height
    rotation: float  # radians
    shade: float  # background vertical gradient strength in [-0.1, 0.1]

    def tags(self) -> frozenset:
        found = {self.shape, self.colour_name, f"{self.background_name} background", size_tag(self.radius)}
        found.update(position_tags(self.centre_x, self.centre_y))
        return frozenset(found)


def size_tag(radius: float) -> str:
    if radius < SMALL_BELOW:
        return "small"
    return "large" if radius > LARGE_ABOVE else "medium"


def position_tags(x: float, y: float) -> set[str]:
    found = set()
    if x < SIDE_BELOW:
        found.add("left")
    elif x > SIDE_ABOVE:
        found.add("right")
    if y < SIDE_BELOW:
        found.add("top")
    elif y > SIDE_ABOVE:
        found.add("bottom")
    if not found:
        found.add("center")
    return found


def _jittered(rng: np.random.Generator, name: str) -> tuple[float, float, float]:
    base = np.asarray(PALETTE[name])
    return tuple(float(v) for v in np.clip(base + rng.normal(0.0, COLOUR_JITTER, 3), 0.0, 1.0))


def draw_scenes(count: int = IMAGE_COUNT, seed: int = SET_SEED) -> list[Scene]:
    """The set's scene parameters; depends only on count and seed."""
    rng = np.random.default_rng(seed)
    names = list(PALETTE)
    scenes = []
    for i in range(count):
        shape = SHAPES[i % len(SHAPES)]  # balanced shape kinds
        colour_name = names[rng.integers(len(names))]
        background_name = names[rng.integers(len(names))]
        while background_name == colour_name:
            background_name = names[rng.integers(len(names))]
        radius = float(rng.uniform(*SIZE_RANGE))
        margin = radius * 0.9
        scenes.append(
            Scene(
                shape=shape,
                colour_name=colour_name,
                colour=_jittered(rng, colour_name),
                background_name=background_name,
                background=_jittered(rng, background_name),
                radius=radius,
                centre_x=float(rng.uniform(margin, 1.0 - margin)),
                centre_y=float(rng.uniform(margin, 1.0 - margin)),
                rotation=float(rng.uniform(0.0, 2.0 * np.pi)),
                shade=float(rng.uniform(-0.1, 0.1)),
            )
        )
    return scenes


def _box(qx: np.ndarray, qy: np.ndarray, half_w: float, half_h: float) -> np.ndarray:
    """Signed distance (exact inside, close enough outside for antialiasing)."""
    return np.maximum(np.abs(qx) - half_w, np.abs(qy) - half_h)


def shape_distance(shape: str, qx: np.ndarray, qy: np.ndarray, r: float) -> np.ndarray:
    """Signed distance to a shape of radius r centred at the origin (negative inside)."""
    if shape == "circle":
        return np.hypot(qx, qy) - r
    if shape == "ring":
        return np.abs(np.hypot(qx, qy) - 0.72 * r) - 0.28 * r
    if shape in ("square", "stripes"):
        return _box(qx, qy, 0.8 * r, 0.8 * r)
    if shape == "diamond":
        return (np.abs(qx) + np.abs(qy)) / np.sqrt(2.0) - 0.7 * r
    if shape == "cross":
        return np.minimum(_box(qx, qy, r, 0.3 * r), _box(qx, qy, 0.3 * r, r))
    if shape == "triangle":
        angles = np.pi / 2 + np.arange(3) * 2 * np.pi / 3
        planes = [qx * np.cos(a) + qy * np.sin(a) for a in angles]
        return np.maximum.reduce(planes) - 0.5 * r
    raise ValueError(f"shape must be one of {', '.join(SHAPES)}; got {shape!r}")


def draw_scene(scene: Scene, width: int, height: int) -> np.ndarray:
    """Render one scene to a (3, H, W) float32 array in [0, 1]."""
    unit = float(min(width, height))  # pixels per shape-size unit
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32) + 0.5
    dx = (xs - scene.centre_x * width) / unit
    dy = (ys - scene.centre_y * height) / unit
    cos_r, sin_r = np.cos(scene.rotation), np.sin(scene.rotation)
    qx, qy = cos_r * dx + sin_r * dy, -sin_r * dx + cos_r * dy
    distance_px = shape_distance(scene.shape, qx, qy, scene.radius) * unit
    coverage = np.clip(0.5 - distance_px, 0.0, 1.0)
    if scene.shape == "stripes":
        period = max(0.3 * scene.radius * unit, 4.0)  # pixels; never finer than 4
        coverage = coverage * np.clip(0.5 + 2.0 * np.sin(2 * np.pi * qx * unit / period), 0.0, 1.0)
    gradient = 1.0 + scene.shade * (2.0 * ys / height - 1.0)
    background = np.asarray(scene.background, np.float32)[:, None, None] * gradient
    colour = np.asarray(scene.colour, np.float32)[:, None, None]
    image = background + coverage * (colour - background)
    return np.clip(image, 0.0, 1.0).astype(np.float32)


def _check_size(name: str, value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 8:
        raise ValueError(f"{name} must be a whole number of pixels >= 8, got {value!r}")


def image_set(width: int = 64, height: int = 64) -> ImageSet:
    """The built-in image set at this size (built once per size, then cached)."""
    _check_size("width", width)
    _check_size("height", height)
    return _cached_image_set(width, height)


@lru_cache(maxsize=4)
def _cached_image_set(width: int, height: int) -> ImageSet:
    scenes = draw_scenes()
    pixels = np.stack([draw_scene(s, width, height) for s in scenes])
    tags = tuple(s.tags() for s in scenes)
    tag_names = tuple(sorted(set().union(*tags)))
    column = {name: j for j, name in enumerate(tag_names)}
    matrix = np.zeros((len(scenes), len(tag_names)), np.float32)
    for i, image_tags in enumerate(tags):
        matrix[i, [column[t] for t in image_tags]] = 1.0
    return ImageSet(torch.from_numpy(pixels), tags, tag_names, torch.from_numpy(matrix))
