"""DiffusersRenderer: the engine's renderer over a diffusers Stable Diffusion model (SD1.x, SDXL).

Prompts are weighted as A1111 weights them (emphasis.py, text.py), so a pinned
prompt means the same weights here as in the WebUI. Sampling runs through the
project's samplers (``hyperbatch.SAMPLERS``: plain and hyperbatch), with the
UNet wrapped as a k-diffusion-style denoiser (denoiser.py).

Seeds: image i of every individual starts from the unit noise of seed
``seed + i``, drawn on the CPU by its own generator, as the built-in renderer
draws it (``builtin.seeds.batch_noise``; variation seeds too); so an image does
not depend on packing or on the device. These are not the WebUI's noise
values (A1111 draws on the GPU by default), so images differ from the WebUI's
for the same seed; the weights mean the same. SDE and hyperbatch noise is
seeded per image as well.

One ``render`` packs the rows (individual x image) of a whole generation into as
few sampler calls as ``max_images_per_call`` allows (whole individuals for
hyperbatch samplers); out of GPU memory, a call is retried at half the size.
A prompt and its negative are padded with empty chunks to the same number of
75-token chunks (A1111's "pad prompt/negative prompt to the same length"
option; by default the WebUI instead runs them in separate UNet calls). SDXL,
as in A1111: an empty negative prompt gives zero embeddings (context and
pooled), and the size conditioning is (height, width), crop (0, 0), (height, width).
img2img: ``init_images`` with ``settings.denoising_strength`` below 1; the start
latents are the VAE encoder's mean (A1111 samples from that distribution).
"""
from __future__ import annotations

import contextlib
import hashlib
import logging
import time
from collections import defaultdict
from typing import Any, Callable, Optional, Sequence

import torch

import hyperbatch
from hyperbatch.schedule import image_steps

from ..builtin.renderer import check_render_settings, run_sigmas, sampler_kwargs
from ..builtin.seeds import batch_noise
from ..prompt.attention import strip_extra_networks
from ..rendering import (GenerationSettings, ProgressCallback, RenderedBatch, RenderInterrupted,
                         basic_infotext, check_prompt_pairs)
from .denoiser import UNetDenoiser
from .text import Encoded, PromptEncoder

log = logging.getLogger(__name__)

MEMORY_SHARE = 0.5  # share of free accelerator memory one sampler call may plan to use
ACTIVATION_FACTOR = 80  # live activation values per latent pixel, per UNet base channel (an upper estimate)
MAX_AUTO_IMAGES = 256
CPU_MAX_IMAGES = 32  # the CPU gains nothing from bigger calls
VAE_BATCH = 8  # images per VAE decode


class StageClock:
    """Seconds spent per named stage, for benchmarks: off (a no-op) unless ``enabled``; when on it
    synchronizes CUDA at stage edges so times are real, which slows rendering."""

    def __init__(self, device: torch.device | str = "cpu", enabled: bool = False):
        self.cuda = torch.device(device).type == "cuda"
        self.enabled = enabled
        self.seconds: dict[str, float] = defaultdict(float)

    def sync(self) -> None:
        if self.enabled and self.cuda:
            torch.cuda.synchronize()

    @contextlib.contextmanager
    def stage(self, name: str):
        if not self.enabled:
            yield
            return
        self.sync()
        start = time.perf_counter()
        try:
            yield
        finally:
            self.sync()
            self.seconds[name] += time.perf_counter() - start

    def snapshot(self) -> dict[str, float]:
        return dict(self.seconds)


