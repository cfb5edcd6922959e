"""Noise samplers for the stochastic (SDE) samplers.

A noise sampler is called as ``noise_sampler(sigma, sigma_next)`` and returns
unit-variance noise shaped like the full batch.
"""
from __future__ import annotations

from typing import Optional, Sequence

import torch

DEFAULT_TOL = 1e-6  # torchsde's own default resolution


class BrownianNoise:
    """Brownian-motion noise with one torchsde BrownianTree per row.

    Row i's noise depends only on ``seeds[i]``, so an image keeps its noise
    whatever batch it is rendered in. Increments over the same sigma interval
    are always the same, which makes the SDE samplers step-size consistent.
    ``tol`` is the trees' time resolution (in sigma units; torchsde's default
    1e-6): a coarser one answers each query with fewer bisections, so it is
    faster, and stays accurate while it is far below the shortest interval.
    torchsde rounds times to the decimal place of ``tol`` (to under 10 tol),
    so a power of ten is the natural choice.
    """

    def __init__(self, x: torch.Tensor, sigma_min, sigma_max, seeds: Optional[Sequence[int]] = None,
                 tol: float = DEFAULT_TOL):
        import torchsde  # imported lazily: only the SDE samplers need it

        if seeds is None:
            seeds = torch.randint(0, 2**62, (x.shape[0],)).tolist()
        seeds = [int(s) for s in seeds]
        if len(seeds) != x.shape[0]:
            raise ValueError(f"seeds must have one entry per row of x ({x.shape[0]}), got {len(seeds)}")
        self.t_low = float(sigma_min)
        self.t_high = float(sigma_max)
        if not self.t_low < self.t_high:
            raise ValueError(f"need sigma_min < sigma_max, got {sigma_min!r}, {sigma_max!r}")
        if not 0 < tol < self.t_high - self.t_low:
            raise ValueError(f"tol must be > 0 and below sigma_max - sigma_min, got {tol!r}")
        start = torch.zeros_like(x[0])
        # A margin keeps float32 round-off and torchsde's rounding of times at
        # the ends inside the tree's range.
        margin = max(1e-4 * (self.t_high - self.t_low), 10.0 * tol)
        self.trees = [
            torchsde.BrownianTree(self.t_low - margin, start, self.t_high + margin, entropy=seed, tol=tol)
            for seed in seeds
        ]

    def __call__(self, sigma, sigma_next) -> torch.Tensor:
        a, b = sorted((float(sigma), float(sigma_next)))
        low, high = a, b
        if not low < high:
            raise ValueError(f"noise interval ({a}, {b}) is empty")
        increments = torch.stack([tree(low, high) for tree in self.trees])
        return increments / (high - low) ** 0.5


def default_brownian_noise(x: torch.Tensor, sigmas: torch.Tensor) -> BrownianNoise:
    """A BrownianNoise over the positive range of ``sigmas``, seeded from torch's RNG."""
    positive = sigmas[sigmas > 0]
    return BrownianNoise(x, positive.min(), positive.max())
