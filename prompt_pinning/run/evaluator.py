"""Render and score prompt pairs on one seed block: the run's only contact with the model.

No file I/O. A stop request is seen before and inside every render call
(through the renderer's progress callback) and between scoring chunks.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable, Optional

import torch

from ..score.tags import tag_inputs
from ..rendering import GenerationSettings, RenderedBatch, Renderer, RenderInterrupted
from ..search.seed_blocks import block_settings, noise_keys

# Images scored per loss call: a stop request is seen between two calls, so on a CPU
# (about 0.1 s per 512x512 image) a stop waits at most a few seconds for scoring.
SCORE_CHUNK_IMAGES = 32


@dataclass
class Evaluation:
    """One prompt pair rendered and scored on one block."""

    batch: RenderedBatch
    loss: object  # a LossResult
    render_seconds: float  # this pair's share of its render call


def loss_device(renderer: Renderer) -> Optional[torch.device]:
    """Where the loss scores a renderer's images: the renderer's ``device``, if it has one
    (FLIP is much cheaper on a GPU). None: where the renderer returns them."""
    device = getattr(renderer, "device", None)
    return None if device is None else torch.device(device)


def on_device(images: torch.Tensor, device: Optional[torch.device]) -> torch.Tensor:
    return images if device is None else images.to(device)


class Evaluator:
    def __init__(self, renderer: Renderer, loss, settings: GenerationSettings,
                 should_stop: Optional[Callable[[], bool]] = None):
        self.renderer = renderer
        self.loss = loss
        self.settings = settings  # block 0: the user's seeds
        self.should_stop = should_stop or (lambda: False)
        self.device = loss_device(renderer)
        self.before_render: Optional[Callable[[], None]] = None  # the run's fingerprint check (journal)

    def use_loss(self, loss) -> None:
        """Score with ``loss``; it checks for a stop between its own chunks of work too."""
        self.loss = loss
        getattr(loss, "image_loss", loss).check_stop = self.check_stop  # a tagged loss wraps the image loss

    def check_stop(self, *_: object) -> None:
        if self.should_stop():
            raise RenderInterrupted("stop requested")

    def block(self, block: int) -> GenerationSettings:
        return block_settings(self.settings, block)

    def render(self, prompts: list[tuple[str, str]], block: int) -> tuple[list[RenderedBatch], float]:
        """One render call; the seconds are per prompt pair."""
        self.check_stop()
        if self.before_render is not None:
            self.before_render()
        started = time.perf_counter()
        batches = self.renderer.render(prompts, self.block(block), self.check_stop)
        if len(batches) != len(prompts):
            raise RuntimeError(f"renderer {self.renderer.name!r} returned {len(batches)} batches "
                               f"for {len(prompts)} prompts")
        return batches, (time.perf_counter() - started) / max(1, len(prompts))

    def score(self, batches: list[RenderedBatch], block: int) -> list:
        """Score batches of one block a few dozen images at a time, checking for a stop before each call."""
        keys = noise_keys(self.block(block))
        per_call = max(1, SCORE_CHUNK_IMAGES // max(1, self.settings.batch_size))
        losses: list = []
        for start in range(0, len(batches), per_call):
            self.check_stop()
            chunk = batches[start:start + per_call]
            losses += self.loss.evaluate_many([on_device(b.images, self.device) for b in chunk],
                                              [b.traces for b in chunk], seeds_list=[keys] * len(chunk),
                                              **tag_inputs(self.loss, chunk))
        return losses

    def evaluate(self, prompts: list[tuple[str, str]], block: int,
                 on_rendered: Optional[Callable[[list[RenderedBatch]], None]] = None) -> list[Evaluation]:
        """Render, then score; ``on_rendered(batches)`` runs in between (the baseline sets the target)."""
        batches, seconds = self.render(prompts, block)
        if on_rendered is not None:
            on_rendered(batches)
        losses = self.score(batches, block)
        return [Evaluation(batch, loss, seconds) for batch, loss in zip(batches, losses, strict=True)]

    def set_targets(self, images: torch.Tensor, exclude_same_seed: bool) -> None:
        """The baseline's batch (block 0) as the target, leaving same-noise pairs out when asked."""
        keys = noise_keys(self.block(0)) if exclude_same_seed else None
        self.loss.set_targets(on_device(images, self.device), seeds=keys)
