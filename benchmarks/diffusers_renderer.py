"""DiffusersRenderer: a Stable Diffusion 1.5-layout renderer for measuring speed.

A diffusers ``UNet2DConditionModel`` and ``AutoencoderKL`` built from config
dicts with seeded random weights (nothing is downloaded; the cost of a forward
pass does not depend on the weight values), or loaded from a local
diffusers-format folder. The text encoder is a stand-in: a seeded CLIP-sized
token and position embedding with a layer norm, weighted per token as A1111
does (multiply, then restore the chunk's mean). Prompts are tokenized with the
project's CLIP BPE and chunked as the host chunks them.

Sampling runs through ``hyperbatch.get_sampler``. One ``render`` packs the rows
(individual x image) of a whole generation into as few sampler calls as
``max_images_per_call`` allows; hyperbatch samplers get whole individuals per
call (``group_size`` = batch size). Image i of every individual starts from
the latent noise of seed ``seed + i``. fp16 on CUDA, fp32 on the CPU.

``preset="sd15"`` is the real SD1.5 layout; ``preset="tiny"`` is a small
UNet/VAE of the same kinds of blocks, for CPU tests.
"""
from __future__ import annotations

import contextlib
import logging
import time
from collections import defaultdict
from typing import Callable, Optional, Sequence

import torch
from torch import nn

import hyperbatch
from hyperbatch.noise import BrownianNoise
from hyperbatch.schedule import image_steps

from prompt_pinning.builtin.seeds import batch_noise
from prompt_pinning.rendering import (GenerationSettings, ProgressCallback, RenderedBatch, RenderInterrupted,
                                      basic_infotext, check_prompt_pairs)
from prompt_pinning.prompt.tokenizers import CHUNK_LENGTH, ClipBpeTokenizer, host_encoding

log = logging.getLogger(__name__)

PRESETS = {
    "sd15": {
        "unet": dict(sample_size=64, block_out_channels=(320, 640, 1280, 1280), layers_per_block=2,
                     cross_attention_dim=768, attention_head_dim=8),
        "vae": dict(block_out_channels=(128, 256, 512, 512), layers_per_block=2, latent_channels=4,
                    sample_size=512, down_block_types=("DownEncoderBlock2D",) * 4,
                    up_block_types=("UpDecoderBlock2D",) * 4),
    },
    "tiny": {
        "unet": dict(sample_size=16, block_out_channels=(16, 32), layers_per_block=1, cross_attention_dim=32,
                     attention_head_dim=2, norm_num_groups=8, down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
                     up_block_types=("UpBlock2D", "CrossAttnUpBlock2D")),
        "vae": dict(block_out_channels=(16, 32), layers_per_block=1, latent_channels=4, sample_size=32,
                    norm_num_groups=8, down_block_types=("DownEncoderBlock2D",) * 2,
                    up_block_types=("UpDecoderBlock2D",) * 2),
    },
}
CLIP_VOCAB_SIZE = 49408
TOKENS_PER_CHUNK = CHUNK_LENGTH + 2  # with start and end tokens
OUTPUT_MEAN = 0.1  # mean of the text stand-in's output
# SD1.x's discrete noise schedule ("scaled_linear" betas over 1000 timesteps).
BETA_START, BETA_END, TRAIN_STEPS = 0.00085, 0.012, 1000
MEMORY_SHARE = 0.5  # share of free accelerator memory one sampler call may plan to use
ACTIVATION_FACTOR = 80  # live activation values per latent pixel, per UNet base channel (an upper estimate)
MAX_AUTO_IMAGES = 256
CPU_MAX_IMAGES = 32
VAE_BATCH = 8  # images per VAE decode


class StageClock:
    """Seconds spent per named stage; synchronizes CUDA at stage edges so times are real."""

    def __init__(self, device: torch.device | str = "cpu"):
        self.cuda = torch.device(device).type == "cuda"
        self.seconds: dict[str, float] = defaultdict(float)

    def sync(self) -> None:
        if self.cuda:
            torch.cuda.synchronize()

    @contextlib.contextmanager
    def stage(self, name: str):
        self.sync()
        start = time.perf_counter()
        try:
            yield
        finally:
            self.sync()
            self.seconds[name] += time.perf_counter() - start

    def snapshot(self) -> dict[str, float]:
        return dict(self.seconds)


