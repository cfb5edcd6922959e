"""The renderer interface: how the engine asks any backend for images.

One call renders many individuals (prompt pairs) with shared settings, so a
backend can pack a whole generation into as few sampler calls as it can hold.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Callable, Optional, Protocol, Sequence, runtime_checkable

import numpy as np
import torch

from .options import GENERATION_DEFAULTS


class RenderInterrupted(Exception):
    """Raised by a renderer when the host asked to stop (interrupt or skip)."""


@dataclass(frozen=True)
class GenerationSettings:
    """Settings shared by every individual of a run.

    Image i of every individual uses seed ``seed + i`` (common random numbers).
    Unset fields take ``GENERATION_DEFAULTS``, the command line's (sized for the
    built-in model); the WebUI always sets every field from its request.
    """

    seed: int
    subseed: int = GENERATION_DEFAULTS["subseed"]
    subseed_strength: float = 0.0
    batch_size: int = GENERATION_DEFAULTS["batch_size"]
    steps: int = GENERATION_DEFAULTS["steps"]
    cfg_scale: float = GENERATION_DEFAULTS["cfg_scale"]
    width: int = GENERATION_DEFAULTS["width"]
    height: int = GENERATION_DEFAULTS["height"]
    sampler: str = GENERATION_DEFAULTS["sampler"]
    scheduler: str = GENERATION_DEFAULTS["scheduler"]
    denoising_strength: float = 1.0  # below 1 only with init images (img2img)

    def seeds(self) -> list[int]:
        return [self.seed + i for i in range(self.batch_size)]

    def with_(self, **changes) -> "GenerationSettings":
        return replace(self, **changes)

    def to_dict(self) -> dict:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


@dataclass
class RenderedBatch:
    """One individual's images, in seed order."""

    images: torch.Tensor  # (B, 3, H, W), float32 sRGB in [0, 1]
    seeds: list[int]
    # (B, K) ancestor index of each image at doubling level K=1..K (column 0 is
    # the root); None for plain samplers.
    traces: Optional[np.ndarray] = None
    infotexts: list[str] = field(default_factory=list)  # host infotext per image, if any
    # The host's prompt parsing and text encoding for this individual (its share of
    # the render call; already part of the render time), when the renderer measures it.
    prompt_seconds: Optional[float] = None
    # tag -> (B,) probability of each image, for a renderer that knows its tags' posterior (tags.py)
    tag_probabilities: Optional[dict] = None


@runtime_checkable
class Tokenizer(Protocol):
    """Text to token ids and token strings, as the host model sees them.

    ``encode`` returns the ids of the text alone, without start and end tokens.
    """

    def encode(self, text: str) -> list[int]: ...

    def token_strings(self, ids: Sequence[int]) -> list[str]: ...


ProgressCallback = Callable[[int, int], None]  # (done, total) in image-steps


def check_prompt_pairs(prompts) -> list[tuple[str, str]]:
    """The ``prompts`` argument of ``Renderer.render``, checked: (positive, negative) strings."""
    checked = []
    for k, pair in enumerate(prompts):
        if not (isinstance(pair, (tuple, list)) and len(pair) == 2 and all(isinstance(s, str) for s in pair)):
            raise ValueError(f"prompts[{k}] must be a (positive, negative) pair of strings, got {pair!r}")
        checked.append((pair[0], pair[1]))
    return checked


def basic_infotext(positive: str, negative: str, settings: GenerationSettings, seed: int, model: str) -> str:
    """A1111-style infotext for a renderer without a host to write one."""
    return (f"{positive}\nNegative prompt: {negative}\nSteps: {settings.steps}, Sampler: {settings.sampler}, "
            f"Schedule type: {settings.scheduler}, CFG scale: {settings.cfg_scale}, Seed: {seed}, "
            f"Size: {settings.width}x{settings.height}, Model: {model}")


@runtime_checkable
class Renderer(Protocol):
    """A backend that turns prompt pairs into images.

    ``render`` returns one RenderedBatch per prompt pair, in the order given.
    It may raise RenderInterrupted; any other exception is a render failure.
    """

    name: str
    tokenizer: Tokenizer

    def render(
        self,
        prompts: Sequence[tuple[str, str]],
        settings: GenerationSettings,
        progress: Optional[ProgressCallback] = None,
    ) -> list[RenderedBatch]: ...
