"""What a run is built from: the prompt vector, the targets, the loss and the optimizer.

``Builders`` holds the builders; ``run_pinning`` takes one (the defaults
below), so that tests and benchmarks pass their own. ``run_target`` is public:
the images a run pins to, for scripts that score images as a run would (with
``PinningLoss.from_config``).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from typing import Any, Callable, Optional

import numpy as np
import torch

from ..config import PinningConfig
from ..search.optimizer import make_optimizer
from ..rendering import Renderer

logger = logging.getLogger(__name__)


def build_vector(config: PinningConfig, renderer: Renderer):
    from ..prompt.weights import PromptVector, check_zero_offsets
    from ..prompt.tokenizers import COMMA_PADDING_BACKTRACK
    from ..prompt.networks import has_network_tags, strength_range

    tokenizer = renderer.tokenizer
    # Optional on a host tokenizer: textual-inversion names -> vector counts, kept whole,
    # and the user's comma-padding backtrack (how the host chunks long prompts).
    embeddings = dict(getattr(tokenizer, "embeddings", dict)())
    backtrack = getattr(tokenizer, "comma_padding_backtrack", COMMA_PADDING_BACKTRACK)
    networks = bool(getattr(config, "network_units", False))
    # a host that applies only the positive prompt's networks (A1111, Forge) says so
    negative_networks = bool(getattr(renderer, "negative_networks", True))
    vector = PromptVector.from_prompts(config.positive, config.negative, tokenizer,
                                       config.unit_mode, embeddings=list(embeddings),
                                       networks=networks, strength_range=strength_range(renderer),
                                       negative_networks=negative_networks)
    if networks and not negative_networks and has_network_tags(config.negative):
        logger.warning("network units: the host does not apply extra networks of the negative prompt (their "
                       "tags reach its text encoder as text); they stay as written")
    if networks:
        check_network_names(vector, renderer)
    check_zero_offsets(vector, tokenizer, embeddings=embeddings or None, comma_padding_backtrack=backtrack)
    return vector


def check_network_names(vector, renderer: Renderer) -> None:
    """Refuse a network the renderer does not have, where it lists them (``extra_networks()``:
    kind -> names); a renderer without the list leaves the check to its host."""
    from ..prompt.networks import check_names

    listing = getattr(renderer, "extra_networks", None)
    if callable(listing):
        check_names(vector.network_units(), listing())


def build_targets(config: PinningConfig) -> Optional[torch.Tensor]:
    if not config.targets:
        return None
    from ..score.targets import load_targets

    return load_targets(config.targets, config.generation.width, config.generation.height)


def build_loss(config: PinningConfig, targets: Optional[torch.Tensor]):
    from ..score.loss import PinningLoss

    if targets is not None:  # the fade guard keeps the unmodified prompt's look; target images set it instead
        config = replace(config, fade_guard=0.0)
    return PinningLoss.from_config(config, targets, mask=None)  # the run sets its own mask (run/mask.py)


@dataclass(frozen=True)
class Builders:
    """How a run makes its prompt vector, targets and loss (each an argument of ``run_pinning``)."""

    vector: Callable[[PinningConfig, Renderer], Any] = build_vector
    targets: Callable[[PinningConfig], Optional[torch.Tensor]] = build_targets
    loss: Callable[[PinningConfig, Optional[torch.Tensor]], Any] = build_loss
    optimizer: Callable[[PinningConfig, int, int, Any], Any] = make_optimizer  # (config, N, CMA seed, start)


def run_target(config: PinningConfig, renderer: Renderer) -> torch.Tensor:
    """The (N, 3, H, W) images a run of ``config`` pins to.

    The config's target images when it has some (resized to the generation
    size), otherwise the unmodified prompt's batch rendered by ``renderer``
    with the run's seeds: generation 0 of a run.
    """
    config.validate()
    targets = build_targets(config)
    if targets is not None:
        return targets
    vector = build_vector(config, renderer)
    (batch,) = renderer.render([vector.render(np.zeros(vector.size))], config.generation)
    return batch.images
