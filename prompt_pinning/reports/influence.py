"""Influence maps: where in the picture each unit's weight moves the image.

No extra render: within one group (a generation's individuals, which share their
seeds) each pixel's change across individuals is regressed on their weight offsets.
Per group both are centred, so the seeds' own picture drops out; the cross
products are pooled over the run and solved once with a ridge term:

    B = (sum Xc'Xc + ridge I)^-1 sum Xc'Yc,   ridge = RIDGE x mean(diag(sum Xc'Xc))

Y is each image, box-downsampled to at most MAP_SIDE pixels a side, in three
opponent channels (sRGB values in [0, 1]): luminance 0.2126 R + 0.7152 G + 0.0722 B,
red-green R - G and yellow-blue (R + G) / 2 - B (``OPPONENT``, invertible). One map
per unit and image slot (the image's place in its batch, the first MAX_SLOTS):
the change of each channel per unit of weight. With the ``fixed`` seed schedule a
slot is one seed throughout the run, so its map lies on that seed's picture; with
``rotating`` seeds a slot pools different seeds, so the map says where in the frame
the unit acts on average.

Everything here runs in the report process from the PNGs the run already wrote.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np
from PIL import Image

MAP_SIDE = 64
MAX_SLOTS = 8
RIDGE = 0.05
OPPONENT = np.array([[0.2126, 0.7152, 0.0722], [1.0, -1.0, 0.0], [0.5, 0.5, -1.0]], dtype=np.float32)
CHANNELS = ("luminance", "red-green", "yellow-blue")


def map_size(width: int, height: int, side: int = MAP_SIDE) -> tuple[int, int]:
    """(width, height) of the maps: the image box-downsampled to at most ``side`` a side."""
    scale = max(1, -(-max(width, height) // side))
    return max(1, width // scale), max(1, height // scale)


def read_map_image(path: Path, size: Optional[tuple[int, int]] = None) -> np.ndarray:
    """(3, h, w) float32 opponent channels of one PNG, box-downsampled."""
    with Image.open(path, formats=("PNG",)) as image:  # the run's own PNGs
        image = image.convert("RGB")
        size = size or map_size(*image.size)
        if image.size != size:
            image = image.resize(size, Image.Resampling.BOX)
        rgb = np.asarray(image, dtype=np.float32) / 255.0
    return np.einsum("cd,hwd->chw", OPPONENT, rgb)


@dataclass
class Member:
    """One evaluated individual, as the report process sees it: plain data."""

    generation: int
    index: int
    offsets: list[float]
    seeds: list[int]
    folder: str  # its folder, holding its PNGs
    images: list[str]  # file names, in seed order
    loss: float = float("nan")
    individual_id: str = ""


@dataclass
class InfluenceAccumulator:
    """Pooled cross products of weight offsets and image changes over a run."""

    units: int
    size: Optional[tuple[int, int]] = None  # (w, h) of the maps, from the first image read
    xtx: np.ndarray = field(init=False)
    xty: Optional[np.ndarray] = field(default=None, init=False)  # (N, slots, 3, h, w)
    image_sum: Optional[np.ndarray] = field(default=None, init=False)  # (slots, 3, h, w), for the backdrop
    image_count: int = field(default=0, init=False)
    individuals: int = field(default=0, init=False)
    groups: int = field(default=0, init=False)
    seed_sets: set = field(default_factory=set, init=False)
    done: set = field(default_factory=set, init=False)  # generations added

    def __post_init__(self) -> None:
        self.xtx = np.zeros((self.units, self.units), dtype=np.float64)

    def add_generation(self, generation: int, members: Sequence[Member]) -> None:
        """Add one generation's individuals; those sharing seeds form a group."""
        if generation in self.done:
            return
        self.done.add(generation)
        groups: dict[tuple[int, ...], list[Member]] = {}
        for member in members:
            if len(member.offsets) != self.units:
                raise ValueError(f"influence: individual {member.individual_id} has {len(member.offsets)} "
                                 f"offsets, the run has {self.units} units")
            if member.images:
                groups.setdefault(tuple(member.seeds), []).append(member)
        for seeds, group in groups.items():
            if len(group) >= 2:
                self._add_group(seeds, group)

    def _add_group(self, seeds: tuple[int, ...], group: list[Member]) -> None:
        slots = min(MAX_SLOTS, len(seeds), *(len(m.images) for m in group))
        x = np.array([m.offsets for m in group], dtype=np.float64)
        y = np.stack([np.stack([read_map_image(Path(m.folder) / m.images[k], self.size) for k in range(slots)])
                      for m in group])  # (n, slots, 3, h, w)
        if self.xty is None:
            self.size = (y.shape[-1], y.shape[-2])
            self.xty = np.zeros((self.units, slots, *y.shape[2:]), dtype=np.float32)
            self.image_sum = np.zeros(y.shape[1:], dtype=np.float64)
        slots = min(slots, self.xty.shape[1])
        xc = x - x.mean(axis=0)
        yc = (y[:, :slots] - y[:, :slots].mean(axis=0)).reshape(len(group), -1)
        self.xtx += xc.T @ xc
        self.xty[:, :slots] += (xc.T.astype(np.float32) @ yc).reshape(self.units, slots, *y.shape[2:])
        self.image_sum[:slots] += y[:, :slots].sum(axis=0)
        self.image_count += len(group)
        self.individuals += len(group)
        self.groups += 1
        self.seed_sets.add(seeds[:slots])

    def solve(self) -> Optional["InfluenceMaps"]:
        """The maps, or None before any group of two or more individuals."""
        if self.xty is None or not self.groups:
            return None
        scale = float(np.mean(np.diag(self.xtx)))
        if not np.isfinite(scale) or scale <= 0:
            return None
        ridge = RIDGE * scale
        flat = self.xty.reshape(self.units, -1).astype(np.float64)
        coefficients = np.linalg.solve(self.xtx + ridge * np.eye(self.units), flat)
        return InfluenceMaps(
            coefficients=coefficients.reshape(self.xty.shape).astype(np.float32),
            mean_images=(self.image_sum / max(1, self.image_count)).astype(np.float32),
            individuals=self.individuals, groups=self.groups, ridge=ridge,
            aligned=len(self.seed_sets) == 1)


