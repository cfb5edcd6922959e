"""The fade guard: a loss term that keeps a batch's contrast and colour.

FLIP between images of different seeds falls when whatever varies with the seed
goes away, and the cheapest way there is often to let the subject fade into the
background: less contrast, greyer colours. The guard measures two statistics of
a batch of sRGB images in [0, 1],

    contrast       the standard deviation of luminance (Rec. 709 weights) within
                   an image, averaged over the batch;
    colourfulness  max - min over the colour channels, per pixel, averaged over
                   the pixels and the batch;

and, for each one the batch has lost more of than a tolerance t against its
reference, adds ``weight * (1 - batch / reference - t)`` to the loss. A batch
within t of its reference (or above it) pays nothing; one whose subject has
faded out pays in proportion to what it lost beyond t. With weight 0 the loss
is unchanged.

The reference. Both statistics vary with the seeds far more than the guard must
tell apart (on the built-in model a batch of 8 seeds' mean contrast varies by
up to 36% from one block of seeds to the next), so a batch is compared with the
unmodified prompt's images *of the same seeds* when the run targets the
unmodified prompt: a run journals that prompt's statistics on every block it
scores on (rendering it for the guard where it renders it for nothing else: one
render per generation with rotating seeds, in the run's plan) and the loss reads
them from the run's state. Outside a run, ``SeedReference`` renders that prompt
once per block of seeds the loss meets (``attach_fade_reference``). With
explicit target images, the reference is the targets' statistics.
"""
from __future__ import annotations

from typing import Callable, Optional, Sequence

import numpy as np
import torch

LUMA = (0.2126, 0.7152, 0.0722)
STATS = ("contrast", "colourfulness")
MIN_REFERENCE = 1e-4  # targets flatter than this have nothing to lose: no penalty


def contrast(images: torch.Tensor) -> torch.Tensor:
    """(B,) luminance std within each (B, 3, H, W) image."""
    images = images.clamp(0.0, 1.0)
    weights = torch.tensor(LUMA, dtype=images.dtype, device=images.device).view(1, 3, 1, 1)
    luminance = (images * weights).sum(dim=1)
    return luminance.flatten(1).std(dim=1, unbiased=False)


def colourfulness(images: torch.Tensor) -> torch.Tensor:
    """(B,) mean over pixels of max - min channel of each (B, 3, H, W) image."""
    images = images.clamp(0.0, 1.0)
    return (images.amax(dim=1) - images.amin(dim=1)).flatten(1).mean(dim=1)


def batch_stats(images: torch.Tensor) -> np.ndarray:
    """(2,) float64: the batch's mean contrast and mean colourfulness."""
    with torch.no_grad():
        images = images.detach().float()
        return np.array([float(contrast(images).mean()), float(colourfulness(images).mean())])


def fade_penalty(stats: np.ndarray, reference: np.ndarray, weight: float, tolerance: float = 0.0) -> float:
    """``weight`` times the summed relative shortfall of ``stats`` below ``reference``,
    each less ``tolerance`` (a share: 0.05 lets a batch lose 5% for free)."""
    if weight == 0:
        return 0.0
    stats, reference = np.asarray(stats, dtype=np.float64), np.asarray(reference, dtype=np.float64)
    valid = reference > MIN_REFERENCE
    shortfall = np.zeros_like(reference)
    shortfall[valid] = np.maximum(0.0, 1.0 - stats[valid] / reference[valid] - tolerance)
    return float(weight * shortfall.sum())


def check_weight(weight) -> float:
    if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not np.isfinite(weight) or weight < 0:
        raise ValueError(f"fade_guard: must be a finite number >= 0, got {weight!r}")
    return float(weight)


def check_tolerance(tolerance) -> float:
    if isinstance(tolerance, bool) or not isinstance(tolerance, (int, float)) or not 0 <= tolerance < 1:
        raise ValueError(f"fade_tolerance: must be a number from 0 up to (not including) 1, got {tolerance!r}")
    return float(tolerance)


class SeedReference:
    """The unmodified prompt's statistics on any block of seeds, rendered once per block.

    ``render(seeds)`` returns the unmodified prompt's (B, 3, H, W) images on those
    seeds, or None when it cannot render them (then the loss falls back to the
    targets' statistics).
    """

    def __init__(self, render: Callable[[list], Optional[torch.Tensor]]):
        self._render = render
        self._stats: dict[tuple, Optional[np.ndarray]] = {}
        self.renders = 0

    def __call__(self, seeds: Sequence) -> Optional[np.ndarray]:
        """``seeds``: the batch's seeds, or its noise keys (seed, subseed, strength) with variation seeds."""
        key = tuple(tuple(s) if isinstance(s, (list, tuple)) else int(s) for s in seeds)
        if key not in self._stats:
            images = self._render(list(key))
            self.renders += images is not None
            self._stats[key] = None if images is None else batch_stats(images)
        return self._stats[key]


def baseline_reference(renderer, prompt: tuple[str, str], settings) -> SeedReference:
    """A SeedReference that renders ``prompt`` with ``settings`` on a block of consecutive seeds
    of the run's batch size (the only seed lists a run scores)."""
    def render(seeds: list) -> Optional[torch.Tensor]:
        if not all(isinstance(s, int) for s in seeds):  # noise keys of variation seeds: not rendered here
            return None
        if len(seeds) != settings.batch_size or seeds != list(range(seeds[0], seeds[0] + len(seeds))):
            return None
        (batch,) = renderer.render([prompt], settings.with_(seed=seeds[0]))
        return batch.images

    return SeedReference(render)


def attach_fade_reference(loss, config, renderer, vector, settings, targets=None) -> None:
    """For scripts that score as a guarded run does, outside a run (a run reads its journal instead):
    with the guard on and no target images (``targets`` None), a ``baseline_reference`` of the
    unmodified prompt of ``vector`` as the loss's ``seed_reference``."""
    if getattr(config, "fade_guard", 0.0) and targets is None:
        loss.seed_reference = baseline_reference(renderer, vector.render(np.zeros(vector.size)), settings)
