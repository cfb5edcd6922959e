"""The one configuration object of a pinning run.

Every option's default, limits and "0 means auto" rule come from the option
schema (``options.py``); this module only holds them in a dataclass and checks
them. ``None`` (or 0 / empty, see ``options.normalize``) means "use the computed
default"; the values actually used are resolved by the optimizer and recorded in
the run.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np

from .options import (CMA_WEIGHTS, HYPERBATCH_WEIGHT_TYPES, LOSS_VARIANTS, MAX_VALIDATION_BATCHES,  # noqa: F401
                      SEED_SCHEDULES, UNIT_MODES)  # re-exported
from .options import (DEFAULTS, GENERATION_DEFAULTS, GENERATION_LIMITS, OPTIONS, ConfigError, check,
                      check_images_per_generation)
from .rendering import GenerationSettings


def _default(name: str) -> Any:
    value = DEFAULTS[name]
    return field(default_factory=lambda: value) if isinstance(value, (list, tuple)) else field(default=value)


@dataclass
class PinningConfig:
    positive: str
    negative: str = ""
    # Settings of the renderer call; the default is the built-in model's (GENERATION_DEFAULTS).
    generation: GenerationSettings = field(default_factory=lambda: GenerationSettings(GENERATION_DEFAULTS["seed"]))
    # Target images: paths, PIL images or (3,H,W)/(H,W,3) arrays. Empty: the
    # unmodified prompt's first batch is the target.
    targets: Sequence[Any] = _default("targets")
    unit_mode: str = _default("unit_mode")

    cma_logging: bool = _default("cma_logging")
    cma_seed: Optional[int] = _default("cma_seed")
    generations: Optional[int] = _default("generations")
    initial_std: float = _default("initial_std")
    initial_radius: float = _default("initial_radius")

    size_limit: float = _default("size_limit")  # 0 disables the multi-objective size limiter
    size_limit_error: Optional[float] = _default("size_limit_error")
    size_limit_weight: Optional[float] = _default("size_limit_weight")

    lambda_: Optional[int] = _default("lambda_")
    mu: Optional[int] = _default("mu")
    cmatrix: Optional[Any] = _default("cmatrix")  # N x N array
    weights: str = _default("weights")
    cs: Optional[float] = _default("cs")
    damps: Optional[float] = _default("damps")
    ccum: Optional[float] = _default("ccum")
    ccov1: Optional[float] = _default("ccov1")
    ccovmu: Optional[float] = _default("ccovmu")

    hyperbatch_weights_enabled: bool = _default("hyperbatch_weights_enabled")
    hyperbatch_weights_force_allowed: bool = _default("hyperbatch_weights_force_allowed")
    hyperbatch_weight_type: str = _default("hyperbatch_weight_type")
    hyperbatch_weight_scale: float = _default("hyperbatch_weight_scale")

    outdir: Path = Path("outputs")  # runs go to <outdir>/prompt_pins/<run>
    max_images_per_call: Optional[int] = _default("max_images_per_call")
    resume: Optional[Path] = _default("resume")

    # Held-out seed batches for choosing the result, the seed schedule and the loss
    # variant: see their hints in the option schema and docs/loss.md.
    validation_batches: int = _default("validation_batches")
    seed_schedule: str = _default("seed_schedule")
    loss_variant: str = _default("loss_variant")
    start_from: Optional[str] = _default("start_from")  # RUN_FOLDER:CLUSTER (start_from.py)
    # Target mask (masks.py): an image (path, PIL image, array); white counts, black is ignored.
    target_mask: Optional[Any] = _default("target_mask")
    target_mask_source: str = _default("target_mask_source")
    # Tag targets (tags.py): wanted and unwanted tags, the tag loss's weight and the tagger.
    wanted_tags: str = _default("wanted_tags")
    unwanted_tags: str = _default("unwanted_tags")
    tag_loss_weight: float = _default("tag_loss_weight")
    tag_loss_only: bool = _default("tag_loss_only")
    tagger: str = _default("tagger")
    fade_guard: float = _default("fade_guard")
    fade_tolerance: float = _default("fade_tolerance")
    fade_guard_form: str = _default("fade_guard_form")
    network_units: bool = _default("network_units")  # extra-network strengths as units (prompt/networks.py)

    def validate(self) -> "PinningConfig":
        """Raise ConfigError for the first bad option; return self.

        A 0 or empty value in an option with a computed default becomes None.
        """
        if not isinstance(self.positive, str):
            raise ConfigError("positive", f"must be a string, got {type(self.positive).__name__}")
        if not isinstance(self.negative, str):
            raise ConfigError("negative", f"must be a string, got {type(self.negative).__name__}")
        for option in OPTIONS:
            if option.kind not in ("images", "mask"):
                setattr(self, option.name, check(option, getattr(self, option.name)))
        if self.cmatrix is not None:
            self.cmatrix = np.asarray(self.cmatrix, dtype=np.float64)
        _check_generation(self.generation)
        if self.loss_variant == "consistency" and self.generation.batch_size < 2:
            raise ConfigError("loss_variant", "consistency compares a batch's images with each other: "
                              f"it needs batch_size >= 2, got {self.generation.batch_size}")
        _check_tags(self)
        if self.lambda_ is not None and self.mu is not None and self.mu > self.lambda_:
            raise ConfigError("mu", f"must be <= lambda_ ({self.lambda_}), got {self.mu}")
        size = (self.generation.width, self.generation.height)
        if self.lambda_ is not None:
            check_images_per_generation(self.generation.batch_size, self.lambda_, size=size)
        if self.mu is not None and self.size_limit > 0:  # the size limiter's first generation
            check_images_per_generation(self.generation.batch_size, self.mu, "mu", size=size)
        check_target_budget(self.targets, size)
        return self

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready view (targets are listed by name, arrays as lists; folders relative to the outputs)."""
        from .run.rundir import public_run_dir

        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "generation":
                value = value.to_dict()
            elif f.name == "targets":
                value = [Path(t).name if isinstance(t, (str, Path)) else type(t).__name__ for t in value]
            elif f.name == "target_mask" and value is not None:
                value = Path(value).name if isinstance(value, (str, Path)) else type(value).__name__
            elif f.name == "resume" and value:
                value = public_run_dir(value)
            elif f.name == "outdir":  # relative to the outputs folder: the server's own paths stay private
                value = Path(value).name
            elif f.name == "start_from" and value:
                folder, _, cluster = str(value).rpartition(":")
                value = f"{public_run_dir(folder)}:{cluster}"
            elif isinstance(value, Path):
                value = str(value)
            elif hasattr(value, "tolist"):
                value = value.tolist()
            out[f.name] = value
        return out


