"""How the Script's panel presents the options: groups, plain labels and one-line help.

Only the WebUI panel reads this; the option schema (``prompt_pinning.options``)
keeps the names, order and defaults that ``script_args``, the command line and
the docs use. Each label keeps the CMA-ES name beside the plain one where they
differ; the schema's full hint stays as the field's tooltip.
"""
from __future__ import annotations

from typing import Optional

from prompt_pinning.options import MIN_LAMBDA, OPTION, OPTIONS

INTRO = ("Searches the weight of every word of your prompt so that its images stay like the target "
         "from seed to seed; the result is the pinned prompt and a report.")
BASIC = "Basic"

# (group, {option: (label, one-line help)}), in panel order; "Basic" is the only open group.
# Label None: the schema's label is already plain. An option missing here (a newer one) goes
# to the last group with the schema's label.
LAYOUT: tuple[tuple[str, dict[str, tuple[Optional[str], str]]], ...] = (
    (BASIC, {
        "targets": (None, "Empty: pin to your prompt's own first batch."),
        "unit_mode": (None, "One weight per word, or per comma-separated phrase."),
        "generations": ("Generations", "Search rounds; empty = auto (shown below)."),
    }),
    ("Target details", {
        "target_mask": (None, "White pixels count, black ones are ignored."),
        "target_mask_source": ("Mask source", "Where the mask comes from."),
        "wanted_tags": (None, "Tags the images should show, e.g. red, (circle:1.5)."),
        "unwanted_tags": (None, "Tags the images should not show."),
        "tag_loss_weight": (None, "How much the tags count against the images."),
        "tag_loss_only": ("Tags only", "Score by the tags alone, not the images."),
        "tagger": (None, "What reads the tags from the images."),
        "network_units": ("Pin LoRA strengths", "Also pin the strengths of <lora:...> and <hypernet:...> tags."),
    }),
    ("Scoring", {
        "validation_batches": (None, "Held-out seed batches that choose the result; 0 = none."),
        "seed_schedule": (None, "rotating: fresh seeds each round; fixed: your seeds only."),
        "loss_variant": ("Image pairs compared (loss variant)", "Which image pairs the loss compares."),
        "fade_guard": (None, "Charge for a faded subject; 0 = off."),
        "fade_tolerance": (None, "Share of contrast a batch may lose for free."),
        "fade_guard_form": (None, "What the fade guard measures."),
    }),
    ("Search (CMA-ES)", {
        "lambda_": ("Candidates per generation (lambda_)", "Prompts tried each round; empty = auto."),
        "mu": ("Parents kept (mu)", "Best candidates each round learns from; empty = auto."),
        "initial_std": ("Initial step size (sigma)", "How far the first candidates stray from your weights."),
        "initial_radius": ("Initial spread (radius)", "Random start around your weights."),
        "cma_seed": ("Search seed (CMA seed)", "Same seed, same run; empty = from the image seed."),
        "weights": ("Parent weighting (recombination weights)", "How the kept parents are weighted."),
        "start_from": (None, "RUN_FOLDER:CLUSTER of an earlier run; empty = random start."),
        "cma_logging": ("Log each generation to the console (CMA logging)", "One line per round."),
    }),
    ("CMA-ES constants (experts)", {
        "cs": ("Step-size cumulation (cs)", "Empty = auto."),
        "damps": ("Step-size damping (damps)", "Empty = auto."),
        "ccum": ("Covariance cumulation (ccum)", "Empty = auto."),
        "ccov1": ("Rank-one learning rate (ccov1)", "Empty = auto."),
        "ccovmu": ("Rank-mu learning rate (ccovmu)", "Empty = auto."),
        "cmatrix": ("Initial covariance (cmatrix)", "N x N JSON matrix; empty = identity."),
    }),
    ("Stay close to your weights", {
        "size_limit": ("Distance limit (size limiter)", "Keep weights within this distance; 0 = no limit."),
        "size_limit_error": ("Distance tolerance (size limit error)", "Empty = auto."),
        "size_limit_weight": ("Penalty past the limit (size limit weight)", "Empty = auto."),
    }),
    ("Hyperbatch", {
        "hyperbatch_weights_enabled": ("Weigh pairs by the hyperbatch tree", "Hyperbatch samplers only, unless forced."),
        "hyperbatch_weights_force_allowed": ("Also with plain samplers", "Each image is then its own root."),
        "hyperbatch_weight_type": ("Weight type", "How the weight grows with the tree level."),
        "hyperbatch_weight_scale": ("Weight scale", "Scale of the hyperbatch weights."),
    }),
    ("Output and resume", {
        "max_images_per_call": ("Images per sampler call", "Empty = auto (from free memory)."),
        "resume": (None, "Continue a stopped run; empty = a new run."),
    }),
)

LABELS = {name: label for _, fields in LAYOUT for name, (label, _) in fields.items() if label is not None}
HELP = {name: text for _, fields in LAYOUT for name, (_, text) in fields.items()}
GROUP_OF = {name: group for group, fields in LAYOUT for name in fields}

OPTION_LABELS = {option.name: option.label for option in OPTIONS}


def label(name: str) -> str:
    return LABELS.get(name) or OPTION_LABELS.get(name, name)


def elem_suffix(group: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in group.lower()).strip("_")


class InvalidSetting(ValueError):
    """A bad setting as the panel shows it (the host prints the class name, then the message)."""


def accepts(name: str) -> str:
    """What the field takes, in the panel's words; empty when the reason says it all."""
    option = OPTION.get(name)
    if option is None:
        return ""
    if option.choices:
        return "one of " + ", ".join(option.choices)
    if option.kind in ("int", "float"):
        kind = "a whole number" if option.kind == "int" else "a number"
        limits = f" {option.range_text()}" if option.range_text() else ""
        if option.auto and option.minimum == 0 and option.maximum is not None:  # 0 is auto: the range is above it
            top = _plain(option.maximum)
            low = MIN_LAMBDA if name == "lambda_" else 1
            limits = f" from {low} to {top}" if option.kind == "int" else f" above 0, up to {top}"
        return kind + limits + (", or empty for auto" if option.auto else "")
    return ""


def _plain(number: float) -> str:
    return f"{int(number):,}" if float(number).is_integer() else f"{number:g}"


def setting_error(name: str, reason: str) -> InvalidSetting:
    """The panel's error for a bad value of option ``name``: its label, the problem, what it takes."""
    reason = reason.replace(" or 0 for auto", " or empty for auto")
    accepted = accepts(name)
    # a value out of range or of the wrong kind: say what the field takes (a limit shared with
    # other settings, such as images per generation, explains itself)
    tail = f" It takes {accepted}." if accepted and "must be" in reason and "one of" not in reason else ""
    return InvalidSetting(f"{label(name)}: {reason.rstrip('.')}.{tail}")
