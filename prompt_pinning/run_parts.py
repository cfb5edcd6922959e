"""What a run is built from: the prompt vector, the targets, the loss and where it runs.

Kept apart from the loop in ``run`` so that tests and benchmarks can swap any
of them (``run`` looks them up by name at call time). ``run_target`` is public:
the images a run pins to, for scripts that score images as a run would (with
``PinningLoss.from_config``).
"""
from __future__ import annotations

from typing import Optional

import numpy as np
import torch

from .config import PinningConfig
from .rendering import Renderer


def build_vector(config: PinningConfig, renderer: Renderer):
    from .prompt_weights import PromptVector, check_zero_offsets
    from .tokenizers import COMMA_PADDING_BACKTRACK

    tokenizer = renderer.tokenizer
    # Optional on a host tokenizer: textual-inversion names -> vector counts, kept whole,
    # and the user's comma-padding backtrack (how the host chunks long prompts).
    embeddings = dict(getattr(tokenizer, "embeddings", dict)())
    backtrack = getattr(tokenizer, "comma_padding_backtrack", COMMA_PADDING_BACKTRACK)
    vector = PromptVector.from_prompts(config.positive, config.negative, tokenizer,
                                       config.unit_mode, embeddings=list(embeddings))
    check_zero_offsets(vector, tokenizer, embeddings=embeddings or None, comma_padding_backtrack=backtrack)
    return vector


def build_targets(config: PinningConfig) -> Optional[torch.Tensor]:
    if not config.targets:
        return None
    from .targets import load_targets

    return load_targets(config.targets, config.generation.width, config.generation.height)


def build_loss(config: PinningConfig, targets: Optional[torch.Tensor]):
    from .loss import PinningLoss

    return PinningLoss.from_config(config, targets)


def attach_fade_reference(loss, config: PinningConfig, renderer: Renderer, vector, settings,
                          targets: Optional[torch.Tensor] = None) -> None:
    """With the fade guard on and the unmodified prompt as the target (no target images:
    ``targets`` is None), compare each batch with that prompt's images of the same seeds
    (``fade_guard.SeedReference``)."""
    if getattr(config, "fade_guard", 0.0) and targets is None:
        from .fade_guard import baseline_reference

        loss.seed_reference = baseline_reference(renderer, vector.render(np.zeros(vector.size)), settings)


def loss_device(renderer: Renderer) -> Optional[torch.device]:
    """Where the loss scores a renderer's images: the renderer's ``device``, if it has one.

    A renderer says where its model runs (the WebUI's device, which follows
    --use-cpu and MPS); FLIP is much cheaper on a GPU. None: score the images
    where the renderer returns them.
    """
    device = getattr(renderer, "device", None)
    return None if device is None else torch.device(device)


def on_device(images: torch.Tensor, device: Optional[torch.device]) -> torch.Tensor:
    return images if device is None else images.to(device)


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
