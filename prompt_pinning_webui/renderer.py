"""A1111Renderer: the engine's Renderer on top of ``process_images``.

Several individuals are packed into one ``process_images`` call with
per-image prompts (``p.prompt``/``p.negative_prompt`` as lists, which A1111's
``setup_prompts`` turns into ``all_prompts``/``all_negative_prompts``), one
batch of ``individuals * batch_size`` rows and ``n_iter = 1``. Seeds are
passed as lists so that image i of every individual gets seed + i (common
random numbers). The returned images, in memory, are split back per
individual; nothing is read from disk and nothing is saved by these calls.

Every call works on a fresh copy of the base ``p``; the caller's object is
never changed.
"""
from __future__ import annotations

import copy
import os
import logging
import math
import time
from typing import Any, Callable, Optional, Sequence

import numpy as np
import torch

from prompt_pinning.prompt.attention import EXTRA_NETWORK_TAG
from prompt_pinning.rendering import GenerationSettings, RenderedBatch, RenderInterrupted

from .samplers import GROUP_SIZE_ATTR, TRACES_ATTR

logger = logging.getLogger(__name__)

# Rough GPU memory per 512x512 image in one call (fp16 UNet with CFG plus VAE
# decode), scaled by pixel count; only used when no budget is given.
BYTES_PER_512_IMAGE = 600 * 2**20
MAX_AUTO_IMAGES = 64