def check_target_budget(targets: Sequence[Any], size: tuple[int, int]) -> None:
    """The number of targets and their pixels at the generation size, before any is decoded."""
    from .score.targets import MAX_TARGET_PIXELS, MAX_TARGETS

    if targets is None:
        count = 0
    elif isinstance(targets, (list, tuple)):
        count = len(targets)
    else:  # one item: a (N, ...) array or tensor is a batch of N
        count = targets.shape[0] if getattr(targets, "ndim", 0) == 4 else 1
    if count > MAX_TARGETS:
        raise ConfigError("targets", f"{count} images given; at most {MAX_TARGETS} are accepted")
    if count * size[0] * size[1] > MAX_TARGET_PIXELS:
        raise ConfigError("targets", f"{count} images at the generation size {size[0]}x{size[1]} are "
                                     f"{count * size[0] * size[1]:,} pixels; targets may total at most "
                                     f"{MAX_TARGET_PIXELS:,} (64 at 1024x1024): give fewer or lower width and height")


def _check_tags(config: PinningConfig) -> None:
    """Tag lists that parse, and no "tags only" without tags."""
    if config.wanted_tags is None:
        config.wanted_tags = ""
    if config.unwanted_tags is None:
        config.unwanted_tags = ""
    from .score.tags import TagTargetError, tag_target

    try:
        target = tag_target(config)
    except TagTargetError as error:
        option, _, reason = str(error).partition(": ")
        raise ConfigError(option, reason) from None
    if config.tag_loss_only and not target:
        raise ConfigError("tag_loss_only", "scores with the tag loss alone, so it needs wanted_tags or unwanted_tags")


def _check_generation(g: GenerationSettings) -> None:
    for name, (low, high) in GENERATION_LIMITS.items():
        value = getattr(g, name)
        if not isinstance(value, int) or isinstance(value, bool) or value < low:
            raise ConfigError(name, f"must be a whole number >= {low}, got {value!r}")
        if value > high:
            raise ConfigError(name, f"must be <= {high:,}, got {value!r}")
    if isinstance(g.cfg_scale, bool) or not isinstance(g.cfg_scale, (int, float)) \
            or not math.isfinite(g.cfg_scale):
        raise ConfigError("cfg_scale", f"must be a finite number, got {g.cfg_scale!r}")
    if not 0.0 < g.denoising_strength <= 1.0:
        raise ConfigError("denoising_strength", f"must be in (0, 1], got {g.denoising_strength!r}")
