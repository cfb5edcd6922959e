"""The pinning objective: how far an individual's images are from the targets and each other.

Plain summary. The union U of the target images (first) and the individual's
images (after) is compared pair by pair with LDR-FLIP: all unordered pairs
{u, v}, u != v, in ``itertools.combinations`` order. The objective is
``mean + |std|`` (population std) of those pair values. Target-target pairs and
the targets' per-image FLIP work never change during a run: ``set_targets``
computes them once and ``evaluate`` reuses them. ``evaluate_many`` scores a
whole generation: the per-image work of all its images is batched (the costly
part on a GPU), the pairs and summaries stay per individual.

Hyperbatch weights. Every member of U has an ancestor at each doubling level
K = 1..L: image b's ancestor at level K is ``traces[b, K-1]`` (column 0 is the
root, K = 1, as the seed README counts K from the root); a target is its own
ancestor at every level. At level K the members are grouped by ancestor, and
each group collects every pair with at least one member in the group (a pair
inside one group is counted once). X_K is the mean over the groups of the
group's ``mean + |std|``. The levels are combined as

    Geometric    sum_K X_K ** (scale / K)
    Exponential  sum_K X_K * (0.5 + scale) ** K
    Polynomial   sum_K (1 + X_K) ** (scale * K)

A plain sampler has no traces. With "force allowed" each image is its own
root: one level (L = 1) whose groups are the single members of U, so X_1 is
the mean over members of the ``mean + |std|`` of that member's pairs. Without
"force allowed", hyperbatch weights and a plain sampler are a configuration
error.

The original extension grouped the same way but counted a pair twice when both
images shared the ancestor, gave K = 1 to the leaves instead of the root,
invented traces for plain samplers, and dropped images beyond the batch size
when targets were present. None of that is repeated here.

Variants (``variant``). ``union`` is the objective above: every pair of U,
target-target pairs included (they are constant within a run). ``target`` keeps
only the target x image pairs: closeness to the targets, without rewarding a
batch that collapses onto itself. ``consistency`` keeps only the image pairs and
ignores targets: "make this prompt stable", with no target. The hyperbatch
grouping above applies to whichever pairs are kept (a group with no kept pair,
such as a target's under ``consistency``, is left out).

Same-seed pairs. When the targets are a render of the unmodified prompt, the
caller may pass the targets' seeds (``set_targets(..., seeds=)``) and each
batch's seeds (``evaluate(..., seeds=)``). A target x image pair of the same
seed is then left out: for the unmodified prompt itself it compares an image
with its identical copy (FLIP 0), which no fresh seed reproduces, so it would
give the baseline a score unlike the one it gets on any other seeds. Leaving
the pair out for every individual keeps the pair set the same for all of them.
If nothing else would remain (one image, one target), the pair is kept.

Fade guard (``fade_guard``, ``fade_guard_form``, ``prompt_pinning.score.fade_guard``).
With a weight > 0, ``value`` also pays for what the batch has lost of its
subject against the unmodified prompt's images of the same seeds
(``seed_reference(seeds)``, as a run sets it), beyond the tolerance, so that a
batch cannot win by fading its subject into the background; the form decides
what is measured (the subject's pixels by default). Without a seed reference
the batch form compares with the targets' statistics. With weight 0 (or no
reference) nothing is added. ``from_config`` leaves the guard off when the
config has target images, as a run does.

Non-finite values. FLIP values lie in [0, 1], so ``mean + |std|`` of any of them
is at most (1 + sqrt 2) / 2; the weights are increasing in X for scale > 0, so
the worst possible value is the combination of that bound at every level. A
NaN or infinite result is replaced by it, with a warning.

Stopping. ``check_stop`` (None, or a callable that raises to stop) is called
before each preprocessing chunk, each chunk of pairs and each individual, so a
stop is seen within one chunk's time (about a second on a CPU at 512x512),
whatever the batch size.
"""
from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from typing import Any, Callable, Optional, Sequence

