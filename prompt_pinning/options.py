"""The option schema: the one description of every pinning option.

``OPTIONS`` lists each option once: its name (a ``PinningConfig`` field), kind,
default, limits, the formula of its computed default, hint, label, group and
command-line flag. Its order is the WebUI's ``script_args`` order (the first 25
never move; new options are appended). Everything else is derived from it:
``PinningConfig``'s defaults and validation, the command line's arguments, the
WebUI's components and ``script_args`` parsing, and the option tables of the
README and ``docs/api.md`` (``tools/option_tables.py``).

"0 means auto": an option with a computed default (``formula``) takes ``None``,
``0`` or an empty string as "compute it"; ``normalize`` is the one place that
turns those into ``None``. The formulas themselves are the functions below.

Generation settings (seed, batch size, steps, CFG scale, size, sampler) are not
pinning options: they belong to the renderer call. The WebUI takes them from
its own request; the command line and ``PinningConfig`` share
``GENERATION_DEFAULTS``, sized for the small built-in model.
"""
from __future__ import annotations

import json
import math
import numbers
import reprlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Sequence

CMA_WEIGHTS = ("superlinear", "linear", "equal")
HYPERBATCH_WEIGHT_TYPES = ("Geometric", "Exponential", "Polynomial")
UNIT_MODES = ("word", "phrase")
SEED_SCHEDULES = ("fixed", "rotating")
LOSS_VARIANTS = ("union", "target", "consistency")
TAGGERS = ("auto", "builtin", "deepbooru", "wd14")
MAX_TAG_TEXT = 2_000  # characters of a tag list (at most 64 tags)
FADE_GUARD_FORMS = ("relative", "subject", "windows", "batch")
MASK_SOURCES = ("mask image", "target alpha", "inpaint mask", "inverted inpaint mask")
GROUPS = ("Target", "Loss", "Optimizer", "Size limiter", "Hyperbatch", "Output")

# Limits on work and memory (why: see each option's hint).
MAX_GENERATIONS = 10_000
MIN_LAMBDA = 2  # DEAP keeps mu = int(lambda_ / 2) parents: lambda_ 1 gives mu 0
MAX_LAMBDA = 1_000
MAX_IMAGES_PER_GENERATION = 1_024  # a generation's images stay in memory (3 MB each at 512x512); batch_size x lambda_ (x mu in the size limiter's first generation)
MAX_IMAGES_PER_CALL = 1_024
# A generation's images in pixels (batch_size x lambda_ x width x height): 1,024 images at 512x512,
# 3.2 GB as float32 RGB; at 1024x1024 that is 256 images, at 8192x8192 four.
MAX_PIXELS_PER_GENERATION = 1_024 * 512 * 512
MAX_CMA_SEED = 2**32 - 1  # NumPy's RandomState accepts 0 .. 2^32 - 1
MAX_VALIDATION_BATCHES = 8
MAX_FADE_GUARD = 100.0
MAX_FADE_TOLERANCE = 0.99

