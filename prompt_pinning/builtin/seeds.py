"""Seeded starting noise: one generator per image, with variation seeds.

Image i of a batch uses seed ``seed + i`` (and subseed ``subseed + i``), so an
image's noise does not depend on how batches are packed. A nonzero
``subseed_strength`` moves the noise along the great circle from the seed's
noise towards the subseed's noise (spherical interpolation), which keeps
its norm typical of Gaussian noise.
"""
from __future__ import annotations

from typing import Sequence

import torch

PARALLEL_DOT = 0.9995  # nearly parallel vectors: interpolate linearly


def seeded_noise(seed: int, shape: Sequence[int]) -> torch.Tensor:
    """Standard normal noise of ``shape`` from its own generator seeded with ``seed``."""
    generator = torch.Generator().manual_seed(int(seed) % (1 << 64))
    return torch.randn(tuple(shape), generator=generator, dtype=torch.float32)


def slerp(fraction: float, start: torch.Tensor, end: torch.Tensor) -> torch.Tensor:
    """Spherical interpolation from ``start`` (fraction 0) to ``end`` (fraction 1)."""
    a, b = start.double().flatten(), end.double().flatten()
    cos_angle = torch.dot(a / a.norm(), b / b.norm()).clamp(-1.0, 1.0)
    if cos_angle.abs() > PARALLEL_DOT:
        mixed = (1.0 - fraction) * a + fraction * b
    else:
        angle = torch.acos(cos_angle)
        sin_angle = torch.sin(angle)
        mixed = (torch.sin((1.0 - fraction) * angle) * a + torch.sin(fraction * angle) * b) / sin_angle
    return mixed.reshape(start.shape).to(start.dtype)


def batch_noise(seeds: Sequence[int], shape: Sequence[int], subseeds: Sequence[int] | None = None,
                subseed_strength: float = 0.0) -> torch.Tensor:
    """(len(seeds), *shape) unit noise, row i from seeds[i] (varied towards subseeds[i])."""
    if not 0.0 <= subseed_strength <= 1.0:
        raise ValueError(f"subseed_strength must be in [0, 1], got {subseed_strength!r}")
    rows = []
    for i, seed in enumerate(seeds):
        noise = seeded_noise(seed, shape)
        if subseed_strength > 0.0:
            if subseeds is None or len(subseeds) != len(seeds):
                raise ValueError("subseeds must give one subseed per seed when subseed_strength > 0")
            noise = slerp(subseed_strength, noise, seeded_noise(subseeds[i], shape))
        rows.append(noise)
    return torch.stack(rows)