import numpy as np
import torch

from . import fade_guard as guard
from . import flip
from ..config import HYPERBATCH_WEIGHT_TYPES, LOSS_VARIANTS
from .levels import WORST_SUMMARY, combine_levels, level_values, summary, union_ancestors

log = logging.getLogger(__name__)



@dataclass
class LossResult:
    value: float  # what the optimizer minimises
    pair_losses: np.ndarray  # (P,) FLIP mean of every pair of U = targets + images
    image_losses: np.ndarray  # (B,) per image: mean FLIP against every other member of U
    level_values: np.ndarray  # (L,) X_K per level; empty when hyperbatch weights are off
    seconds: float
    pairs: np.ndarray  # (P, 2) indices into U of each pair (targets first, then images)
    n_targets: int = 0
    replaced: bool = False  # True when a non-finite value was replaced by the worst value
    fade_penalty: float = 0.0  # the fade guard's term, included in value


class PinningLoss:
    """LDR-FLIP pinning objective with cached targets. See the module docstring."""

    def __init__(self, targets: Optional[torch.Tensor] = None, *, weight_type: str = "Geometric",
                 weight_scale: float = 1.0, hyperbatch_weights: bool = True, force_allowed: bool = True,
                 max_pairs_per_chunk: Optional[int] = None, ppd: Optional[float] = None,
                 max_images_per_preprocess: Optional[int] = None, variant: str = "union",
                 mask: Optional[torch.Tensor] = None, fade_guard: float = 0.0,
                 fade_tolerance: float = 0.0, fade_guard_form: str = "relative"):
        if variant not in LOSS_VARIANTS:
            raise ValueError(f"variant: must be one of {', '.join(LOSS_VARIANTS)}; got {variant!r}")
        if weight_type not in HYPERBATCH_WEIGHT_TYPES:
            raise ValueError(f"weight_type: must be one of {', '.join(HYPERBATCH_WEIGHT_TYPES)}; got {weight_type!r}")
        if isinstance(weight_scale, bool) or not isinstance(weight_scale, (int, float)) \
                or not math.isfinite(weight_scale) or weight_scale <= 0:
            raise ValueError(f"weight_scale: must be a finite number > 0, got {weight_scale!r}")
        for name, limit in (("max_pairs_per_chunk", max_pairs_per_chunk),
                            ("max_images_per_preprocess", max_images_per_preprocess)):
            if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
                raise ValueError(f"{name}: must be a whole number >= 1 or None, got {limit!r}")
        self.variant = variant
        self.fade_guard = guard.check_weight(fade_guard)
        self.fade_tolerance = guard.check_tolerance(fade_tolerance)
        self.fade_guard_form = guard.check_form(fade_guard_form)
        self._reference_stats: Optional[guard.Reference] = None  # the targets' contrast and colourfulness
        self.seed_reference = None  # seeds -> the unmodified prompt's guard.Reference there (a run: its journal)
        self.weight_type = weight_type
        self.weight_scale = float(weight_scale)
        self.hyperbatch_weights = bool(hyperbatch_weights)
        self.force_allowed = bool(force_allowed)
        self.max_pairs_per_chunk = max_pairs_per_chunk
        self.max_images_per_preprocess = max_images_per_preprocess  # None: the memory budget decides
        self.ppd = flip.check_ppd(flip.DEFAULT_PPD if ppd is None else ppd)
        self._targets: dict[str, flip.FlipFeatures] = {}  # per device
        self._target_pairs = np.zeros(0)
        self._target_shape: Optional[tuple[int, int]] = None
        self._target_seeds: Optional[list[int]] = None
        self.n_targets = 0
        self.check_stop: Optional[Callable[[], None]] = None  # see "Stopping" above
        self.set_mask(mask)  # None: no mask, plain means
        if targets is not None:
            self.set_targets(targets)

    @classmethod
    def from_config(cls, config, targets: Optional[torch.Tensor] = None,
                    target_seeds: Optional[Sequence[int]] = None, mask: Any = "config") -> "PinningLoss":
        """The loss a run of ``config`` (a PinningConfig) scores individuals with.

        Its hyperbatch weight options and loss variant come from the config; the
        targets are ``targets`` if given, else the config's target images. With
        neither, call ``set_targets`` (with ``run_target``'s images, as a run does).
        ``target_seeds``: the seeds ``targets`` were rendered with when they are the
        unmodified prompt's batch; as in a run, an image is then not compared with
        the target of its own seed (pass ``seeds=`` to ``evaluate``).
        ``mask``: the (H, W) target mask, None for none; by default the config's (``masks.build_mask``).

        The fade guard is the run's: off when the config has target images, or when
        ``targets`` are images of its own (given without ``target_seeds``); with the
        unmodified prompt as the target it needs a seed reference
        (``fade_guard.attach_fade_reference``), as a run's journal gives. For the guard
        against other targets anyway, build ``PinningLoss(targets, fade_guard=...,
        fade_guard_form="batch")`` yourself: it then compares with the targets' statistics.
        """
        if isinstance(mask, str) and mask == "config":
            from .masks import build_mask

            mask = build_mask(config)
        unmodified_target = not config.targets and (targets is None or target_seeds is not None)
        if targets is None and config.targets:
            from .targets import load_targets

            targets = load_targets(config.targets, config.generation.width, config.generation.height)
        return cls(targets, weight_type=config.hyperbatch_weight_type,
                   weight_scale=config.hyperbatch_weight_scale,
                   hyperbatch_weights=config.hyperbatch_weights_enabled,
                   force_allowed=config.hyperbatch_weights_force_allowed,
                   variant=config.loss_variant, mask=mask,
                   fade_guard=getattr(config, "fade_guard", 0.0) if unmodified_target else 0.0,
                   fade_tolerance=getattr(config, "fade_tolerance", 0.0),
                   fade_guard_form=getattr(config, "fade_guard_form", "relative"))._with_target_seeds(targets, target_seeds)

    def _with_target_seeds(self, targets: Optional[torch.Tensor], seeds: Optional[Sequence[int]]) -> "PinningLoss":
        if targets is not None and seeds is not None:
            self.set_targets(targets, seeds=seeds)
        return self

    def set_targets(self, images: torch.Tensor, seeds: Optional[Sequence[int]] = None) -> None:
        """Preprocess the targets once and compute their pairs once.

        ``seeds``: the seed of each target when the targets are a render (see the
        module docstring, same-seed pairs). ``consistency`` ignores targets.
        """
        images = flip.check_images(images, "targets")
        self._mask.check_size(images, "targets")
        if seeds is not None and len(seeds) != images.shape[0]:
            raise ValueError(f"seeds: expected one seed per target ({images.shape[0]}), got {len(seeds)}")
        self._target_seeds = None if seeds is None else [_noise_key(x) for x in seeds]
        self._reference_stats = guard.Reference(guard.batch_stats(images, self._mask.mask)) \
            if self.fade_guard and images.shape[0] else None
        if images.shape[0] == 0 or self.variant == "consistency":
            self._targets, self._target_pairs, self._target_shape, self.n_targets = {}, np.zeros(0), None, 0
            return
        features = flip.preprocess(images, self.ppd, between_chunks=self.check_stop)
        self._targets = {str(features.device): features}
        self._target_pairs = self._means(features, features, *flip.all_pairs(len(features)))
        self._target_shape = tuple(images.shape[2:])
        self.n_targets = images.shape[0]

    def worst_value(self, n_levels: int = 1) -> float:
        """The largest value the objective can take (used for non-finite results)."""
        if not self.hyperbatch_weights:
            return WORST_SUMMARY
        return combine_levels(np.full(max(1, n_levels), WORST_SUMMARY), self.weight_type, self.weight_scale)

    def evaluate(self, images: torch.Tensor, traces: Optional[np.ndarray] = None,
                 seeds: Optional[Sequence[int]] = None) -> LossResult:
        """The objective of one individual: its (B, 3, H, W) images, optional (B, L) traces
        and optional image seeds (see same-seed pairs in the module docstring)."""
        return self._evaluate_all([images], [traces], [seeds], single=True)[0]

    def evaluate_many(self, images_list: Sequence[torch.Tensor],
                      traces_list: Optional[Sequence[Optional[np.ndarray]]] = None,
                      seeds_list: Optional[Sequence[Optional[Sequence[int]]]] = None) -> list[LossResult]:
        """``evaluate`` for every individual of a generation, with the per-image work batched.

        The images of consecutive individuals are preprocessed together in as few
        ``flip.preprocess`` calls as the memory budget allows: a call takes at most one
        preprocessing chunk of images (or ``max_images_per_preprocess``), never splitting
        an individual, so the whole generation is one call when it fits. Each
        individual's pairs, levels and value are then computed on their own, as
        ``evaluate`` does: the results equal it to float32 round-off, and a non-finite
        value only affects its own individual. ``seconds`` of each result is the whole
        call's time divided evenly among the individuals.
        """
        images_list = list(images_list)
        traces_list = [None] * len(images_list) if traces_list is None else list(traces_list)
        if len(traces_list) != len(images_list):
            raise ValueError(f"traces_list: expected one entry (or None) per individual, "
                             f"{len(images_list)} in all, got {len(traces_list)}")
        seeds_list = [None] * len(images_list) if seeds_list is None else list(seeds_list)
        if len(seeds_list) != len(images_list):
            raise ValueError(f"seeds_list: expected one entry (or None) per individual, "
                             f"{len(images_list)} in all, got {len(seeds_list)}")
        return self._evaluate_all(images_list, traces_list, seeds_list, single=False)

    def _evaluate_all(self, images_list: list, traces_list: list, seeds_list: list,
                      single: bool) -> list[LossResult]:
        start = time.perf_counter()
        if not images_list:
            return []
        names = ["images"] if single else [f"images_list[{k}]" for k in range(len(images_list))]
        trace_names = ["traces"] if single else [f"traces_list[{k}]" for k in range(len(images_list))]
        checked: list[torch.Tensor] = []
        for images, name in zip(images_list, names):
            checked.append(self._checked(images, name, checked[0] if checked else None))
        ancestors = [self._ancestors(images.shape[0], traces, name)
                     for images, traces, name in zip(checked, traces_list, trace_names)]
        results = []
        for group in self._preprocess_groups([len(images) for images in checked], checked[0]):
            images = checked[group[0]] if len(group) == 1 else torch.cat([checked[k] for k in group])
            features = flip.preprocess(images, self.ppd, between_chunks=self.check_stop)
            first = 0
            for k in group:
                if self.check_stop is not None:
                    self.check_stop()
                last = first + checked[k].shape[0]
                own = flip.FlipFeatures(features.lab[first:last], features.features[first:last])
                results.append(self._guarded(self._result(own, ancestors[k], seeds_list[k]), checked[k],
                                             seeds_list[k]))
                first = last
        seconds = (time.perf_counter() - start) / len(results)
        for result in results:
            result.seconds = seconds
        return results

    def _checked(self, images: torch.Tensor, name: str, first: Optional[torch.Tensor]) -> torch.Tensor:
        images = flip.check_images(images, name)
        if self._target_shape is not None and tuple(images.shape[2:]) != self._target_shape:
            raise ValueError(f"{name}: size {tuple(images.shape[2:])} differs from the targets' "
                             f"{self._target_shape}; load targets at the generation size")
        if first is not None and (images.shape[2:] != first.shape[2:] or images.device != first.device):
            raise ValueError(f"{name}: size {tuple(images.shape[2:])} on {images.device} differs from "
                             f"images_list[0]'s {tuple(first.shape[2:])} on {first.device}; "
                             "a generation's images share one size and device")
        self._mask.check_size(images, name)
        if self.n_targets + images.shape[0] < 2:
            raise ValueError(f"{name}: need at least two images in targets + images to form a pair")
        if self.variant == "target" and self.n_targets == 0:
            raise ValueError(f"{name}: the 'target' loss variant compares images with targets; "
                             "set targets first (or use 'union' or 'consistency')")
        return images

    def _preprocess_groups(self, sizes: list[int], sample: torch.Tensor) -> list[list[int]]:
        """Runs of consecutive individuals whose images fit one preprocessing call."""
        limit = self.max_images_per_preprocess or flip.preprocess_chunk_size(sample.device, *sample.shape[2:])
        groups: list[list[int]] = []
        total = 0
        for k, size in enumerate(sizes):
            if not groups or total + size > limit:
                groups.append([])
                total = 0
            groups[-1].append(k)
            total += size
        return groups

    def _kept_pairs(self, n_images: int, seeds: Optional[Sequence[int]]) -> tuple[np.ndarray, np.ndarray]:
        """(i, j) indices into U, i < j, of the pairs this variant scores."""
        t = self.n_targets
        iu, ju = np.triu_indices(t + n_images, k=1)
        cross = (iu < t) & (ju >= t)
        keep = cross if self.variant == "target" else np.ones(iu.size, dtype=bool)
        if self._target_seeds is not None and seeds is not None and t:
            if len(seeds) != n_images:
                raise ValueError(f"seeds: expected one seed per image ({n_images}), got {len(seeds)}")
            codes = {key: k for k, key in enumerate(dict.fromkeys([*self._target_seeds, *map(_noise_key, seeds)]))}
            target_seed = np.array([codes[key] for key in self._target_seeds])[np.minimum(iu, t - 1)]
            image_seed = np.array([codes[_noise_key(key)] for key in seeds])[np.maximum(ju - t, 0)]
            distinct = keep & ~(cross & (target_seed == image_seed))
            if distinct.any():
                keep = distinct
        return iu[keep], ju[keep]

    def _result(self, features: flip.FlipFeatures, ancestors: Optional[np.ndarray],
                seeds: Optional[Sequence[int]] = None) -> LossResult:
        """Pairs, per-image means, levels and value of one individual's preprocessed images."""
        n_targets, n = self.n_targets, self.n_targets + len(features)
        matrix = self._pair_matrix(features, images_pairs=self.variant != "target")
        iu, ju = self._kept_pairs(len(features), seeds)
        pair_losses = matrix[iu, ju]
        sums, counts = np.zeros(n), np.zeros(n)
        np.add.at(sums, iu, pair_losses)
        np.add.at(sums, ju, pair_losses)
        np.add.at(counts, iu, 1.0)
        np.add.at(counts, ju, 1.0)
        image_losses = sums[n_targets:] / np.maximum(counts[n_targets:], 1.0)
        levels = np.zeros(0)
        if ancestors is None:
            value = summary(pair_losses)
        else:
            levels = level_values(pair_losses, np.stack([iu, ju], axis=1), ancestors)
            value = combine_levels(levels, self.weight_type, self.weight_scale)
        replaced = not math.isfinite(value)
        if replaced:
            bad = int(np.count_nonzero(~np.isfinite(pair_losses)))
            value = self.worst_value(1 if ancestors is None else ancestors.shape[1])
            log.warning("loss was not finite (%d of %d pair values not finite); using the worst value %.6g",
                        bad, pair_losses.size, value)
        return LossResult(value=value, pair_losses=pair_losses, image_losses=image_losses, level_values=levels,
                          seconds=0.0, pairs=np.stack([iu, ju], axis=1), n_targets=n_targets, replaced=replaced)

    def _guarded(self, result: LossResult, images: torch.Tensor, seeds: Optional[Sequence[int]]) -> LossResult:
        """Add the fade guard's term to a finite value (see the module docstring)."""
        if not self.fade_guard or result.replaced:
            return result
        reference = self._reference_stats
        if self.seed_reference is not None and seeds is not None:
            paired = self.seed_reference(seeds)
            reference = reference if paired is None else paired
        if reference is not None:
            result.fade_penalty = guard.penalty(self.fade_guard_form, images, reference, self.fade_guard,
                                                self.fade_tolerance, result.value, self._mask.on(images.device))
            result.value += result.fade_penalty
        return result

    def _ancestors(self, n_images: int, traces: Optional[np.ndarray], name: str = "traces") -> Optional[np.ndarray]:
        if not self.hyperbatch_weights:
            return None
        if traces is None:
            if not self.force_allowed:
                raise ValueError(f"{name}: hyperbatch weights need a hyperbatch sampler's traces; enable "
                                 "'force allowed' or turn hyperbatch weights off for a plain sampler")
            traces = np.arange(n_images)[:, None]
        traces = np.asarray(traces)
        if traces.ndim != 2 or traces.shape[0] != n_images or traces.shape[1] < 1 \
                or not np.issubdtype(traces.dtype, np.integer):
            raise ValueError(f"{name}: expected integer ancestors of shape ({n_images}, L >= 1), "
                             f"got {traces.dtype} {traces.shape}")
        return union_ancestors(self.n_targets, traces)

    def _pair_matrix(self, features: flip.FlipFeatures, images_pairs: bool = True) -> np.ndarray:
        """(n, n) matrix of pair values over U above the diagonal, zeros elsewhere
        (image x image pairs only with ``images_pairs``)."""
        t, b = self.n_targets, len(features)
        matrix = np.zeros((t + b, t + b))
        if t:
            targets = self._targets_on(features.device)
            ti, tj = flip.all_pairs(t)
            matrix[ti.numpy(), tj.numpy()] = self._target_pairs
            cross_i, cross_j = np.repeat(np.arange(t), b), np.tile(np.arange(b), t)
            matrix[cross_i, t + cross_j] = self._means(targets, features, cross_i, cross_j)
        if images_pairs and b > 1:
            ii, ij = flip.all_pairs(b)
            matrix[t + ii.numpy(), t + ij.numpy()] = self._means(features, features, ii, ij)
        return matrix

    def _means(self, a, b, ia, ib) -> np.ndarray:
        return flip.pair_means(a, b, ia, ib, max_pairs_per_chunk=self.max_pairs_per_chunk,
                               between_chunks=self.check_stop, weight=self._mask.on(a.device)).numpy()

    # -- target mask (masks.py): every pair value becomes a mask-weighted mean --------------
    @property
    def mask(self) -> Optional[torch.Tensor]:
        return self._mask.mask

    def set_mask(self, mask: Optional[torch.Tensor]) -> None:
        """Weigh every pair's error map by this (H, W) mask (None: plain means); target pairs are redone."""
        from .masks import DeviceMask

        self._mask = DeviceMask(mask, self._target_shape)
        if self.n_targets:
            features = next(iter(self._targets.values()))
            self._target_pairs = self._means(features, features, *flip.all_pairs(len(features)))

    def _targets_on(self, device: torch.device) -> flip.FlipFeatures:
        key = str(device)
        if key not in self._targets:
            self._targets[key] = next(iter(self._targets.values())).to(device)
        return self._targets[key]


def _noise_key(key):
    """An image's noise key (``seed_blocks.noise_keys``): a seed, or (seed, subseed, strength)."""
    return tuple(key) if isinstance(key, (tuple, list)) else int(key)

