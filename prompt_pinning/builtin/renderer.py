"""BuiltinRenderer: the engine's default renderer, with no downloaded weights.

One ``render`` call takes a whole generation of individuals. Their rows
(individual x image) are packed into as few sampler calls as
``max_images_per_call`` allows; each row carries its own prompt pair's
conditioning (conditioning.py), and image i of every individual starts
from the noise of seed ``seed + i``. Hyperbatch samplers get whole
individuals per call (``group_size`` = batch size), so each keeps its own
branching tree, and the traces come back per individual. Packing changes
no result, bit for bit.

Like Stable Diffusion, the model diffuses in a small latent space (see
latents.py): seeds, noise, samplers and img2img start images all live on
the latent grid (4 x H/4 x W/4, sigmas 0.002..80), and only the final
latents are decoded to float32 images in [0, 1]. It runs on the CPU. Each
distinct prompt pair draws the layouts under its geometry once (cached);
that costs time in proportion to width x height.
"""
from __future__ import annotations

import logging
import math
import os
from functools import lru_cache
from typing import Any, Callable, Optional, Sequence

import torch

import hyperbatch
from hyperbatch.noise import BrownianNoise
from hyperbatch.schedule import image_steps

from ..rendering import (GenerationSettings, ProgressCallback, RenderedBatch, RenderInterrupted,
                         basic_infotext, check_prompt_pairs)
from .conditioning import conditioning_rows
from .denoiser import LayoutDenoiser, check_size, one_thread
from .latents import LATENT_CHANNELS, encode, latent_size
from .seeds import batch_noise
from .tags import TAGS, tag_posteriors
from .tokenizer import WordTokenizer

log = logging.getLogger(__name__)

CPU_MAX_IMAGES = 256  # more rows per call stop paying off on a CPU
MEMORY_SHARE = 0.25  # share of available memory one call may use
WORKING_COPIES = 16  # latent-sized tensors a row needs during sampling
DECODE_COPIES = 4  # image-sized tensors a row needs while decoding
LAYOUT_VALUES = 3 * 20  # float64 values per layout a row holds during a step (3 channels, cond and uncond)
# Brownian-tree resolution: the power of ten at most this share of the
# schedule's smallest sigma gap. Query times then move by under 2.5% of any
# interval an SDE step asks for, and queries get about twice as fast.
SDE_TOL_SHARE = 0.05

Row = tuple[int, int]  # (individual, image index)


