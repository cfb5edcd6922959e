"""The Script's arguments: one table that drives the UI, the API and the docs.

``script_args`` arrive positionally (UI components or the API's
``script_args`` list) in the order of ``ARGUMENTS``. ``parse_script_args``
checks each one and returns keyword arguments for ``PinningConfig``; a bad
value raises ``ScriptArgumentError`` naming the argument by position, label
and name. Numbers of 0 or empty mean "auto" where the option has a computed
default.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any, Optional, Sequence

from prompt_pinning.config import (CMA_WEIGHTS, HYPERBATCH_WEIGHT_TYPES, LOSS_VARIANTS, MAX_VALIDATION_BATCHES,
                                   SEED_SCHEDULES, UNIT_MODES)

GROUPS = ("Target", "Optimizer", "Size limiter", "Hyperbatch", "Validation", "Output")


class ScriptArgumentError(ValueError):
    """A script argument of the wrong type or out of range."""

    def __init__(self, index: int, spec: "ArgSpec", message: str):
        super().__init__(f"script_args[{index}] ({spec.label!r}, {spec.name}): {message}")
        self.index = index
        self.name = spec.name


@dataclass(frozen=True)
class ArgSpec:
    name: str  # PinningConfig field (or "targets")
    label: str
    kind: str  # "images", "bool", "int", "float", "choice", "text", "matrix"
    default: Any
    group: str
    help: str
    auto_zero: bool = False  # 0 or empty means the computed default
    minimum: Optional[float] = None  # inclusive
    maximum: Optional[float] = None  # inclusive
    positive: bool = False  # must be > 0 (after "auto")
    choices: tuple = ()


ARGUMENTS: tuple[ArgSpec, ...] = (
    ArgSpec("targets", "Target images", "images", None, "Target",
            "Pin to these images instead of the unmodified prompt's first batch. API: a list of "
            "base64 PNG/JPEG strings or data URLs (or null)."),
    ArgSpec("unit_mode", "Pinnable unit", "choice", "word", "Target",
            "Give each word its own weight, or each comma-separated phrase.", choices=UNIT_MODES),
    ArgSpec("cma_logging", "CMA logging", "bool", True, "Optimizer",
            "Log one CMA logbook line per generation to the console."),
    ArgSpec("cma_seed", "CMA seed", "int", 0, "Optimizer",
            "Seed of the CMA sampling; 0 = derived from the image seed and subseed.",
            auto_zero=True, minimum=0),
    ArgSpec("generations", "Number of generations", "int", 0, "Optimizer",
            "CMA generations; 0 = max(16, int(16 * floor(log N))): at least 16, so that CMA can "
            "search even for N <= 2, where the formula alone gives one generation of about 6 "
            "individuals.", auto_zero=True, minimum=0),
    ArgSpec("initial_std", "Initial population STD", "float", 0.05, "Optimizer",
            "CMA initial step size (sigma).", positive=True),
    ArgSpec("initial_radius", "Initial population radius", "float", 0.25, "Optimizer",
            "The initial centroid is drawn uniformly from [-radius, radius] per unit.", minimum=0),
    ArgSpec("lambda_", "lambda_ (children per generation)", "int", 0, "Optimizer",
            "Individuals per generation; 0 = int(4 + 3 log N).", auto_zero=True, minimum=0),
    ArgSpec("mu", "mu (parents kept)", "int", 0, "Optimizer",
            "Parents kept from each generation; 0 = int(lambda_ / 2).", auto_zero=True, minimum=0),
    ArgSpec("weights", "Recombination weights", "choice", "superlinear", "Optimizer",
            "How parents are weighted: superlinear, linear or equal.", choices=CMA_WEIGHTS),
    ArgSpec("cs", "cs", "float", 0.0, "Optimizer",
            "Step-size cumulation constant; 0 = (mueff + 2) / (N + mueff + 3).", auto_zero=True, minimum=0),
    ArgSpec("damps", "damps", "float", 0.0, "Optimizer",
            "Step-size damping; 0 = 1 + 2 max(0, sqrt((mueff - 1) / (N + 1)) - 1) + cs.",
            auto_zero=True, minimum=0),
    ArgSpec("ccum", "ccum", "float", 0.0, "Optimizer",
            "Covariance cumulation constant; 0 = 4 / (N + 4).", auto_zero=True, minimum=0),
    ArgSpec("ccov1", "ccov1", "float", 0.0, "Optimizer",
            "Rank-one learning rate; 0 = 2 / ((N + 1.3)^2 + mueff).", auto_zero=True, minimum=0),
    ArgSpec("ccovmu", "ccovmu", "float", 0.0, "Optimizer",
            "Rank-mu learning rate; 0 = 2 (mueff - 2 + 1 / mueff) / ((N + 2)^2 + mueff).",
            auto_zero=True, minimum=0),
    ArgSpec("cmatrix", "cmatrix (initial covariance)", "matrix", "", "Optimizer",
            "Initial covariance as a JSON N x N list of lists; empty = identity(N)."),
    ArgSpec("size_limit", "Multi-objective size limiter", "float", 0.0, "Size limiter",
            "Penalise individuals farther than this L2 distance from the original weights; "
            "0 disables.", minimum=0),
    ArgSpec("size_limit_error", "Size limit error", "float", 0.0, "Size limiter",
            "Distances within this of the limit count as close; 0 = size limit / 100.",
            auto_zero=True, minimum=0),
    ArgSpec("size_limit_weight", "Size limit weight", "float", 0.0, "Size limiter",
            "Weight of the size penalty; 0 = size limit * 10.", auto_zero=True, minimum=0),
    ArgSpec("hyperbatch_weights_enabled", "Hyperbatch weights enabled", "bool", True, "Hyperbatch",
            "Weight pair losses by their place in the hyperbatch tree."),
    ArgSpec("hyperbatch_weights_force_allowed", "Hyperbatch weights force allowed", "bool", True,
            "Hyperbatch", "Also apply hyperbatch weights when the sampler is not a hyperbatch one."),
    ArgSpec("hyperbatch_weight_type", "Hyperbatch weight type", "choice", "Geometric", "Hyperbatch",
            "Geometric X^(scale/K), Exponential X(0.5+scale)^K or Polynomial (1+X)^(scale K).",
            choices=HYPERBATCH_WEIGHT_TYPES),
    ArgSpec("hyperbatch_weight_scale", "Hyperbatch weight scale", "float", 1.0, "Hyperbatch",
            "Scaling factor of the hyperbatch weights."),
    ArgSpec("max_images_per_call", "Max images per sampler call", "int", 0, "Output",
            "Images rendered together in one call (several individuals packed); "
            "0 = the command-line option, else from free GPU memory.", auto_zero=True, minimum=0),
    ArgSpec("resume", "Resume run folder", "text", "", "Output",
            "Continue the run in this folder (a prompt_pins/<run> path); empty = a new run."),
    # -- generalisation (validation seeds, seed schedule, loss variant) --------
    ArgSpec("validation_batches", "Validation batches", "int", 1, "Validation",
            "Batches of held-out seeds (never used for training) that the baseline, the best "
            "candidates and the final centroid are also rendered on; the result is the one with "
            "the lowest validation loss. About 10% more renders per batch. 0 = off: training loss "
            "only, no extra renders.", minimum=0, maximum=MAX_VALIDATION_BATCHES),
    ArgSpec("seed_schedule", "Seed schedule", "choice", "rotating", "Validation",
            "rotating: each generation renders all its individuals on the same fresh seeds, so no "
            "single batch can be overfitted. fixed: every generation renders on the same seeds "
            "(the original behaviour).",
            choices=SEED_SCHEDULES),
    ArgSpec("loss_variant", "Loss variant", "choice", "union", "Validation",
            "union: all pairs of targets and batch (mean + |std|). target: only target x batch pairs "
            "(closeness to the target). consistency: batch pairs only, no target (a stable prompt).",
            choices=LOSS_VARIANTS),
)

ARGUMENT_INDEX = {spec.name: i for i, spec in enumerate(ARGUMENTS)}


def default_args() -> list[Any]:
    """The script_args list that gives every default (what the UI starts with)."""
    return [spec.default for spec in ARGUMENTS]


def _is_empty(value: Any) -> bool:
    return value is None or (isinstance(value, str) and value.strip() == "")


def _number(index: int, spec: ArgSpec, value: Any) -> float:
    if isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            raise ScriptArgumentError(index, spec, f"must be a number, got {value!r}") from None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ScriptArgumentError(index, spec, f"must be a finite number, got {value!r}")
    if spec.minimum is not None and value < spec.minimum:
        raise ScriptArgumentError(index, spec, f"must be >= {spec.minimum:g}, got {value!r}")
    if spec.maximum is not None and value > spec.maximum:
        raise ScriptArgumentError(index, spec, f"must be <= {spec.maximum:g}, got {value!r}")
    if spec.positive and value <= 0:
        raise ScriptArgumentError(index, spec, f"must be > 0, got {value!r}")
    return value


def _parse_number(index: int, spec: ArgSpec, value: Any) -> Optional[float]:
    if _is_empty(value):
        if spec.auto_zero:
            return None
        raise ScriptArgumentError(index, spec, "must not be empty")
    number = _number(index, spec, value)
    if spec.kind == "int":
        if float(number) != int(number):
            raise ScriptArgumentError(index, spec, f"must be a whole number, got {value!r}")
        number = int(number)
    if spec.auto_zero and number == 0:
        return None
    return number


def _parse_bool(index: int, spec: ArgSpec, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    raise ScriptArgumentError(index, spec, f"must be true or false, got {value!r}")


def _parse_choice(index: int, spec: ArgSpec, value: Any) -> str:
    if value in spec.choices:
        return value
    raise ScriptArgumentError(index, spec, f"must be one of {', '.join(spec.choices)}; got {value!r}")


def _parse_matrix(index: int, spec: ArgSpec, value: Any) -> Optional[list]:
    if _is_empty(value):
        return None
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as error:
            raise ScriptArgumentError(index, spec, f"must be JSON (a list of lists): {error}") from None
    rows = value.tolist() if hasattr(value, "tolist") else value
    if not isinstance(rows, list) or not rows or not all(isinstance(r, list) for r in rows):
        raise ScriptArgumentError(index, spec, "must be a square list of lists of numbers")
    if any(len(r) != len(rows) for r in rows):
        raise ScriptArgumentError(index, spec, f"must be square, got {len(rows)} rows of lengths "
                                               f"{sorted({len(r) for r in rows})}")
    for r in rows:
        for x in r:
            if isinstance(x, bool) or not isinstance(x, (int, float)) or not math.isfinite(x):
                raise ScriptArgumentError(index, spec, f"entries must be finite numbers, got {x!r}")
    return rows


def _parse_text(index: int, spec: ArgSpec, value: Any) -> Optional[str]:
    if _is_empty(value):
        return None
    if not isinstance(value, str):
        raise ScriptArgumentError(index, spec, f"must be a string, got {type(value).__name__}")
    return value.strip()


def _parse_images(index: int, spec: ArgSpec, value: Any) -> list:
    from .images import decode_target_images

    try:
        return decode_target_images(value)
    except ValueError as error:
        raise ScriptArgumentError(index, spec, str(error)) from None


_PARSERS = {
    "int": _parse_number, "float": _parse_number, "bool": _parse_bool, "choice": _parse_choice,
    "matrix": _parse_matrix, "text": _parse_text, "images": _parse_images,
}


def parse_script_args(args: Sequence[Any]) -> dict[str, Any]:
    """Check positional script_args; return {name: value} for PinningConfig.

    "targets" holds decoded PIL images; "resume" a path string or None.
    """
    args = list(args)
    if len(args) != len(ARGUMENTS):
        names = ", ".join(f"{i}: {s.name}" for i, s in enumerate(ARGUMENTS))
        raise ValueError(
            f"Prompt pinning takes {len(ARGUMENTS)} script_args, got {len(args)}. "
            f"Expected, in order: {names}"
        )
    return {spec.name: _PARSERS[spec.kind](i, spec, value)
            for i, (spec, value) in enumerate(zip(ARGUMENTS, args))}
