"""The fade guard: a loss term that keeps the subject of a batch.

FLIP between images of different seeds falls when whatever varies with the seed
goes away, and the cheapest way there is often to let the subject fade into the
background. The guard charges a batch for what it has lost against the
unmodified prompt's images *of the same seeds*, in one of four forms
(``fade_guard_form``), each measured per seed on the pixels where the
unmodified prompt's subject stands except the last:

    relative  (default) the loss divided by the share of its subject the batch
              still carries (``subject.content_kept``: separation from the
              background and colourfulness kept, each within the tolerance t,
              multiplied): the term is ``loss * (kept ** (-weight / 2) - 1)``,
              so at weight 2 the loss is divided by ``kept`` and emptying the
              picture earns nothing.
    subject   ``weight`` times the mean per-image shortfall of separation and
              of colourfulness beyond t: mean_i max(0, 1 - kept_i - t). A
              deeper background cannot pay for a faded subject.
    windows   per seed and per cell of a 4 x 4 grid: each cell's luminance
              standard deviation and colourfulness against the same cell.
    batch     the first form: contrast (the standard deviation of luminance,
              Rec. 709 weights, within an image) and colourfulness (max - min
              over the colour channels) averaged over the whole batch, charged
              ``weight * (1 - batch / reference - t)`` each.

With weight 0 the loss is unchanged. Every statistic is weighted by the target
mask when there is one: pixels the loss ignores are not guarded either.

The reference. The statistics vary with the seeds far more than the guard must
tell apart (on the built-in model a batch of 8 seeds' mean contrast varies by
up to 36% from one block of seeds to the next), so a batch is compared with the
unmodified prompt's images of the same seeds: a run journals that prompt's
``Reference`` on every block it scores on (rendering it for the guard where it
renders it for nothing else: one render per generation with rotating seeds, in
the run's plan) and the loss reads it from the run's state. Outside a run,
``SeedReference`` renders that prompt once per block of seeds the loss meets
(``attach_fade_reference``). A loss built by hand with target images and no
seed reference compares the batch form with the targets' statistics.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional, Sequence

import numpy as np
import torch

from . import subject
from .subject import LUMA
from ..options import FADE_GUARD_FORMS as FORMS

STATS = ("contrast", "colourfulness")
SUBJECT_FORMS = ("subject", "windows", "relative")  # the forms that need each seed's subject
MIN_REFERENCE = 1e-4  # targets flatter than this have nothing to lose: no penalty


def _pixel_weight(images: torch.Tensor, mask: Optional[torch.Tensor]) -> torch.Tensor:
    """(1, H*W) weights summing to 1: the mask's, or uniform."""
    height, width = images.shape[2:]
    if mask is None:
        return torch.full((1, height * width), 1.0 / (height * width), dtype=images.dtype, device=images.device)
    weight = mask.to(images.device, images.dtype).reshape(1, -1)
    total = weight.sum()
    return weight / total if total > 0 else torch.full_like(weight, 1.0 / weight.numel())


def contrast(images: torch.Tensor, mask: Optional[torch.Tensor] = None) -> torch.Tensor:
    """(B,) luminance std within each (B, 3, H, W) image (over the mask's pixels, weighted)."""
    images = images.clamp(0.0, 1.0)
    weights = torch.tensor(LUMA, dtype=images.dtype, device=images.device).view(1, 3, 1, 1)
    luminance = (images * weights).sum(dim=1).flatten(1)
    if mask is None:
        return luminance.std(dim=1, unbiased=False)
    w = _pixel_weight(images, mask)
    mean = (luminance * w).sum(dim=1, keepdim=True)
    return (((luminance - mean) ** 2) * w).sum(dim=1).clamp_min(0).sqrt()


def colourfulness(images: torch.Tensor, mask: Optional[torch.Tensor] = None) -> torch.Tensor:
    """(B,) mean over pixels (the mask's, weighted) of max - min channel of each (B, 3, H, W) image."""
    images = images.clamp(0.0, 1.0)
    spread = (images.amax(dim=1) - images.amin(dim=1)).flatten(1)
    return spread.mean(dim=1) if mask is None else (spread * _pixel_weight(images, mask)).sum(dim=1)


def batch_stats(images: torch.Tensor, mask: Optional[torch.Tensor] = None) -> np.ndarray:
    """(2,) float64: the batch's mean contrast and mean colourfulness (within ``mask``)."""
    with torch.no_grad():
        images = images.detach().float()
        return np.array([float(contrast(images, mask).mean()), float(colourfulness(images, mask).mean())])