def available_memory_bytes() -> Optional[int]:
    """Physical memory available now, or None where the OS does not say."""
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def default_max_images_per_call(width: int, height: int, layout_count: int) -> int:
    """Rows per sampler call that fit MEMORY_SHARE of available memory (at most CPU_MAX_IMAGES)."""
    h, w = latent_size(width, height)
    per_image = (4 * (WORKING_COPIES * LATENT_CHANNELS * h * w + DECODE_COPIES * 3 * width * height)
                 + 8 * LAYOUT_VALUES * layout_count)
    available = available_memory_bytes() or 2 * 1024**3
    return max(1, min(CPU_MAX_IMAGES, int(MEMORY_SHARE * available // per_image)))


def plan_calls(individuals: int, batch_size: int, max_images: int, whole_individuals: bool) -> list[list[Row]]:
    """Split all (individual, image) rows into sampler calls of at most max_images rows.

    With ``whole_individuals`` a call holds complete individuals only (at least
    one, even when its batch alone exceeds max_images).
    """
    rows = [(p, i) for p in range(individuals) for i in range(batch_size)]
    per_call = max(1, max_images // batch_size) * batch_size if whole_individuals else max_images
    return [rows[k:k + per_call] for k in range(0, len(rows), per_call)]


def sde_tol(positive_sigmas: torch.Tensor) -> float:
    """Brownian-tree time resolution for a schedule's (descending) positive sigmas."""
    if len(positive_sigmas) < 2:
        gap = float(positive_sigmas.max())
    else:
        gap = float((positive_sigmas[:-1] - positive_sigmas[1:]).abs().min())
    return 10.0 ** math.floor(math.log10(SDE_TOL_SHARE * gap))


def truncated_sigmas(full: torch.Tensor, denoising_strength: float) -> torch.Tensor:
    """The tail of a schedule an img2img run uses: about strength * steps steps."""
    steps = len(full) - 1
    kept = min(steps, max(1, int(denoising_strength * steps)))
    return full[steps - kept:]


def run_sigmas(settings: GenerationSettings, spec: "hyperbatch.SamplerSpec", sigma_min: float, sigma_max: float,
               device="cpu") -> torch.Tensor:
    """The run's schedule ("automatic": the sampler's own, else Karras), cut for img2img."""
    scheduler = str(settings.scheduler).lower()
    if scheduler == "automatic":
        scheduler = spec.scheduler or "karras"
    full = hyperbatch.make_sigmas(scheduler, settings.steps, sigma_min, sigma_max, device=device)
    return truncated_sigmas(full, settings.denoising_strength)


def sampler_kwargs(spec: "hyperbatch.SamplerSpec", x: torch.Tensor, sigmas: torch.Tensor, seeds: Sequence[int],
                   batch_size: int, branch_noise: torch.Tensor, traces: Optional[list]) -> dict:
    """A call's sampler keywords: per-image seeded noise (SDE, ancestral) and the hyperbatch ones."""
    kwargs = {}
    if spec.needs_noise_sampler:
        positive = sigmas[sigmas > 0]
        # One positive sigma (a one-step img2img) steps to 0 without noise: any range will do.
        low, high = float(positive.min()), max(float(positive.max()), 2.0 * float(positive.min()))
        kwargs["noise_sampler"] = BrownianNoise(x, low, high, seeds=list(seeds), tol=sde_tol(positive.cpu()))
    if spec.hyperbatch:
        kwargs.update(group_size=batch_size, branch_noise=branch_noise, trace_out=traces)
    return kwargs


class BuiltinRenderer:
    """Renders with the exact denoiser of the built-in image set (CPU by default)."""

    name = "builtin"

    def __init__(self, max_images_per_call: Optional[int] = None,
                 should_stop: Optional[Callable[[], bool]] = None, tags: bool = False):
        if max_images_per_call is not None and (
            isinstance(max_images_per_call, bool) or not isinstance(max_images_per_call, int)
            or max_images_per_call < 1
        ):
            raise ValueError(f"max_images_per_call must be a whole number >= 1 or None (auto), "
                             f"got {max_images_per_call!r}")
        self.max_images_per_call = max_images_per_call
        self.should_stop = should_stop
        self.tokenizer = WordTokenizer()
        self.tags = bool(tags)  # return every tag's posterior with the images (builtin/tags.py)

    def host_settings(self) -> dict[str, Any]:
        """The run's fingerprint here: the built-in model has no options; its weights are the code's."""
        return {"model": "builtin"}

    def extra_networks(self) -> dict[str, tuple[str, ...]]:
        """The model's own networks by kind (builtin/networks.py); it has no hypernetworks."""
        from .networks import NETWORKS

        return {"lora": tuple(NETWORKS), "hypernet": ()}

    def network_strength_range(self) -> tuple[float, float]:
        from .networks import STRENGTH_RANGE

        return STRENGTH_RANGE

    def tagger(self, name: str = "auto"):
        """The exact tagger of this model (``name`` "auto" or "builtin"); turns the tag posteriors on."""
        from ..score.tags import TaggerUnavailable
        from .tags import BuiltinTagger

        if name not in ("auto", "builtin"):
            raise TaggerUnavailable(f"tagger: {name!r} runs in the WebUI only; the built-in model tags with "
                                    "'builtin' (or 'auto')")
        self.tags = True
        return BuiltinTagger()

    def denoiser(self, width: int, height: int) -> LayoutDenoiser:
        """The latent-space denoiser (and decoder) for images of this size."""
        check_size(width, height)  # before the cache sees the values
        return _shared_denoiser(width, height)

    def sigmas(self, settings: GenerationSettings, spec: "hyperbatch.SamplerSpec") -> torch.Tensor:
        model = self.denoiser(settings.width, settings.height)
        return run_sigmas(settings, spec, model.sigma_min, model.sigma_max)

    def render(self, prompts: Sequence[tuple[str, str]], settings: GenerationSettings,
               progress: Optional[ProgressCallback] = None, init_images: Optional[torch.Tensor] = None,
               should_stop: Optional[Callable[[], bool]] = None) -> list[RenderedBatch]:
        """One RenderedBatch per (positive, negative) pair, images in seed order.

        ``init_images`` ((B, 3, H, W) or (3, H, W), [0, 1]) with
        ``settings.denoising_strength`` < 1 gives img2img.
        """
        prompts = check_prompt_pairs(prompts)
        spec = hyperbatch.get_sampler(settings.sampler)
        start = check_render_settings(settings, init_images)
        if not prompts:
            return []
        with one_thread():  # small operations: threads would only synchronise
            return self._render(prompts, settings, spec, start, progress, should_stop)

    def _render(self, prompts, settings, spec, start, progress, should_stop) -> list[RenderedBatch]:
        should_stop = should_stop or self.should_stop
        model = self.denoiser(settings.width, settings.height)
        sigmas = self.sigmas(settings, spec)
        batch = settings.batch_size
        shape = (LATENT_CHANNELS, *latent_size(settings.width, settings.height))
        unit = batch_noise(settings.seeds(), shape, [settings.subseed + i for i in range(batch)],
                           settings.subseed_strength)
        start = torch.zeros_like(unit) if start is None else encode(start).expand_as(unit)
        cond, uncond = conditioning_rows(prompts)

        max_images = self.max_images_per_call or default_max_images_per_call(
            settings.width, settings.height, model.layout_count)
        calls = plan_calls(len(prompts), batch, max_images, spec.hyperbatch)
        steps = len(sigmas) - 1
        per_call = [_call_image_steps(len(c), batch, steps, spec.hyperbatch) for c in calls]
        ticker = _Ticker(sum(per_call), progress, should_stop)
        log.debug("builtin render: %d individuals x %d images in %d sampler calls",
                  len(prompts), batch, len(calls))

        out = torch.empty((len(prompts), batch, 3, settings.height, settings.width))
        posteriors = torch.empty((len(prompts), batch, len(TAGS)), dtype=torch.float64) if self.tags else None
        traces = [] if spec.hyperbatch else None
        for call, call_steps in zip(calls, per_call):
            ticker.check_stop()
            who = torch.tensor([p for p, _ in call])
            which = torch.tensor([i for _, i in call])
            x = start[which] + unit[which] * sigmas[0]
            kwargs = sampler_kwargs(spec, x, sigmas, [settings.seed + i for _, i in call], batch, unit[which],
                                    traces)
            extra = {"cond": cond[who], "uncond": uncond[who], "cond_scale": float(settings.cfg_scale)}
            result = spec.function(model, x, sigmas, extra_args=extra, callback=ticker.callback,
                                   disable=True, **kwargs)
            out[who, which] = model.decode(result, cond[who])
            if posteriors is not None:
                posteriors[who, which] = tag_posteriors(model, result, cond[who])
            ticker.finish_call(call_steps)

        trace = traces[0] if traces else None
        return [
            RenderedBatch(images=out[p].contiguous(), seeds=settings.seeds(),
                          traces=None if trace is None else trace.copy(),
                          infotexts=[basic_infotext(pos, neg, settings, seed, "builtin") for seed in settings.seeds()],
                          tag_probabilities=None if posteriors is None else
                          {tag: posteriors[p, :, k].numpy().copy() for k, tag in enumerate(TAGS)})
            for p, (pos, neg) in enumerate(prompts)
        ]


@lru_cache(maxsize=4)
def _shared_denoiser(width: int, height: int) -> LayoutDenoiser:
    return LayoutDenoiser(width, height)


class _Ticker:
    """Turns the samplers' per-call callbacks into run-wide progress and stop checks."""

    def __init__(self, total: int, progress: Optional[ProgressCallback], should_stop):
        self.total, self.done = total, 0
        self.progress, self.should_stop = progress, should_stop

    def check_stop(self) -> None:
        if self.should_stop is not None and self.should_stop():
            raise RenderInterrupted("render stopped on request")

    def callback(self, info: dict) -> None:
        if self.progress is not None:
            self.progress(self.done + int(info["image_steps_done"]), self.total)
        self.check_stop()

    def finish_call(self, image_steps_in_call: int) -> None:
        self.done += image_steps_in_call


def _call_image_steps(rows: int, batch: int, steps: int, is_hyperbatch: bool) -> int:
    if is_hyperbatch:
        return (rows // batch) * image_steps(batch, steps)
    return rows * steps


def check_render_settings(settings: GenerationSettings, init_images: Optional[torch.Tensor],
                          min_size: int = 8) -> Optional[torch.Tensor]:
    """Validate sizes, steps and img2img input; return init images as (B or 1, 3, H, W) or None."""
    for name in ("batch_size", "steps", "width", "height"):
        value = getattr(settings, name)
        low = min_size if name in ("width", "height") else 1
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ValueError(f"{name} must be a whole number >= {low}, got {value!r}")
    if not 0.0 < settings.denoising_strength <= 1.0:
        raise ValueError(f"denoising_strength must be in (0, 1], got {settings.denoising_strength!r}")
    if init_images is None:
        if settings.denoising_strength < 1.0:
            raise ValueError("denoising_strength below 1 needs init_images (img2img)")
        return None
    init = torch.as_tensor(init_images, dtype=torch.float32)
    init = init[None] if init.ndim == 3 else init
    expected = (3, settings.height, settings.width)
    if init.ndim != 4 or tuple(init.shape[1:]) != expected or init.shape[0] not in (1, settings.batch_size):
        raise ValueError(f"init_images must be (3, H, W) or (1 or batch_size, 3, H, W) with (H, W) = "
                         f"({settings.height}, {settings.width}), got {tuple(init.shape)}")
    return init
