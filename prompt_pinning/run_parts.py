"""What a run is built from: the prompt vector, the targets and the loss.

Kept apart from the loop in ``run`` so that tests and benchmarks can swap any
of them (``run`` looks them up by name at call time).
"""
from __future__ import annotations

from typing import Optional

import torch

from .config import PinningConfig
from .rendering import Renderer


def build_vector(config: PinningConfig, renderer: Renderer):
    from .prompt_weights import PromptVector, check_zero_offsets

    # Optional on a host tokenizer: textual-inversion names -> vector counts, kept whole.
    embeddings = dict(getattr(renderer.tokenizer, "embeddings", dict)())
    vector = PromptVector.from_prompts(config.positive, config.negative, renderer.tokenizer,
                                       config.unit_mode, embeddings=list(embeddings))
    check_zero_offsets(vector, renderer.tokenizer, embeddings=embeddings or None)
    return vector


def build_targets(config: PinningConfig) -> Optional[torch.Tensor]:
    if not config.targets:
        return None
    from .targets import load_targets

    return load_targets(config.targets, config.generation.width, config.generation.height)


LOSS_DEVICE = "cuda" if torch.cuda.is_available() else "cpu"


def build_loss(config: PinningConfig, targets: Optional[torch.Tensor]):
    from .loss import PinningLoss

    return PinningLoss(
        targets,
        weight_type=config.hyperbatch_weight_type,
        weight_scale=config.hyperbatch_weight_scale,
        hyperbatch_weights=config.hyperbatch_weights_enabled,
        force_allowed=config.hyperbatch_weights_force_allowed,
        variant=config.loss_variant,
    )
