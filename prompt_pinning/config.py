"""The one configuration object of a pinning run.

Every option of the seed's parameter table lives here with its default. ``None``
(or 0 where the UI uses 0 for "auto") means "use the computed default"; the
values actually used are resolved by the optimizer and recorded in the run.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Optional, Sequence

from .rendering import GenerationSettings

CMA_WEIGHTS = ("superlinear", "linear", "equal")
HYPERBATCH_WEIGHT_TYPES = ("Geometric", "Exponential", "Polynomial")
UNIT_MODES = ("word", "phrase")
SEED_SCHEDULES = ("fixed", "rotating")
LOSS_VARIANTS = ("union", "target", "consistency")
MAX_VALIDATION_BATCHES = 8
AUTO_WHEN_ZERO = (
    "cma_seed", "generations", "lambda_", "mu", "size_limit_error", "size_limit_weight",
    "cs", "damps", "ccum", "ccov1", "ccovmu", "max_images_per_call",
)


class ConfigError(ValueError):
    """A bad option. The message names the option and what would be accepted."""

    def __init__(self, option: str, message: str):
        super().__init__(f"{option}: {message}")
        self.option = option


@dataclass
class PinningConfig:
    positive: str
    negative: str = ""
    generation: GenerationSettings = field(default_factory=lambda: GenerationSettings(seed=1))
    # Target images: paths, PIL images or (3,H,W)/(H,W,3) arrays. Empty: the
    # unmodified prompt's first batch is the target.
    targets: Sequence[Any] = ()
    unit_mode: str = "word"

    cma_logging: bool = True
    cma_seed: Optional[int] = None
    generations: Optional[int] = None  # auto: max(1, int(16 * floor(log N)))
    initial_std: float = 0.05
    initial_radius: float = 0.25

    size_limit: float = 0.0  # 0 disables the multi-objective size limiter
    size_limit_error: Optional[float] = None  # auto: size_limit / 100
    size_limit_weight: Optional[float] = None  # auto: size_limit * 10

    lambda_: Optional[int] = None
    mu: Optional[int] = None
    cmatrix: Optional[Any] = None  # N x N array; auto: identity
    weights: str = "superlinear"
    cs: Optional[float] = None
    damps: Optional[float] = None
    ccum: Optional[float] = None
    ccov1: Optional[float] = None
    ccovmu: Optional[float] = None

    hyperbatch_weights_enabled: bool = True
    hyperbatch_weights_force_allowed: bool = True
    hyperbatch_weight_type: str = "Geometric"
    hyperbatch_weight_scale: float = 1.0

    outdir: Path = Path("outputs")  # runs go to <outdir>/prompt_pins/<run>
    max_images_per_call: Optional[int] = None  # auto from free memory
    resume: Optional[Path] = None

    # -- generalisation: validation seeds, seed schedule, loss variant ----
    # validation_batches: batches of held-out seeds (disjoint from every training
    # seed of the run) that the baseline, the best candidates and the final
    # centroid are also rendered on; the result is the one with the lowest
    # validation loss. 0 keeps the original behaviour (training loss only).
    validation_batches: int = 1
    # seed_schedule: "rotating" renders each generation on fresh seeds (shared
    # within it); "fixed" renders every generation on the same seeds. Rotating is
    # the default: on bench_quality.py its results held on more prompts' held-out seeds.
    seed_schedule: str = "rotating"
    # loss_variant: "union" (targets + batch, all pairs), "target" (target x
    # batch pairs only) or "consistency" (batch pairs only, no target).
    loss_variant: str = "union"

    def validate(self) -> "PinningConfig":
        """Raise ConfigError for the first bad option; return self.

        A 0 in an option with a computed default means "auto" and becomes None.
        """
        for name in AUTO_WHEN_ZERO:
            value = getattr(self, name)
            if not isinstance(value, bool) and isinstance(value, (int, float)) and value == 0:
                setattr(self, name, None)
        if not isinstance(self.positive, str):
            raise ConfigError("positive", f"must be a string, got {type(self.positive).__name__}")
        if not isinstance(self.negative, str):
            raise ConfigError("negative", f"must be a string, got {type(self.negative).__name__}")
        _choice("unit_mode", self.unit_mode, UNIT_MODES)
        _choice("weights", self.weights, CMA_WEIGHTS)
        _choice("hyperbatch_weight_type", self.hyperbatch_weight_type, HYPERBATCH_WEIGHT_TYPES)
        _choice("seed_schedule", self.seed_schedule, SEED_SCHEDULES)
        _choice("loss_variant", self.loss_variant, LOSS_VARIANTS)
        if not _is_int(self.validation_batches) or not 0 <= self.validation_batches <= MAX_VALIDATION_BATCHES:
            raise ConfigError("validation_batches", f"must be a whole number from 0 (off) to "
                              f"{MAX_VALIDATION_BATCHES}, got {self.validation_batches!r}")
        _positive("initial_std", self.initial_std)
        _at_least("initial_radius", self.initial_radius, 0.0)
        _at_least("size_limit", self.size_limit, 0.0)
        _positive("hyperbatch_weight_scale", self.hyperbatch_weight_scale)
        for name in ("generations", "lambda_", "mu", "max_images_per_call"):
            value = getattr(self, name)
            if value is not None and (not _is_int(value) or value < 1):
                raise ConfigError(name, f"must be a whole number >= 1 (or empty for auto), got {value!r}")
        for name in ("size_limit_error", "size_limit_weight", "cs", "damps", "ccum", "ccov1", "ccovmu"):
            value = getattr(self, name)
            if value is not None:
                _positive(name, value)
        if self.cma_seed is not None and not _is_int(self.cma_seed):
            raise ConfigError("cma_seed", f"must be a whole number (or empty for auto), got {self.cma_seed!r}")
        g = self.generation
        for name, low in (("batch_size", 1), ("steps", 1), ("width", 8), ("height", 8)):
            value = getattr(g, name)
            if not _is_int(value) or value < low:
                raise ConfigError(name, f"must be a whole number >= {low}, got {value!r}")
        _finite("cfg_scale", g.cfg_scale)
        if not 0.0 < g.denoising_strength <= 1.0:
            raise ConfigError("denoising_strength", f"must be in (0, 1], got {g.denoising_strength!r}")
        if self.loss_variant == "consistency" and g.batch_size < 2:
            raise ConfigError("loss_variant", "consistency compares a batch's images with each other: "
                              f"it needs batch_size >= 2, got {g.batch_size}")
        if self.lambda_ is not None and self.mu is not None and self.mu > self.lambda_:
            raise ConfigError("mu", f"must be <= lambda_ ({self.lambda_}), got {self.mu}")
        return self

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready view (targets are listed by name, arrays as lists)."""
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "generation":
                value = value.to_dict()
            elif f.name == "targets":
                value = [str(t) if isinstance(t, (str, Path)) else type(t).__name__ for t in value]
            elif isinstance(value, Path):
                value = str(value)
            elif hasattr(value, "tolist"):
                value = value.tolist()
            out[f.name] = value
        return out


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _choice(name: str, value: Any, allowed: Sequence[str]) -> None:
    if value not in allowed:
        raise ConfigError(name, f"must be one of {', '.join(allowed)}; got {value!r}")


def _finite(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ConfigError(name, f"must be a finite number, got {value!r}")


def _positive(name: str, value: Any) -> None:
    _finite(name, value)
    if value <= 0:
        raise ConfigError(name, f"must be > 0, got {value!r}")


def _at_least(name: str, value: Any, low: float) -> None:
    _finite(name, value)
    if value < low:
        raise ConfigError(name, f"must be >= {low}, got {value!r}")