def auto_images_per_call(width: int, height: int, free_bytes: Optional[int]) -> int:
    """A memory budget: images that fit in ``free_bytes`` (half of it, to be safe)."""
    if not free_bytes:
        return 1
    per_image = BYTES_PER_512_IMAGE * (width * height) / (512 * 512)
    return int(max(1, min(MAX_AUTO_IMAGES, (free_bytes // 2) // max(1, per_image))))


def free_gpu_bytes() -> Optional[int]:
    if not torch.cuda.is_available():
        return None
    try:
        free, _total = torch.cuda.mem_get_info()
    except RuntimeError:
        return None
    return int(free)


def pil_to_tensor(image) -> torch.Tensor:
    """PIL image -> (3, H, W) float32 in [0, 1]."""
    array = np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0
    return torch.from_numpy(array).permute(2, 0, 1).contiguous()


def individual_seeds(settings: GenerationSettings) -> tuple[list[int], list[int]]:
    """Seeds and subseeds of one individual's images, as A1111 assigns them."""
    step = 1 if settings.subseed_strength == 0 else 0
    seeds = [settings.seed + step * i for i in range(settings.batch_size)]
    subseeds = [settings.subseed + i for i in range(settings.batch_size)]
    return seeds, subseeds


def _host_process_images(p):
    from modules import processing

    return processing.process_images(p)


def _host_stop_requested() -> bool:
    from modules import shared

    state = shared.state
    return bool(state.interrupted or state.skipped or getattr(state, "stopping_generation", False))


class A1111Renderer:
    """Render prompt pairs with the WebUI's loaded model and settings of ``base_p``."""

    name = "a1111"
    # The host activates the networks of positive prompts only: a tag in the negative prompt
    # reaches the text encoder as text, so its strength is no unit (network_units).
    negative_networks = False

    def __init__(self, base_p: Any, *, max_images_per_call: Optional[int] = None, tokenizer=None,
                 process_images: Callable = _host_process_images,
                 stop_requested: Callable[[], bool] = _host_stop_requested,
                 device: Optional[torch.device] = None, networks_vary: bool = False):
        self.base_p = base_p
        # network strengths are units: every individual's tags differ, so each gets its own call
        self.networks_vary = networks_vary
        self._device = device
        self.max_images_per_call = max_images_per_call
        self._tokenizer = tokenizer
        self._process_images = process_images
        self._stop_requested = stop_requested
        # host infotexts per (positive, negative, seeds): a prompt pair is rendered on several
        # seed blocks (training, validation), and each text names its own seed
        self.infotexts: dict[tuple[str, str, tuple[int, ...]], list[str]] = {}
        self.calls = 0
        self.taggers: list[Any] = []  # released when the run is over

    @property
    def tokenizer(self):
        if self._tokenizer is None:
            from .tokenizer import HostTokenizer

            self._tokenizer = HostTokenizer.from_model()
        return self._tokenizer

    @property
    def device(self) -> Optional[torch.device]:
        """Where the host runs its model (``modules.devices.device``: follows --use-cpu, MPS)."""
        if self._device is None:
            from modules import devices

            return getattr(devices, "device", None)
        return self._device

    def extra_networks(self) -> dict[str, list[str]]:
        """The host's LoRAs and hypernetworks, where it exposes them (hosts.host_networks)."""
        from .hosts import host_networks

        return host_networks()

    def tagger(self, name: str = "auto"):
        """A tagger for tag targets: DeepBooru ("auto") or the WD14 extension (taggers.py)."""
        from .taggers import make_tagger

        tagger = make_tagger(name)
        self.taggers.append(tagger)
        return tagger

    def release(self) -> None:
        """The run is over: taggers give their models back to the host."""
        for tagger in self.taggers:
            release = getattr(tagger, "release", None)
            if release is not None:
                release()
        self.taggers.clear()

    def individuals_per_call(self, settings: GenerationSettings) -> int:
        init_images = getattr(self.base_p, "init_images", None) or []
        if 1 < len(init_images) != settings.batch_size:
            return 1  # A1111 resizes such a batch to the init images: no packing
        budget = self.max_images_per_call
        if not budget:
            budget = auto_images_per_call(settings.width, settings.height, free_gpu_bytes())
        return max(1, budget // settings.batch_size)

    def calls_needed(self, individuals: int, settings: GenerationSettings) -> int:
        """Host calls for a render of ``individuals`` (as ``host_batches`` splits them)."""
        if self.networks_vary:
            return individuals
        return math.ceil(individuals / self.individuals_per_call(settings))

    def render(self, prompts: Sequence[tuple[str, str]], settings: GenerationSettings,
               progress: Optional[Callable[[int, int], None]] = None) -> list[RenderedBatch]:
        prompts = list(prompts)
        per_call = self.individuals_per_call(settings)
        total = len(prompts) * settings.batch_size * settings.steps
        out: list[RenderedBatch] = []
        for chunk in host_batches(prompts, per_call):
            if self._stop_requested():
                raise RenderInterrupted("stopped by the WebUI (interrupt or skip)")
            out += self._render_chunk(chunk, settings)
            if progress is not None:
                progress(len(out) * settings.batch_size * settings.steps, total)
        return out

    def host_settings(self) -> dict[str, Any]:
        """What a resumed run must find again (its fingerprint): model and VAE as the request's
        ``override_settings`` make them, the host options that change images, the precision and
        attention flags, txt2img or img2img with its init images' and mask's hashes, hires fix."""
        from modules import shared

        base = self.base_p
        overrides = dict(getattr(base, "override_settings", None) or {})
        opts = getattr(shared, "opts", None)
        hires = None
        if getattr(base, "enable_hr", False):
            hires = {name: _plain(getattr(base, name, None)) for name in
                     ("hr_scale", "hr_upscaler", "hr_second_pass_steps", "hr_resize_x", "hr_resize_y",
                      "denoising_strength")}
        options = {name: _plain(overrides[name] if name in overrides else getattr(opts, name, None))
                   for name in IMAGE_OPTIONS}
        for name in ("eta", "s_noise", "s_churn", "s_tmin", "s_tmax"):  # the request's own, over the options
            if getattr(base, name, None) is not None:
                options[f"request_{name}"] = _plain(getattr(base, name))
        images = getattr(base, "init_images", None)
        mask = getattr(base, "image_mask", None)
        return {"model": _model_hash(overrides.get("sd_model_checkpoint")),
                "vae": _plain(overrides["sd_vae"]) if "sd_vae" in overrides else _plain(_loaded_vae()),
                "clip_skip": options.pop("CLIP_stop_at_last_layers"),
                "mode": "img2img" if images else "txt2img",
                "init_images": [_image_hash(image) for image in images] if images else [],
                "mask": _image_hash(mask) if mask is not None else "none",
                **({"mask_settings": {name: _plain(getattr(base, name, None)) for name in MASK_SETTINGS}}
                   if mask is not None else {}),
                "options": options, "precision": _precision_flags(getattr(shared, "cmd_opts", None)),
                "hires_fix": hires}

    # -- one process_images call -------------------------------------------
    def make_p(self, prompts: Sequence[tuple[str, str]], settings: GenerationSettings):
        """A copy of the base p set up for these individuals (the base is untouched)."""
        p = copy.copy(self.base_p)
        count, size = len(prompts), settings.batch_size
        seeds, subseeds = individual_seeds(settings)
        p.prompt = [pos for pos, _ in prompts for _ in range(size)]
        p.negative_prompt = [neg for _, neg in prompts for _ in range(size)]
        p.seed, p.subseed = seeds * count, subseeds * count
        p.subseed_strength = settings.subseed_strength
        p.batch_size, p.n_iter = count * size, 1
        # The run's own settings, not what the UI holds now (they differ on a resume).
        p.steps, p.cfg_scale = settings.steps, settings.cfg_scale
        p.width, p.height = settings.width, settings.height
        p.sampler_name, p.scheduler = settings.sampler, settings.scheduler
        p.do_not_save_samples = True
        p.do_not_save_grid = True
        # Fresh containers: process_images writes into these.
        p.extra_generation_params = dict(getattr(self.base_p, "extra_generation_params", None) or {})
        p.override_settings = dict(getattr(self.base_p, "override_settings", None) or {})
        p.comments = dict(getattr(self.base_p, "comments", None) or {})
        init_images = getattr(self.base_p, "init_images", None)
        if init_images:
            many = len(init_images) == size and size > 1
            p.init_images = list(init_images) * (count if many else 1)
            p.denoising_strength = settings.denoising_strength  # txt2img's belongs to hires fix
        setattr(p, GROUP_SIZE_ATTR, size)
        setattr(p, TRACES_ATTR, None)
        return p

    def _render_chunk(self, prompts, settings: GenerationSettings) -> list[RenderedBatch]:
        p = self.make_p(prompts, settings)
        conds = _MethodTimer(p, "setup_conds")  # the host's prompt parsing and text encoding
        try:
            processed = self._process_images(p)
        finally:
            close = getattr(p, "close", None)
            if callable(close):
                close()
        self.calls += 1
        if self._stop_requested():  # the batch may hold half-denoised images
            raise RenderInterrupted("stopped by the WebUI (interrupt or skip)")
        images, infotexts = _output_images(processed, len(prompts) * settings.batch_size)
        traces = getattr(p, TRACES_ATTR, None)
        prompt_seconds = conds.seconds / len(prompts) if conds.found else None
        return self._split(prompts, settings, images, infotexts, traces, prompt_seconds)

    def _split(self, prompts, settings, images, infotexts, traces, prompt_seconds=None) -> list[RenderedBatch]:
        size = len(images) // len(prompts)
        seeds, _ = individual_seeds(settings)
        out = []
        for k, pair in enumerate(prompts):
            rows = slice(k * size, (k + 1) * size)
            tensor = torch.stack([pil_to_tensor(image) for image in images[rows]])
            trace = None if traces is None or len(traces) != len(images) else np.asarray(traces[rows])
            texts = list(infotexts[rows])
            self.infotexts[(pair[0], pair[1], tuple(seeds[:size]))] = texts
            out.append(RenderedBatch(images=tensor, seeds=list(seeds[:size]), traces=trace, infotexts=texts,
                                     prompt_seconds=prompt_seconds))
        return out


def host_batches(prompts: list, per_call: int) -> list[list]:
    """Consecutive chunks of at most ``per_call`` prompt pairs whose positive prompts hold the same
    extra-network tags: the host activates the networks of a batch's first prompt for all its images
    (and writes their "Lora hashes" for all), so other strengths must go to another call."""
    chunks: list[list] = []
    key = None
    for pair in prompts:
        tags = EXTRA_NETWORK_TAG.findall(pair[0])
        if not chunks or tags != key or len(chunks[-1]) >= per_call:
            chunks.append([])
            key = tags
        chunks[-1].append(pair)
    return chunks


class _MethodTimer:
    """Adds up the seconds spent in ``obj.name()`` from now on (an instance-level wrapper)."""

    def __init__(self, obj: Any, name: str):
        self.seconds = 0.0
        method = getattr(obj, name, None)
        self.found = callable(method)
        if not self.found:
            return

        def timed(*args, **kwargs):
            started = time.perf_counter()
            try:
                return method(*args, **kwargs)
            finally:
                self.seconds += time.perf_counter() - started

        setattr(obj, name, timed)


def _output_images(processed, expected: int) -> tuple[list, list[str]]:
    """The generated images of a Processed (no grid, no masks) and their infotexts."""
    first = int(getattr(processed, "index_of_first_image", 0) or 0)
    images = list(processed.images[first:])
    texts = list(getattr(processed, "infotexts", None) or [])[first:]
    if len(texts) != len(images):
        texts = [getattr(processed, "info", "")] * len(images)
    if len(images) == expected or expected == 0:
        return images, texts
    # Inpainting can append a mask and/or a composite after every image.
    if len(images) % expected == 0:
        stride = len(images) // expected
        return images[::stride], texts[::stride]
    if len(images) < expected and len(images) > 0:
        # A1111 lowered the batch (several init images); keep what came back, evenly split.
        return images, texts
    raise RuntimeError(f"process_images returned {len(images)} images, expected {expected}")


# Host options that change a render's pixels (A1111 v1.10.1 and Forge names; absent ones are recorded as None).
IMAGE_OPTIONS = ("CLIP_stop_at_last_layers", "eta_ancestral", "eta_ddim", "s_noise", "s_churn", "s_tmin",
                 "s_tmax", "eta_noise_seed_delta", "randn_source", "emphasis", "token_merging_ratio",
                 "token_merging_ratio_img2img", "sd_vae_decode_method", "upcast_attn", "comma_padding_backtrack")
PRECISION_FLAGS = ("no_half", "no_half_vae", "upcast_sampling", "precision", "xformers", "force_enable_xformers",
                   "opt_sdp_attention", "opt_sdp_no_mem_attention", "opt_split_attention", "always_cpu",
                   "all_in_fp32", "unet_in_fp8_e4m3fn", "attention_pytorch", "attention_split")
MASK_SETTINGS = ("mask_blur", "inpainting_fill", "inpaint_full_res", "inpaint_full_res_padding",
                 "inpainting_mask_invert")


def _model_hash(title: Optional[str]) -> Any:
    """The checkpoint's short hash: the one ``title`` names when a request overrides it, else the loaded one."""
    from modules import shared

    info = getattr(getattr(shared, "sd_model", None), "sd_checkpoint_info", None)
    if info is None and title is None:  # Forge before its first generation: the checkpoint it will load
        try:
            from modules import sd_models
            info = getattr(sd_models.model_data, "forge_loading_parameters", {}).get("checkpoint_info")
        except (ImportError, AttributeError):
            info = None
        if isinstance(info, str):
            return info
    if title is not None:
        try:
            from modules import sd_models
            info = sd_models.get_closet_checkpoint_match(title)
        except (ImportError, AttributeError):
            return _plain(title)
        if info is None:
            return _plain(title)
    shorthash = getattr(info, "shorthash", None)
    if shorthash is None and callable(getattr(info, "calculate_shorthash", None)):
        # not hashed yet (a checkpoint not loaded so far): the hash its load computes, so every
        # render call's fingerprint names it alike (the host caches it for the load)
        shorthash = info.calculate_shorthash()
    return _plain(shorthash or getattr(info, "hash", None) or getattr(info, "title", None))


def _image_hash(image) -> Optional[str]:
    """A content hash of a PIL image (mode, size and pixels)."""
    from prompt_pinning.run.fingerprint import image_hash

    tobytes = getattr(image, "tobytes", None)
    if tobytes is None:
        return None
    return image_hash(f"{image.mode} {image.size}".encode() + tobytes())


def _precision_flags(cmd_opts) -> Optional[dict[str, Any]]:
    if cmd_opts is None:
        return None
    return {name: _plain(getattr(cmd_opts, name)) for name in PRECISION_FLAGS if hasattr(cmd_opts, name)}


def _loaded_vae() -> Optional[str]:
    from modules import shared

    try:
        from modules import sd_vae
    except ImportError:
        sd_vae = None
    loaded = getattr(sd_vae, "loaded_vae_file", None)
    if isinstance(loaded, str) and loaded:
        return os.path.basename(loaded)
    modules = getattr(getattr(shared, "opts", None), "forge_additional_modules", None)  # Forge: VAE and encoders
    if isinstance(modules, (list, tuple)):
        return ",".join(sorted(os.path.basename(str(m)) for m in modules)) or "the checkpoint's own"
    return None


def _plain(value: Any) -> Any:
    """A JSON value for the run folder: numbers and text as they are, anything else as text."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)