@dataclass(frozen=True)
class Reference:
    """The unmodified prompt on one block of seeds: its batch statistics and, for the forms
    that need it, each seed's subject."""

    stats: np.ndarray  # (2,) batch contrast and colourfulness
    subject: Optional[subject.SubjectProfile] = None

    @classmethod
    def of(cls, images: torch.Tensor, mask: Optional[torch.Tensor] = None, form: str = "relative") -> "Reference":
        return cls(batch_stats(images, mask), subject.profile(images, mask) if form in SUBJECT_FORMS else None)


def penalty(form: str, images: torch.Tensor, reference: Reference, weight: float, tolerance: float,
            loss: float, mask: Optional[torch.Tensor] = None) -> float:
    """The guard's term for a batch scored ``loss`` by FLIP (see the module docstring)."""
    if weight == 0:
        return 0.0
    profile = reference.subject
    if form == "batch" or profile is None:
        return fade_penalty(batch_stats(images, mask), reference.stats, weight, tolerance)
    if form == "subject":
        return subject.subject_penalty(images, profile, weight, tolerance, mask)
    if form == "windows":
        return subject.window_penalty(images, profile, weight, tolerance, mask)
    return float(loss * (subject.content_kept(images, profile, tolerance, mask) ** (-weight / 2) - 1.0))


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


def check_form(form) -> str:
    if form not in FORMS:
        raise ValueError(f"fade_guard_form: must be one of {', '.join(FORMS)}, got {form!r}")
    return form


def check_tolerance(tolerance) -> float:
    if isinstance(tolerance, bool) or not isinstance(tolerance, (int, float)) or not 0 <= tolerance < 1:
        raise ValueError(f"fade_tolerance: must be a number from 0 up to (not including) 1, got {tolerance!r}")
    return float(tolerance)


class SeedReference:
    """The unmodified prompt's ``Reference`` on any block of seeds, rendered once per block.

    ``render(seeds)`` returns the unmodified prompt's (B, 3, H, W) images on those
    seeds, or None when it cannot render them (then the loss falls back to the
    targets' statistics).
    """

    def __init__(self, render: Callable[[list], Optional[torch.Tensor]], form: str = "relative",
                 mask: Optional[torch.Tensor] = None):
        self._render = render
        self._form, self._mask = check_form(form), mask
        self._references: dict[tuple, Optional[Reference]] = {}
        self.renders = 0

    def __call__(self, seeds: Sequence) -> Optional[Reference]:
        """``seeds``: the batch's seeds, or its noise keys (seed, subseed, strength) with variation seeds."""
        key = tuple(tuple(s) if isinstance(s, (list, tuple)) else int(s) for s in seeds)
        if key not in self._references:
            images = self._render(list(key))
            self.renders += images is not None
            self._references[key] = None if images is None else Reference.of(images, self._mask, self._form)
        return self._references[key]


def baseline_reference(renderer, prompt: tuple[str, str], settings, form: str = "relative",
                       mask: Optional[torch.Tensor] = None) -> SeedReference:
    """A SeedReference that renders ``prompt`` with ``settings`` on a block of consecutive seeds
    of the run's batch size (the only seed lists a run scores)."""
    def render(seeds: list) -> Optional[torch.Tensor]:
        if not all(isinstance(s, int) for s in seeds):  # noise keys of variation seeds: not rendered here
            return None
        if len(seeds) != settings.batch_size or seeds != list(range(seeds[0], seeds[0] + len(seeds))):
            return None
        (batch,) = renderer.render([prompt], settings.with_(seed=seeds[0]))
        return batch.images

    return SeedReference(render, form, mask)


def attach_fade_reference(loss, config, renderer, vector, settings, targets=None) -> None:
    """For scripts that score as a guarded run does, outside a run (a run reads its journal instead):
    with the guard on and no target images (``targets`` None), a ``baseline_reference`` of the
    unmodified prompt of ``vector`` as the loss's ``seed_reference``."""
    if getattr(config, "fade_guard", 0.0) and targets is None:
        loss.seed_reference = baseline_reference(renderer, vector.render(np.zeros(vector.size)), settings,
                                                 getattr(config, "fade_guard_form", "relative"), loss.mask)