def default_max_images_per_call(device: torch.device, base_channels: int, latent_pixels: int,
                                dtype_bytes: int) -> int:
    """Images per sampler call that fit MEMORY_SHARE of free memory (2 UNet rows an image, CFG)."""
    per_image = 2 * latent_pixels * base_channels * ACTIVATION_FACTOR * dtype_bytes
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return max(1, min(MAX_AUTO_IMAGES, int(MEMORY_SHARE * free // per_image)))
    return CPU_MAX_IMAGES


def vae_dtype(vae_config, dtype: torch.dtype) -> torch.dtype:
    """The VAE's dtype for a model run in ``dtype``: float32 where its config asks (``force_upcast``, as the
    SDXL VAE does: it overflows to NaN in float16)."""
    if dtype == torch.float16 and getattr(vae_config, "force_upcast", False):
        return torch.float32
    return dtype


def images_per_call(max_images: int, batch: int, whole_individuals: bool) -> int:
    """Rows per call: whole individuals for hyperbatch samplers (at least one)."""
    return max(1, max_images // batch) * batch if whole_individuals else max(1, max_images)


def weights_hash(modules, values: int = 64) -> str:
    """A short hash of up to ``values`` evenly spaced numbers of every parameter of every module: cheap on
    any model size, and changed by a change anywhere (a merged LoRA, say)."""
    digest = hashlib.sha256()
    picked = []
    for module in modules:
        for parameter in module.parameters():
            flat = parameter.detach().flatten()
            where = torch.linspace(0, flat.numel() - 1, min(values, flat.numel()), device=flat.device).round().long()
            picked.append(flat[where].float())
            digest.update(str(tuple(parameter.shape)).encode())
    digest.update(torch.cat(picked).cpu().numpy().tobytes())
    return digest.hexdigest()[:16]


def _never_back(progress: Optional[ProgressCallback]) -> Optional[ProgressCallback]:
    """``progress`` without the reports that would go back below one already made."""
    if progress is None:
        return None
    highest = [0]

    def report(done: int, total: int) -> None:
        if done >= highest[0]:
            highest[0] = done
            progress(done, total)
    return report


def _refuse_extra_networks(text: str, which: str) -> None:
    _, _, tags = strip_extra_networks(text)
    if tags:
        position, tag = tags[0]
        raise ValueError(f"{which}: {tag} at character {position}: the diffusers renderer loads no LoRA or "
                         "hypernetwork files; remove the tag (or render through a WebUI)")


def _whole_number(name: str, value, low: int = 1, none_ok: bool = False) -> None:
    if none_ok and value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ValueError(f"{name} must be a whole number >= {low}{' or None (auto)' if none_ok else ''}, "
                         f"got {value!r}")


class DiffusersRenderer:
    """A Renderer over a diffusers UNet, VAE and CLIP text encoder(s); see the module docstring.

    Build one with ``load_diffusers_renderer(path)``, or from loaded modules:
    ``text`` is a PromptEncoder; ``scheduler_config`` the pipeline scheduler's
    config (training noise schedule and prediction type); ``model_name`` goes
    into infotexts and the run's fingerprint.
    """

    name = "diffusers"

    def __init__(self, unet, vae, text: PromptEncoder, scheduler_config: Optional[dict] = None, *,
                 model_name: str = "diffusers", device=None, dtype: Optional[torch.dtype] = None,
                 max_images_per_call: Optional[int] = None, vae_batch: int = VAE_BATCH,
                 should_stop: Optional[Callable[[], bool]] = None):
        _whole_number("max_images_per_call", max_images_per_call, none_ok=True)
        _whole_number("vae_batch", vae_batch)
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.dtype = dtype or (torch.float16 if self.device.type == "cuda" else torch.float32)
        self.unet, self.vae, self.text = unet, vae, text
        self.model_name, self.max_images_per_call, self.vae_batch = model_name, max_images_per_call, vae_batch
        self.should_stop = should_stop
        self.model = UNetDenoiser(unet, self.dtype, self.device, scheduler_config)
        self.sdxl = getattr(unet.config, "addition_embed_type", None) == "text_time"
        self.latent_factor = 2 ** (len(vae.config.block_out_channels) - 1)
        self.latent_channels = int(unet.config.in_channels)
        self.tokenizer = text.tokenizer
        self.clock = StageClock(self.device)
        self.last_call_sizes: list[int] = []  # images per sampler call in the last render
        self._weights_hash: Optional[str] = None
        self._oom_cap: Optional[int] = None  # images per call after an out-of-memory retry: a ceiling from then on

    def host_settings(self) -> dict[str, Any]:
        """The run's fingerprint: model, a hash of sampled weights, kind and precision."""
        if self._weights_hash is None:
            self._weights_hash = weights_hash([self.unet, self.vae, *(e.model for e in self.text.encoders)])
        return {"model": self.model_name, "weights": self._weights_hash, "kind": "sdxl" if self.sdxl else "sd1",
                "dtype": str(self.dtype).replace("torch.", "")}

    def extra_networks(self) -> dict[str, tuple[str, ...]]:
        """No LoRA or hypernetwork files are loaded here: pinning their strengths is refused up front."""
        return {"lora": (), "hypernet": ()}

    # -- conditioning -----------------------------------------------------
    def encode_pairs(self, prompts: Sequence[tuple[str, str]]) -> tuple[list[Encoded], list[Encoded]]:
        """Each pair's positive and negative conditioning, padded to the pair's chunk count."""
        cache: dict[tuple[str, int, bool], Encoded] = {}
        cond, uncond = [], []
        for positive, negative in prompts:
            _refuse_extra_networks(positive, "prompt")
            _refuse_extra_networks(negative, "negative prompt")
            count = max(self.text.chunk_count(positive), self.text.chunk_count(negative))
            for text, out, is_negative in ((positive, cond, False), (negative, uncond, True)):
                key = (text, count, is_negative)
                if key not in cache:
                    cache[key] = self._encode(text, count, is_negative)
                out.append(cache[key])
        return cond, uncond

    def _encode(self, text: str, chunks: int, is_negative: bool) -> Encoded:
        encoded = self.text.encode(text, chunks)
        if self.sdxl and is_negative and text == "":  # A1111 zeroes SDXL's text conditioning for an empty negative
            return Encoded(torch.zeros_like(encoded.context), torch.zeros_like(encoded.pooled))
        return encoded

    # -- rendering --------------------------------------------------------
    def sigmas(self, settings: GenerationSettings, spec: "hyperbatch.SamplerSpec") -> torch.Tensor:
        return run_sigmas(settings, spec, self.model.sigma_min, self.model.sigma_max, self.device)

    def max_images(self, settings: GenerationSettings) -> int:
        if self.max_images_per_call is not None:
            wanted = self.max_images_per_call
        else:
            pixels = (settings.height // self.latent_factor) * (settings.width // self.latent_factor)
            base = self.unet.config.block_out_channels[0]
            wanted = default_max_images_per_call(self.device, base, pixels, torch.finfo(self.dtype).bits // 8)
        return wanted if self._oom_cap is None else min(wanted, self._oom_cap)

    def render(self, prompts: Sequence[tuple[str, str]], settings: GenerationSettings,
               progress: Optional[ProgressCallback] = None, init_images: Optional[torch.Tensor] = None,
               should_stop: Optional[Callable[[], bool]] = None) -> list[RenderedBatch]:
        """As ``BuiltinRenderer.render`` (img2img with ``init_images``); images float32 on the CPU."""
        prompts = check_prompt_pairs(prompts)
        spec = self._sampler(settings.sampler)
        init = self._check_settings(settings, init_images)
        if not prompts:
            return []
        stop = should_stop or self.should_stop
        progress = _never_back(progress)  # a call retried after running out of memory reports its steps again
        batch = settings.batch_size
        with self.clock.stage("text"):
            started = time.perf_counter()
            cond, uncond = self.encode_pairs(prompts)
            prompt_seconds = (time.perf_counter() - started) / len(prompts)
        with self.clock.stage("setup"):
            shape = (self.latent_channels, settings.height // self.latent_factor, settings.width // self.latent_factor)
            unit = batch_noise(settings.seeds(), shape, [settings.subseed + i for i in range(batch)],
                               settings.subseed_strength).to(self.device)
            start_latents = torch.zeros_like(unit) if init is None else self.encode_images(init).expand_as(unit)
            sigmas = self.sigmas(settings, spec)
            if self.sdxl:
                h, w = settings.height, settings.width
                self.model.time_ids = torch.tensor([[h, w, 0, 0, h, w]], dtype=torch.float32)
        steps = len(sigmas) - 1
        per_individual = image_steps(batch, steps) if spec.hyperbatch else batch * steps
        total, done = len(prompts) * per_individual, 0
        rows = [(p, i) for p in range(len(prompts)) for i in range(batch)]
        out = torch.empty((len(prompts), batch, 3, settings.height, settings.width))
        traces: Optional[list] = [] if spec.hyperbatch else None
        per_call = images_per_call(self.max_images(settings), batch, spec.hyperbatch)
        self.last_call_sizes, first = [], 0
        while first < len(rows):
            self._check_stop(stop)
            call = rows[first:first + per_call]
            report = (lambda info, base=done: self._report(progress, base, info, total, stop))
            try:
                images = self._sample_and_decode(call, spec, sigmas, unit, start_latents, cond, uncond, settings,
                                                 traces, report)
            except torch.cuda.OutOfMemoryError:
                if per_call <= (batch if spec.hyperbatch else 1):
                    raise
                per_call = images_per_call(per_call // 2, batch, spec.hyperbatch)
                self._oom_cap = per_call
                log.warning("out of GPU memory: retrying with %d images per sampler call", per_call)
                torch.cuda.empty_cache()
                continue
            who, which = torch.tensor([p for p, _ in call]), torch.tensor([i for _, i in call])
            out[who, which] = images
            done += (len(call) // batch) * per_individual if spec.hyperbatch else len(call) * steps
            self.last_call_sizes.append(len(call))
            first += len(call)
        log.debug("diffusers render: %d individuals x %d images in %d sampler calls",
                  len(prompts), batch, len(self.last_call_sizes))
        trace = traces[0] if traces else None
        return [RenderedBatch(images=out[p].contiguous(), seeds=settings.seeds(),
                              traces=None if trace is None else trace.copy(),
                              infotexts=[basic_infotext(pos, neg, settings, s, self.model_name)
                                         for s in settings.seeds()],
                              prompt_seconds=prompt_seconds)
                for p, (pos, neg) in enumerate(prompts)]

    @torch.no_grad()
    def _sample_and_decode(self, call, spec, sigmas, unit, start_latents, cond, uncond, settings, traces, callback):
        which = torch.tensor([i for _, i in call], device=self.device)
        x = start_latents[which] + unit[which] * sigmas[0]
        kwargs = sampler_kwargs(spec, x, sigmas, [settings.seed + i for _, i in call], settings.batch_size,
                                unit[which], traces)
        extra = {"cond": [cond[p] for p, _ in call], "uncond": [uncond[p] for p, _ in call],
                 "cond_scale": float(settings.cfg_scale)}
        with self.clock.stage("sampler"):
            latents = spec.function(self.model, x, sigmas, extra_args=extra, callback=callback,
                                    disable=True, **kwargs)
        with self.clock.stage("vae"):
            decoded = [self.decode(part) for part in latents.split(self.vae_batch)]
        with self.clock.stage("transfer"):
            return torch.cat([d.cpu() for d in decoded])

    def _vae_dtype(self) -> torch.dtype:
        return next(self.vae.parameters()).dtype

    def _latent_scale(self) -> tuple[float, float]:
        config = self.vae.config
        return float(config.scaling_factor), float(getattr(config, "shift_factor", None) or 0.0)

    @torch.no_grad()
    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """Latents to float32 sRGB images in [0, 1] (on the model's device)."""
        scale, shift = self._latent_scale()
        pixels = self.vae.decode((latents / scale + shift).to(self._vae_dtype())).sample.float()
        if not torch.isfinite(pixels).all():
            raise FloatingPointError(f"the VAE decoded non-finite values (NaN/inf) in {self._vae_dtype()}: "
                                     "load the model in float32 (dtype=torch.float32), or use a VAE that "
                                     "works in float16")
        return ((pixels + 1) / 2).clamp(0, 1)

    @torch.no_grad()
    def encode_images(self, images: torch.Tensor) -> torch.Tensor:
        """Images in [0, 1] to latents (the VAE encoder's mean, scaled as the UNet expects)."""
        scale, shift = self._latent_scale()
        pixels = (images.to(self.device, self._vae_dtype()) * 2 - 1)
        mean = self.vae.encode(pixels).latent_dist.mean.float()
        return (mean - shift) * scale

    def _report(self, progress, base: int, info: dict, total: int, stop) -> None:
        if progress is not None:
            progress(base + int(info["image_steps_done"]), total)
        self._check_stop(stop)

    @staticmethod
    def _check_stop(stop) -> None:
        if stop is not None and stop():
            raise RenderInterrupted("render stopped on request")

    @staticmethod
    def _sampler(name: str) -> "hyperbatch.SamplerSpec":
        try:
            return hyperbatch.get_sampler(name)
        except ValueError:
            raise ValueError(f"sampler: {name!r} is not available in the diffusers renderer; accepted: "
                             f"{', '.join(hyperbatch.SAMPLERS)}") from None

    def _check_settings(self, settings: GenerationSettings, init_images) -> Optional[torch.Tensor]:
        unit = self.latent_factor
        init = check_render_settings(settings, init_images, min_size=unit)
        for name in ("width", "height"):
            if getattr(settings, name) % unit:
                raise ValueError(f"{name} must be a multiple of {unit} for this model's VAE, "
                                 f"got {getattr(settings, name)}")
        return init