# The settings of the renderer call that the command line and PinningConfig start from.
GENERATION_DEFAULTS = {
    "seed": 1, "subseed": 0, "batch_size": 8, "steps": 12, "cfg_scale": 3.0,
    "width": 64, "height": 64, "sampler": "DPM++ 2M", "scheduler": "karras",
}
# Whole-number generation settings: (least, most). Batch size is also bound by the
# images per generation (batch_size x lambda_, with lambda_ >= 2).
GENERATION_LIMITS = {
    "batch_size": (1, MAX_IMAGES_PER_GENERATION // MIN_LAMBDA), "steps": (1, 1_000),
    "width": (8, 8_192), "height": (8, 8_192),
}


# ---- default formulas (each lives only here) -------------------------------------------

MIN_GENERATIONS = 16  # the formula's value for 3 <= N <= 7: enough for CMA to adapt its step size


def default_generations(n: int) -> int:
    """``int(16 * floor(ln N))``, at least MIN_GENERATIONS.

    The formula gives 0 for N <= 2, which left a single generation of about six
    evaluations: no search at all. Tiny prompts get the budget of small ones.
    """
    return max(MIN_GENERATIONS, int(16 * math.floor(math.log(max(n, 1)))))


def default_lambda(n: int) -> int:
    """DEAP's population size ``int(4 + 3 ln N)``."""
    return int(4 + 3 * math.log(max(n, 1)))


def default_mu(lambda_: int, size_limited: bool = False) -> int:
    """Parents kept: ``int(lambda_ / 2)``; the size limiter keeps a population of ``lambda_``."""
    return int(lambda_) if size_limited else int(lambda_ / 2)


def default_size_limit_error(size_limit: float) -> float:
    return size_limit / 100


def default_size_limit_weight(size_limit: float) -> float:
    return size_limit * 10


def recombination_weights(mu: int, kind: str = "superlinear") -> list[float]:
    """DEAP's normalised recombination weights of the ``mu`` parents."""
    if kind == "superlinear":
        raw = [math.log(mu + 0.5) - math.log(i) for i in range(1, mu + 1)]
    elif kind == "linear":
        raw = [mu + 0.5 - i for i in range(1, mu + 1)]
    else:
        raw = [1.0] * mu
    total = sum(raw)
    return [w / total for w in raw]


def cma_constants(n: int, mu: int, weights: str = "superlinear", cs: Optional[float] = None,
                  ccov1: Optional[float] = None) -> dict[str, float]:
    """The plain CMA-ES constants for N units (as ``deap.cma.Strategy`` computes them).

    ``cs`` and ``ccov1``, when set, feed the formulas that use them (damps, ccovmu).
    """
    mueff = 1.0 / sum(w * w for w in recombination_weights(mu, weights))
    cs = (mueff + 2) / (n + mueff + 3) if cs is None else cs
    ccov1 = 2 / ((n + 1.3) ** 2 + mueff) if ccov1 is None else ccov1
    ccovmu = 2 * (mueff - 2 + 1 / mueff) / ((n + 2) ** 2 + mueff)
    return {
        "mueff": mueff, "cs": cs,
        "damps": 1 + 2 * max(0.0, math.sqrt((mueff - 1) / (n + 1)) - 1) + cs,
        "ccum": 4 / (n + 4), "ccov1": ccov1, "ccovmu": min(1 - ccov1, ccovmu),
    }


# ---- the schema ------------------------------------------------------------------------

class ConfigError(ValueError):
    """A bad option value. The message names the option and what would be accepted."""

    def __init__(self, option: str, message: str):
        super().__init__(f"{option}: {message}")
        self.option = option
        self.reason = message


# The WebUI component each kind of option gets.
WIDGETS = {"images": "File", "mask": "File", "text": "Textbox", "bool": "Checkbox", "choice": "Dropdown", "int": "Number",
           "float": "Number", "matrix": "Textbox", "path": "Textbox"}


@dataclass(frozen=True)
class Option:
    name: str  # the PinningConfig field
    kind: str  # "images", "mask", "text", "bool", "int", "float", "choice", "matrix" or "path"
    default: Any  # the value when the option is not given; None: computed (see formula)
    label: str
    group: str
    hint: str
    cli: str  # the command-line flag ("--no-x" for a flag that turns a default-on option off)
    formula: str = ""  # text of the computed default: 0 or empty means "compute it"
    minimum: Optional[float] = None  # inclusive
    above: Optional[float] = None  # exclusive lower bound
    maximum: Optional[float] = None  # inclusive
    choices: tuple = ()
    limit_reason: str = ""  # why the maximum is what it is
    api_note: str = ""  # how the WebUI API takes the value, where that differs

    @property
    def auto(self) -> bool:
        return bool(self.formula)

    @property
    def widget(self) -> str:
        return WIDGETS[self.kind]

    @property
    def ui_default(self) -> Any:
        """The value the WebUI form and ``script_args`` use for the default."""
        if self.kind in ("images", "mask"):
            return None
        if self.auto:
            return "" if self.kind in ("matrix", "path") else (0 if self.kind == "int" else 0.0)
        if self.default is None:
            return ""
        return self.default

    def range_text(self) -> str:
        """Limits in words, e.g. ``2 .. 1000`` or ``> 0, <= 10``; empty when unlimited."""
        if self.choices:
            return ", ".join(self.choices)
        low = (f">= {_num(self.minimum)}" if self.minimum is not None
               else f"> {_num(self.above)}" if self.above is not None else "")
        if self.minimum is not None and self.maximum is not None:
            return f"{_num(self.minimum)} .. {_num(self.maximum)}"
        high = f"<= {_num(self.maximum)}" if self.maximum is not None else ""
        return ", ".join(part for part in (low, high) if part)

    def full_hint(self, api: bool = False) -> str:
        """Hint, computed default and range with the reason for its bound, for help texts.

        ``api`` adds how the WebUI API takes the value, where that needs saying.
        """
        parts = [self.hint]
        if api and self.api_note:
            parts.append(self.api_note)
        if self.formula:
            parts.append(f"0 = auto: {self.formula}." if self.kind in ("int", "float")
                         else f"Empty = auto: {self.formula}.")
        if self.kind in ("int", "float") and self.range_text():
            reason = f" ({self.limit_reason})" if self.limit_reason else ""
            parts.append(f"Range: {self.range_text()}{reason}.")
        return " ".join(parts)


def _num(value: float) -> str:
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        value = int(value)
    return f"{value:,}" if isinstance(value, int) and abs(value) >= 1_000 else f"{value:g}"


O = Option
# The first script_args positions, which never move (later options are appended).
STABLE_ARGUMENTS = 25

OPTIONS: tuple[Option, ...] = (
    # script_args 0-24: positions and meanings are fixed (API compatibility).
    O("targets", "images", (), "Target images", "Target",
      "Pin to these images instead of the unmodified prompt's first batch; other sizes are resized "
      "and cropped to the generation size.", cli="--target",
      api_note="API: a list of base64 PNG/JPEG strings or data URLs (or null)."),
    O("unit_mode", "choice", "word", "Pinnable unit", "Target",
      "Give each word (and punctuation mark) its own weight, or each comma-separated phrase.",
      cli="--units", choices=UNIT_MODES),
    O("cma_logging", "bool", True, "CMA logging", "Optimizer",
      "Log one CMA logbook line per generation to the console.", cli="--no-cma-logging"),
    O("cma_seed", "int", None, "CMA seed", "Optimizer",
      "Seed of the CMA sampling; a run is reproducible from it.", cli="--cma-seed",
      formula="derived from the image seed and subseed", minimum=0, maximum=MAX_CMA_SEED,
      limit_reason="NumPy's random state takes 32-bit seeds"),
    O("generations", "int", None, "Number of generations", "Optimizer",
      "CMA generations after the baseline; any number from 1. The automatic value is at least 16, so "
      "that CMA searches even for N <= 2, where the formula alone gives one generation of about 6 "
      "individuals.", cli="--generations",
      formula="max(16, int(16 * floor(ln N)))", minimum=0, maximum=MAX_GENERATIONS,
      limit_reason="each generation renders lambda_ batches; 10,000 is days of rendering"),
    O("initial_std", "float", 0.1, "Initial population STD", "Optimizer",
      "CMA's initial step size sigma. 0.1 (the original's 0.05 doubled): with the fade guard on, the "
      "gains that keep the subject lie further from the user's weights (docs/loss.md).", cli="--initial-std", above=0, maximum=10.0,
      limit_reason="weights past about 2 already wash an image out; 10 keeps every weight finite"),
    O("initial_radius", "float", 0.25, "Initial population radius", "Optimizer",
      "The initial centroid is drawn uniformly from [-radius, radius] per unit.",
      cli="--initial-radius", minimum=0, maximum=10.0,
      limit_reason="weights past about 2 already wash an image out"),
    O("lambda_", "int", None, "lambda_ (children per generation)", "Optimizer",
      f"Individuals per generation; at least {MIN_LAMBDA} (DEAP keeps int(lambda_ / 2) parents).",
      cli="--lambda", formula="int(4 + 3 ln N)", minimum=0, maximum=MAX_LAMBDA,
      limit_reason=f"CMA-ES gains little past a few hundred, and batch size x lambda_ is also "
                   f"capped at {MAX_IMAGES_PER_GENERATION:,} images per generation"),
    O("mu", "int", None, "mu (parents kept)", "Optimizer",
      "Parents kept from each generation; at most lambda_.", cli="--mu",
      formula="int(lambda_ / 2); with the size limiter: lambda_", minimum=0, maximum=MAX_LAMBDA,
      limit_reason="mu is at most lambda_"),
    O("weights", "choice", "superlinear", "Recombination weights", "Optimizer",
      "How the parents are weighted.", cli="--weights", choices=CMA_WEIGHTS),
    O("cs", "float", None, "cs", "Optimizer", "Step-size cumulation constant, in (0, 1].", cli="--cs",
      formula="(mueff + 2) / (N + mueff + 3)", minimum=0, maximum=1.0),
    O("damps", "float", None, "damps", "Optimizer", "Step-size damping.", cli="--damps",
      formula="1 + 2 max(0, sqrt((mueff - 1) / (N + 1)) - 1) + cs", minimum=0, maximum=100.0,
      limit_reason="the automatic value is about 1 to 2; a larger one freezes the step size"),
    O("ccum", "float", None, "ccum", "Optimizer", "Covariance cumulation constant, in (0, 1].",
      cli="--ccum", formula="4 / (N + 4)", minimum=0, maximum=1.0),
    O("ccov1", "float", None, "ccov1", "Optimizer", "Rank-one learning rate, in (0, 1].",
      cli="--ccov1", formula="2 / ((N + 1.3)^2 + mueff)", minimum=0, maximum=1.0),
    O("ccovmu", "float", None, "ccovmu", "Optimizer",
      "Rank-mu learning rate, in (0, 1]; DEAP lowers it to 1 - ccov1 if larger.", cli="--ccovmu",
      formula="2 (mueff - 2 + 1 / mueff) / ((N + 2)^2 + mueff)", minimum=0, maximum=1.0),
    O("cmatrix", "matrix", None, "cmatrix (initial covariance)", "Optimizer",
      "Initial covariance: an N x N symmetric positive definite matrix as JSON (a list of lists); "
      "the command line also takes the path of a JSON file.",
      cli="--cmatrix", formula="identity(N)"),
    O("size_limit", "float", 0.0, "Multi-objective size limiter", "Size limiter",
      "Keep individuals within this L2 distance of the original weights (multi-objective CMA-ES); "
      "0 disables.", cli="--size-limit", minimum=0, maximum=1000.0,
      limit_reason="a distance of 1,000 is far past any weight that renders"),
    O("size_limit_error", "float", None, "Size limit error", "Size limiter",
      "Distances within this of the limit count as inside.", cli="--size-limit-error",
      formula="size_limit / 100", minimum=0, maximum=1000.0,
      limit_reason="the same bound as the size limit"),
    O("size_limit_weight", "float", None, "Size limit weight", "Size limiter",
      "Weight of the penalty beyond the limit.", cli="--size-limit-weight",
      formula="size_limit * 10", minimum=0, maximum=1e6,
      limit_reason="larger penalties only swamp the loss"),
    O("hyperbatch_weights_enabled", "bool", True, "Hyperbatch weights enabled", "Hyperbatch",
      "Weigh pair losses by their place in the hyperbatch tree.", cli="--no-hyperbatch-weights"),
    O("hyperbatch_weights_force_allowed", "bool", True, "Hyperbatch weights force allowed",
      "Hyperbatch", "Apply hyperbatch weights with plain samplers too (every image is then its "
      "own root: one level).", cli="--no-hyperbatch-force"),
    O("hyperbatch_weight_type", "choice", "Geometric", "Hyperbatch weight type", "Hyperbatch",
      "Geometric X^(scale/K), Exponential X (0.5 + scale)^K, Polynomial (1 + X)^(scale K), "
      "summed over levels K.", cli="--hyperbatch-weight-type", choices=HYPERBATCH_WEIGHT_TYPES),
    O("hyperbatch_weight_scale", "float", 1.0, "Hyperbatch weight scale", "Hyperbatch",
      "The scale of the hyperbatch weights.", cli="--hyperbatch-weight-scale", above=0, maximum=10.0,
      limit_reason="Polynomial weights grow like 2.2^(scale K) and overflow past about 70"),
    O("max_images_per_call", "int", None, "Max images per sampler call", "Output",
      "Images rendered together in one sampler call (several individuals packed).",
      cli="--max-images-per-call",
      formula="the WebUI's --prompt-pinning-max-images-per-call, else from free memory",
      minimum=0, maximum=MAX_IMAGES_PER_CALL,
      limit_reason="past this, one call no longer fits a GPU at usual sizes"),
    O("resume", "path", None, "Resume run folder", "Output",
      "Continue this run folder instead of starting a new one; from the WebUI, a run folder "
      "in its outputs (<outputs>/txt2img-images/prompt_pins/<run>); empty = a new run.", cli="--resume"),
    # Appended options (script_args 25 on).
    O("validation_batches", "int", 1, "Validation batches", "Loss",
      "Extra batches of held-out seeds, used to choose the result; "
      "0 = training loss only, no extra renders.", cli="--validation-batches",
      minimum=0, maximum=MAX_VALIDATION_BATCHES,
      limit_reason="each one adds renders of the candidates it checks"),
    O("seed_schedule", "choice", "rotating", "Seed schedule", "Loss",
      "rotating: each generation renders every individual on the same fresh seeds, so no one batch "
      "of seeds can be overfitted; fixed: every generation renders on the run's seeds (the original "
      "behaviour).", cli="--seed-schedule", choices=SEED_SCHEDULES),
    O("loss_variant", "choice", "union", "Loss variant", "Loss",
      "Which image pairs the loss compares. union: all pairs of targets and batch; target: only "
      "target x batch pairs; consistency: batch pairs only.", cli="--loss-variant",
      choices=LOSS_VARIANTS),
    O("start_from", "path", None, "Start from a cluster", "Optimizer",
      "RUN_FOLDER:CLUSTER: start the search at that cluster of an earlier run of the same prompt "
      "(its report's map of explored weights), with the cluster's spread as the initial step sizes; "
      "from the WebUI, a run folder in its outputs; empty = a random start.", cli="--start-from"),
    O("target_mask", "mask", None, "Target mask", "Target",
      "Which pixels the loss counts, in every pair it compares: white counts, black is ignored, grey "
      "weighs in between; cropped and resized to the generation size like the targets. Empty: every "
      "pixel counts.", cli="--target-mask",
      api_note="API: a base64 PNG/JPEG/WEBP string or data URL (or null)."),
    O("target_mask_source", "choice", "mask image", "Target mask source", "Target",
      "Where the mask comes from: the target mask image; the first target image's alpha channel; or, "
      "in img2img inpainting, the mask drawn there (inverted: the unmasked part counts, as A1111's "
      "'Inpaint not masked'; outside the WebUI the target mask image stands for it).",
      cli="--target-mask-source", choices=MASK_SOURCES),
    O("wanted_tags", "text", "", "Wanted tags", "Target",
      "Tags the images should show, comma-separated, with weights as in prompts: red, (circle:1.5). "
      "The tag loss adds w (1 - p) per wanted tag and w p per unwanted tag, from the tagger's "
      "probability p, averaged over the batch. Empty (with no unwanted tags): no tag loss.",
      cli="--wanted-tags"),
    O("unwanted_tags", "text", "", "Unwanted tags", "Target",
      "Tags the images should not show, written like the wanted tags.", cli="--unwanted-tags"),
    O("tag_loss_weight", "float", 1.0, "Tag loss weight", "Target",
      "The tag loss's weight: the run minimises image loss + weight x tag loss.", cli="--tag-loss-weight",
      above=0, maximum=100.0, limit_reason="the image loss is at most about 1.2 per level; a larger weight "
      "already leaves it nothing to say"),
    O("tag_loss_only", "bool", False, "Tag loss only", "Target",
      "Score with the weighted tag loss alone, without the image loss.", cli="--tag-loss-only"),
    O("tagger", "choice", "auto", "Tagger", "Target",
      "What gives the tag probabilities: builtin (the built-in model's exact posterior), deepbooru "
      "(A1111's DeepBooru) or wd14 (the WD14 tagger extension); auto: builtin on the built-in model, "
      "deepbooru in the WebUI.", cli="--tagger", choices=TAGGERS),
    O("fade_guard", "float", 2.0, "Fade guard", "Loss",
      "Strength of a loss term that charges a batch for what its subject has lost (separation from "
      "the background, colour) against the unmodified prompt on the same seeds, beyond the fade "
      "tolerance, so the search cannot lower the loss by fading the subject out; not applied with "
      "target images. With the relative form the loss is divided by (share kept) ^ (guard / 2). "
      "0 = off: the FLIP loss alone, which on the built-in model gains more by letting subjects "
      "fade (docs/loss.md).", cli="--fade-guard",
      minimum=0, maximum=MAX_FADE_GUARD,
      limit_reason="at 100 a 1% loss of contrast already outweighs any FLIP difference"),
    O("fade_tolerance", "float", 0.05, "Fade tolerance", "Loss",
      "Share of its subject's separation or colour (the batch form: its contrast or colour) an image "
      "may lose against the unmodified prompt's image of the same seed before the fade guard charges "
      "it. 0.05 lets the search trade 5% for a better loss; 0 charges from the first loss.",
      cli="--fade-tolerance",
      minimum=0, maximum=MAX_FADE_TOLERANCE,
      limit_reason="a batch may not lose all of its contrast for free"),
    O("fade_guard_form", "choice", "relative", "Fade guard form", "Loss",
      "What the fade guard measures against the unmodified prompt on the same seeds: relative (the "
      "loss divided by the share of its subject a batch keeps: on each seed's subject pixels, their "
      "separation from the background and their colour), subject (the same shares, charged weight x "
      "shortfall), windows (each cell of a 4x4 grid) or batch (contrast and colour of the whole "
      "batch, the first form; a deeper background can pay for a faded subject there).",
      cli="--fade-guard-form", choices=FADE_GUARD_FORMS),
    O("network_units", "bool", False, "Pin extra-network strengths", "Target",
      "Make the strengths of the prompts' <lora:name:w> and <hypernet:name:w> tags pinnable too: one unit "
      "per LoRA, two where its te and unet strengths are given apart, one per hypernetwork, each searched "
      "within 1 of the user's value and the renderer's strength range (-10 .. 10 unless it says "
      "otherwise); a network the renderer does not have is refused before the first render.",
      cli="--network-units"),
)
del O

OPTION = {option.name: option for option in OPTIONS}
DEFAULTS = {option.name: option.default for option in OPTIONS}


# ---- "0 means auto" and checks --------------------------------------------------------

def is_auto(value: Any) -> bool:
    """None, 0, an empty string or an empty array: "compute the default"."""
    if value is None:
        return True
    if isinstance(value, str):
        return value.strip() == ""
    if hasattr(value, "size") and hasattr(value, "shape"):  # numpy array
        return value.size == 0
    if isinstance(value, (list, tuple)):
        return len(value) == 0
    return not isinstance(value, bool) and isinstance(value, (int, float)) and value == 0


def normalize(option: Option, value: Any) -> Any:
    """The one place where "0 means auto" becomes ``None``."""
    return None if option.auto and is_auto(value) else value


def is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def check(option: Option, value: Any) -> Any:
    """Return ``value`` (normalised) if the option accepts it, else raise ConfigError."""
    if option.kind in ("path", "matrix") and is_auto(value):
        return None
    value = normalize(option, value)
    if value is None and option.auto:
        return None
    name = option.name
    if option.kind == "bool":
        if not isinstance(value, bool):
            raise ConfigError(name, f"must be true or false, got {value!r}")
    elif option.kind == "choice":
        if value not in option.choices:
            raise ConfigError(name, f"must be one of {', '.join(option.choices)}; got {value!r}")
    elif option.kind in ("int", "float"):
        if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
            raise ConfigError(name, f"must be a finite number, got {value!r}")
        if option.kind == "int" and not is_int(value):
            raise ConfigError(name, f"must be a whole number, got {value!r}")
        check_range(option, value)
        value = int(value) if option.kind == "int" else float(value)  # plain Python numbers (JSON)
    elif option.kind == "matrix":
        value = parse_matrix(name, value)
    elif option.kind == "text":
        if not isinstance(value, str):
            raise ConfigError(name, f"must be text, got {type(value).__name__}")
        if len(value) > MAX_TAG_TEXT:
            raise ConfigError(name, f"must be at most {MAX_TAG_TEXT:,} characters, got {len(value):,}")
    elif option.kind == "path":
        if not isinstance(value, (str, Path)):
            raise ConfigError(name, f"must be a path (a string), got {type(value).__name__}")
    return value


def check_range(option: Option, value: float) -> None:
    """Limits, each message naming the option and the bound."""
    name = option.name
    if option.minimum is not None and value < option.minimum:
        raise ConfigError(name, f"must be >= {_num(option.minimum)}, got {value!r}")
    if option.above is not None and value <= option.above:
        raise ConfigError(name, f"must be > {_num(option.above)}, got {value!r}")
    if option.maximum is not None and value > option.maximum:
        why = f" ({option.limit_reason})" if option.limit_reason else ""
        raise ConfigError(name, f"must be <= {_num(option.maximum)}{why}, got {value!r}")
    if name == "lambda_" and value < MIN_LAMBDA:
        raise ConfigError(name, f"must be >= {MIN_LAMBDA} (half of the candidates, rounded down, become "
                                f"parents: 1 leaves none) or 0 for auto, got {value!r}")


def check_images_per_generation(batch_size: int, population: int, what: str = "lambda_",
                                size: Optional[tuple[int, int]] = None) -> None:
    """Refuse a generation of more than MAX_IMAGES_PER_GENERATION images or, given the
    image ``size`` (width, height), more than MAX_PIXELS_PER_GENERATION pixels."""
    images = int(batch_size) * int(population)
    if images > MAX_IMAGES_PER_GENERATION:
        raise ConfigError(what, f"batch size x {what} = {batch_size} x {population} = {images:,} images "
                                f"per generation; the limit is {MAX_IMAGES_PER_GENERATION:,}")
    if size is not None and images * size[0] * size[1] > MAX_PIXELS_PER_GENERATION:
        raise ConfigError(what, f"batch size x {what} x width x height = {batch_size} x {population} x "
                                f"{size[0]} x {size[1]} = {images * size[0] * size[1]:,} pixels per generation; "
                                f"the limit is {MAX_PIXELS_PER_GENERATION:,} (1,024 images at 512x512): "
                                f"lower {what}, the batch size or the image size")


def parse_matrix(name: str, value: Any) -> Optional[list]:
    """A square list of lists of finite numbers, from JSON text, an array or lists."""
    if is_auto(value):
        return None
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as error:
            raise ConfigError(name, f"must be JSON (a list of lists): {error}") from None
        except RecursionError:
            raise ConfigError(name, "must be JSON (a list of lists of numbers); this text nests far deeper") from None
    from .prompt.weights import MAX_UNITS  # one row per unit: a larger matrix never fits

    shape = getattr(value, "shape", None)
    if shape is not None and (len(shape) != 2 or max(shape, default=0) > MAX_UNITS):
        raise ConfigError(name, f"must be N x N with N at most {MAX_UNITS} (the unit limit), got shape {tuple(shape)}")
    if isinstance(value, list) and len(value) > MAX_UNITS:
        raise ConfigError(name, f"must be N x N with N at most {MAX_UNITS} (the unit limit), got {len(value)} rows")
    rows = value.tolist() if hasattr(value, "tolist") else value
    if not isinstance(rows, list) or not rows or not all(isinstance(r, list) for r in rows):
        raise ConfigError(name, "must be a square list of lists of numbers")
    if any(len(r) != len(rows) for r in rows):
        raise ConfigError(name, f"must be square, got {len(rows)} rows of lengths "
                                f"{sorted({len(r) for r in rows})}")
    for r in rows:
        for x in r:
            if isinstance(x, bool) or not isinstance(x, (int, float)) or not math.isfinite(x):
                raise ConfigError(name, f"entries must be finite numbers, got {reprlib.repr(x)}")
    return rows


def text_to_number(option: Option, text: str) -> float | int:
    """A number typed as text (command line, WebUI textbox); ints keep their type."""
    try:
        number = float(text.strip())
    except ValueError:
        raise ConfigError(option.name, f"must be a number, got {text!r}") from None
    if option.kind == "int" and math.isfinite(number) and number.is_integer():
        return int(number)
    return number


def script_arg_names(options: Sequence[Option] = OPTIONS) -> str:
    return ", ".join(f"{i}: {o.name}" for i, o in enumerate(options))