@dataclass
class InfluenceMaps:
    coefficients: np.ndarray  # (N, slots, 3, h, w): channel change per unit of weight
    mean_images: np.ndarray  # (slots, 3, h, w): the pooled images, opponent channels
    individuals: int
    groups: int
    ridge: float
    aligned: bool  # every group had the same seeds: slot k is one seed

    def magnitude(self) -> np.ndarray:
        """(N, slots, h, w): length of the change over the three channels."""
        return np.sqrt(np.square(self.coefficients).sum(axis=2))

    def unit_summary(self) -> list[dict[str, Any]]:
        """Per unit: mean strength over pixels and slots, in luminance, colour and both."""
        c = self.coefficients.astype(np.float64)
        luminance = np.abs(c[:, :, 0]).mean(axis=(1, 2, 3))
        colour = np.sqrt(np.square(c[:, :, 1:]).sum(axis=2)).mean(axis=(1, 2, 3))
        both = np.sqrt(np.square(c).sum(axis=2)).mean(axis=(1, 2, 3))
        return [{"strength": float(s), "luminance": float(lum), "colour": float(col)}
                for s, lum, col in zip(both, luminance, colour)]


def rgb_coefficients(maps: InfluenceMaps) -> np.ndarray:
    """(N, slots, 3, h, w) the same maps in sRGB channels (inverting ``OPPONENT``)."""
    inverse = np.linalg.inv(OPPONENT.astype(np.float64))
    return np.einsum("dc,nschw->nsdhw", inverse, maps.coefficients.astype(np.float64))