class TokenEmbedder(nn.Module):
    """Text-encoder stand-in: token + position embedding and a layer norm, seeded."""

    def __init__(self, dim: int, vocab: int = CLIP_VOCAB_SIZE, length: int = TOKENS_PER_CHUNK):
        super().__init__()
        self.tokens = nn.Embedding(vocab, dim)
        self.positions = nn.Parameter(torch.randn(length, dim) * 0.01)
        self.norm = nn.LayerNorm(dim)
        # A nonzero mean, as real CLIP outputs have: A1111's weighting divides by it.
        nn.init.normal_(self.norm.bias, mean=OUTPUT_MEAN, std=0.5)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.norm(self.tokens(ids) + self.positions)


def vp_sigmas() -> torch.Tensor:
    """The 1000 training sigmas of SD1.x, ascending."""
    betas = torch.linspace(BETA_START**0.5, BETA_END**0.5, TRAIN_STEPS, dtype=torch.float64) ** 2
    alphas_cumprod = torch.cumprod(1.0 - betas, dim=0)
    return ((1 - alphas_cumprod) / alphas_cumprod).sqrt().float()


class EpsDenoiser:
    """k-diffusion-style wrapper of an eps-predicting UNet, with CFG in one UNet call.

    ``model(x, sigma_per_row, cond=..., uncond=..., cond_scale=...)``; cond and
    uncond are (rows, tokens, dim). The sampler state stays float32; the UNet
    runs in its own dtype.
    """

    def __init__(self, unet: nn.Module, dtype: torch.dtype, device: torch.device | str = "cpu"):
        self.unet, self.dtype = unet, dtype
        sigmas = vp_sigmas()
        self.log_sigmas = sigmas.log().to(device)
        self.sigma_min, self.sigma_max = float(sigmas[0]), float(sigmas[-1])

    def timesteps(self, sigma: torch.Tensor) -> torch.Tensor:
        """Fractional training timestep of each sigma (linear in log sigma)."""
        log_sigmas = self.log_sigmas.to(sigma.device)
        log_sigma = sigma.float().log().clamp(log_sigmas[0], log_sigmas[-1])
        high = torch.searchsorted(log_sigmas, log_sigma).clamp(1, TRAIN_STEPS - 1)
        low_value, high_value = log_sigmas[high - 1], log_sigmas[high]
        return high - 1 + (log_sigma - low_value) / (high_value - low_value)

    def denoise(self, x: torch.Tensor, sigma: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        """x - sigma * eps for every row (sigma per row)."""
        scale_in = (sigma**2 + 1).rsqrt()[:, None, None, None]
        eps = self.unet((x * scale_in).to(self.dtype), self.timesteps(sigma),
                        encoder_hidden_states=context.to(self.dtype)).sample.float()
        return x - eps * sigma[:, None, None, None]

    def __call__(self, x, sigma, cond, uncond=None, cond_scale: float = 1.0):
        rows = x.shape[0]
        sigma = torch.as_tensor(sigma, dtype=torch.float32, device=x.device).expand(rows)
        if uncond is None or cond_scale == 1.0:
            return self.denoise(x, sigma, cond)
        if cond.shape[1:] == uncond.shape[1:]:  # one UNet call for both halves
            both = self.denoise(torch.cat([x, x]), torch.cat([sigma, sigma]), torch.cat([cond, uncond]))
            positive, negative = both[:rows], both[rows:]
        else:  # prompts of different chunk counts
            positive, negative = self.denoise(x, sigma, cond), self.denoise(x, sigma, uncond)
        return negative + cond_scale * (positive - negative)


def build_models(preset: str, device: torch.device, dtype: torch.dtype, seed: int = 0,
                 checkpoint: Optional[str] = None):
    """(unet, vae, text) for a preset with random weights, or UNet/VAE from a local diffusers folder."""
    from diffusers import AutoencoderKL, UNet2DConditionModel

    if preset not in PRESETS:
        raise ValueError(f"preset must be one of {', '.join(PRESETS)}, got {preset!r}")
    torch.manual_seed(seed)
    if checkpoint is not None:
        options = dict(local_files_only=True, torch_dtype=dtype)
        unet = UNet2DConditionModel.from_pretrained(checkpoint, subfolder="unet", **options)
        vae = AutoencoderKL.from_pretrained(checkpoint, subfolder="vae", **options)
    else:
        with torch.device(device):
            unet = UNet2DConditionModel(**PRESETS[preset]["unet"])
            vae = AutoencoderKL(**PRESETS[preset]["vae"])
    with torch.device(device):
        text = TokenEmbedder(unet.config.cross_attention_dim)
    models = [m.to(device).eval().requires_grad_(False) for m in (unet, vae, text)]
    return tuple(m if dtype == torch.float32 else m.to(dtype) for m in models)


def default_max_images_per_call(device: torch.device, base_channels: int, latent_pixels: int,
                                dtype_bytes: int) -> int:
    """Images per sampler call that fit MEMORY_SHARE of free memory (2 UNet rows an image, CFG)."""
    per_image = 2 * latent_pixels * base_channels * ACTIVATION_FACTOR * dtype_bytes
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return max(1, min(MAX_AUTO_IMAGES, int(MEMORY_SHARE * free // per_image)))
    return CPU_MAX_IMAGES  # the CPU gains nothing from bigger calls


def images_per_call(max_images: int, batch: int, whole_individuals: bool) -> int:
    """Rows per call: whole individuals for hyperbatch samplers (at least one)."""
    return max(1, max_images // batch) * batch if whole_individuals else max(1, max_images)


class DiffusersRenderer:
    """A Renderer over diffusers' SD1.5-layout UNet and VAE; see the module docstring."""

    name = "diffusers"

    def __init__(self, preset: str = "sd15", device: Optional[str] = None, dtype: Optional[torch.dtype] = None,
                 max_images_per_call: Optional[int] = None, checkpoint: Optional[str] = None, seed: int = 0,
                 vae_batch: int = VAE_BATCH, should_stop: Optional[Callable[[], bool]] = None):
        if max_images_per_call is not None and (isinstance(max_images_per_call, bool)
                                                or not isinstance(max_images_per_call, int) or max_images_per_call < 1):
            raise ValueError(f"max_images_per_call must be a whole number >= 1 or None (auto), "
                             f"got {max_images_per_call!r}")
        if isinstance(vae_batch, bool) or not isinstance(vae_batch, int) or vae_batch < 1:
            raise ValueError(f"vae_batch must be a whole number >= 1, got {vae_batch!r}")
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.dtype = dtype or (torch.float16 if self.device.type == "cuda" else torch.float32)
        self.preset, self.max_images_per_call, self.vae_batch = preset, max_images_per_call, vae_batch
        self.should_stop = should_stop
        with torch.random.fork_rng(devices=[]):  # seeding the weights leaves the host's RNG alone
            self.unet, self.vae, self.text = build_models(preset, self.device, self.dtype, seed, checkpoint)
        self.model = EpsDenoiser(self.unet, self.dtype, self.device)
        self.latent_factor = 2 ** (len(self.vae.config.block_out_channels) - 1)
        self.tokenizer = ClipBpeTokenizer()
        self.clock = StageClock(self.device)
        self.last_call_sizes: list[int] = []  # images per sampler call in the last render

    # -- conditioning -----------------------------------------------------
    def chunk_ids(self, prompt: str) -> tuple[torch.Tensor, torch.Tensor]:
        """(chunks, 77) token ids and weights of a prompt, chunked as the host does."""
        chunks = host_encoding(prompt, self.tokenizer)
        padded = [c.padded(self.tokenizer.start_id, self.tokenizer.end_id) for c in chunks]
        ids = torch.tensor([p[0] for p in padded], dtype=torch.long)
        weights = torch.tensor([p[1] for p in padded], dtype=torch.float32)
        return ids, weights

    @torch.no_grad()
    def encode(self, prompts: Sequence[str]) -> torch.Tensor:
        """(len(prompts), chunks * 77, dim) weighted embeddings; short prompts repeat their last chunk."""
        cache: dict[str, torch.Tensor] = {}
        for prompt in prompts:
            if prompt not in cache:
                ids, weights = self.chunk_ids(prompt)
                z = self.text(ids.to(self.device)).float()
                mean_before = z.mean(dim=(1, 2), keepdim=True)
                z = z * weights.to(self.device)[..., None]
                z = z * (mean_before / z.mean(dim=(1, 2), keepdim=True))
                cache[prompt] = z
        longest = max(len(z) for z in cache.values())
        if any(len(z) != longest for z in cache.values()):
            raise ValueError(f"prompts of one render must have the same number of 75-token chunks; got "
                             f"{sorted({len(z) for z in cache.values()})} (shorten or add BREAK to even them)")
        return torch.stack([cache[p].reshape(-1, cache[p].shape[-1]) for p in prompts]).to(self.dtype)

    # -- rendering --------------------------------------------------------
    def sigmas(self, settings: GenerationSettings, spec: "hyperbatch.SamplerSpec") -> torch.Tensor:
        scheduler = settings.scheduler
        if scheduler in ("automatic", "Automatic"):
            scheduler = spec.scheduler or "karras"
        return hyperbatch.make_sigmas(scheduler, settings.steps, self.model.sigma_min, self.model.sigma_max,
                                      device=self.device)

    def max_images(self, settings: GenerationSettings) -> int:
        if self.max_images_per_call is not None:
            return self.max_images_per_call
        pixels = (settings.height // self.latent_factor) * (settings.width // self.latent_factor)
        base = self.unet.config.block_out_channels[0]
        return default_max_images_per_call(self.device, base, pixels, torch.finfo(self.dtype).bits // 8)

    def render(self, prompts: Sequence[tuple[str, str]], settings: GenerationSettings,
               progress: Optional[ProgressCallback] = None) -> list[RenderedBatch]:
        """One RenderedBatch per (positive, negative) pair; images float32 on the CPU."""
        prompts = check_prompt_pairs(prompts)
        spec = hyperbatch.get_sampler(settings.sampler)
        self._check_settings(settings)
        if not prompts:
            return []
        batch, steps = settings.batch_size, settings.steps
        with self.clock.stage("text"):
            cond = self.encode([p for p, _ in prompts])
            uncond = self.encode([n for _, n in prompts])
        with self.clock.stage("setup"):
            shape = (4, settings.height // self.latent_factor, settings.width // self.latent_factor)
            unit = batch_noise(settings.seeds(), shape, [settings.subseed + i for i in range(batch)],
                               settings.subseed_strength).to(self.device)
            sigmas = self.sigmas(settings, spec)
        per_individual = image_steps(batch, steps) if spec.hyperbatch else batch * steps
        total, done = len(prompts) * per_individual, 0
        rows = [(p, i) for p in range(len(prompts)) for i in range(batch)]
        out = torch.empty((len(prompts), batch, 3, settings.height, settings.width))
        traces: Optional[list] = [] if spec.hyperbatch else None
        per_call = images_per_call(self.max_images(settings), batch, spec.hyperbatch)
        self.last_call_sizes, start = [], 0
        while start < len(rows):
            self._check_stop()
            call = rows[start:start + per_call]
            try:
                images = self._sample_and_decode(call, spec, sigmas, unit, cond, uncond, settings, traces,
                                                 lambda info, base=done: self._report(progress, base, info, total))
            except torch.cuda.OutOfMemoryError:
                if per_call <= (batch if spec.hyperbatch else 1):
                    raise
                per_call = images_per_call(per_call // 2, batch, spec.hyperbatch)
                log.warning("out of GPU memory: retrying with %d images per sampler call", per_call)
                torch.cuda.empty_cache()
                continue
            who, which = torch.tensor([p for p, _ in call]), torch.tensor([i for _, i in call])
            out[who, which] = images
            done += (len(call) // batch) * per_individual if spec.hyperbatch else len(call) * steps
            self.last_call_sizes.append(len(call))
            start += len(call)
        log.debug("diffusers render: %d individuals x %d images in %d sampler calls",
                  len(prompts), batch, len(self.last_call_sizes))
        trace = traces[0] if traces else None
        return [RenderedBatch(images=out[p].contiguous(), seeds=settings.seeds(),
                              traces=None if trace is None else trace.copy(),
                              infotexts=[basic_infotext(pos, neg, settings, s, f"diffusers-{self.preset}") for s in settings.seeds()])
                for p, (pos, neg) in enumerate(prompts)]

    @torch.no_grad()
    def _sample_and_decode(self, call, spec, sigmas, unit, cond, uncond, settings, traces, callback):
        who = torch.tensor([p for p, _ in call], device=self.device)
        which = torch.tensor([i for _, i in call], device=self.device)
        x = unit[which] * sigmas[0]
        kwargs = {}
        if spec.needs_noise_sampler:
            positive = sigmas[sigmas > 0]
            kwargs["noise_sampler"] = BrownianNoise(x, positive.min(), positive.max(),
                                                    seeds=[settings.seed + i for _, i in call])
        if spec.hyperbatch:
            kwargs.update(group_size=settings.batch_size, branch_noise=unit[which], trace_out=traces)
        extra = {"cond": cond[who], "uncond": uncond[who], "cond_scale": float(settings.cfg_scale)}
        with self.clock.stage("sampler"):
            latents = spec.function(self.model, x, sigmas, extra_args=extra, callback=callback,
                                    disable=True, **kwargs)
        with self.clock.stage("vae"):
            decoded = [self.decode(part) for part in latents.split(self.vae_batch)]
        with self.clock.stage("transfer"):
            return torch.cat([d.cpu() for d in decoded])

    @torch.no_grad()
    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """Latents to float32 sRGB images in [0, 1] (on the model's device)."""
        pixels = self.vae.decode((latents / self.vae.config.scaling_factor).to(self.dtype)).sample.float()
        if not torch.isfinite(pixels).all():
            log.warning("VAE output has non-finite values (random weights?); replacing them with 0")
            pixels = torch.nan_to_num(pixels, nan=0.0, posinf=0.0, neginf=0.0)
        return ((pixels + 1) / 2).clamp(0, 1)

    def _report(self, progress, base: int, info: dict, total: int) -> None:
        if progress is not None:
            progress(base + int(info["image_steps_done"]), total)
        self._check_stop()

    def _check_stop(self) -> None:
        if self.should_stop is not None and self.should_stop():
            raise RenderInterrupted("render stopped on request")

    def _check_settings(self, settings: GenerationSettings) -> None:
        for name in ("batch_size", "steps", "width", "height"):
            value = getattr(settings, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a whole number >= 1, got {value!r}")
        unit = self.latent_factor
        for name in ("width", "height"):
            if getattr(settings, name) % unit:
                raise ValueError(f"{name} must be a multiple of {unit} for preset {self.preset!r}, "
                                 f"got {getattr(settings, name)}")
        if settings.denoising_strength != 1.0:
            raise ValueError(f"denoising_strength must be 1.0 (this renderer does txt2img only), "
                             f"got {settings.denoising_strength!r}")


def hyperbatch_denoiser(device: str = "cuda", preset: Optional[str] = None, cfg_scale: float = 7.0):
    """For ``bench_hyperbatch.py --model diffusers_renderer:hyperbatch_denoiser``.

    Returns (denoiser(x, sigma), latent_shape): the UNet with an empty-prompt
    CFG pair (two UNet rows an image), at 512x512 for sd15, 32x32 for tiny.
    """
    preset = preset or ("sd15" if torch.device(device).type == "cuda" else "tiny")
    renderer = DiffusersRenderer(preset, device=device)
    size = 512 if preset == "sd15" else 32
    context = renderer.encode([""])

    def denoiser(x, sigma):
        rows = context.expand(x.shape[0], -1, -1)
        return renderer.model(x, sigma, cond=rows, uncond=rows, cond_scale=cfg_scale)

    return denoiser, (4, size // renderer.latent_factor, size // renderer.latent_factor)


