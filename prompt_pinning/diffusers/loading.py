"""Loading a DiffusersRenderer from a local pipeline folder or a single-file checkpoint.

Nothing is downloaded. A folder is a diffusers pipeline (``model_index.json``,
``unet/``, ``vae/``, ``text_encoder/``, ``tokenizer/``, and for SDXL
``text_encoder_2/``, ``tokenizer_2/``). A single ``.safetensors``/``.ckpt``
file (A1111's format) is read by diffusers' ``from_single_file``, which needs the
pipeline's configs: from ``config`` (a local diffusers folder of the same model
kind), else from the local Hugging Face cache.
"""
from __future__ import annotations

import importlib.util
import json
import warnings
from pathlib import Path
from typing import Optional

import torch

from .renderer import DiffusersRenderer, vae_dtype
from .text import HFTokenizer, PromptEncoder, TextEncoder

SINGLE_FILE_SUFFIXES = (".safetensors", ".ckpt")
# Where diffusers looks up a single file's configs, by kind (SD1.x, SDXL); only the local cache is read.
DEFAULT_REPOS = {False: "stable-diffusion-v1-5/stable-diffusion-v1-5", True: "stabilityai/stable-diffusion-xl-base-1.0"}


def _pipeline_class(sdxl: bool):
    from diffusers import StableDiffusionPipeline, StableDiffusionXLPipeline

    return StableDiffusionXLPipeline if sdxl else StableDiffusionPipeline


def _is_sdxl_folder(folder: Path) -> bool:
    index = folder / "model_index.json"
    if index.is_file():
        return "text_encoder_2" in json.loads(index.read_text(encoding="utf-8"))
    return (folder / "text_encoder_2").is_dir()


def _is_sdxl_file(path: Path) -> bool:
    """SDXL checkpoints hold a second text encoder (``conditioner.embedders.1``)."""
    if path.suffix == ".safetensors":
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as f:
            return any(k.startswith("conditioner.embedders.1") for k in f.keys())
    return False  # a .ckpt would have to be unpickled to tell: SD1.x unless a config says otherwise


def _cached_config(sdxl: bool) -> Optional[str]:
    """The local Hugging Face cache's snapshot folder of the kind's default pipeline, if it is there."""
    from huggingface_hub import try_to_load_from_cache

    found = try_to_load_from_cache(DEFAULT_REPOS[sdxl], "model_index.json")
    return str(Path(found).parent) if isinstance(found, str) else None


def load_pipeline(path, dtype: torch.dtype, config: Optional[str] = None):
    """(pipeline, is_sdxl) from a folder or a single file, offline."""
    with warnings.catch_warnings():  # diffusers 0.42 renamed torch_dtype, which older versions need
        warnings.filterwarnings("ignore", message=".*torch_dtype.*", category=FutureWarning)
        return _load_pipeline(Path(path), dtype, config)


def _load_pipeline(path: Path, dtype: torch.dtype, config: Optional[str]):
    options = dict(torch_dtype=dtype, local_files_only=True)
    if path.is_dir():
        if not (path / "unet").is_dir():
            raise ValueError(f"diffusers path {str(path)!r} is a folder without unet/: give a diffusers pipeline "
                             "folder (model_index.json, unet/, vae/, text_encoder/, tokenizer/) or a "
                             ".safetensors/.ckpt checkpoint file")
        # Without accelerate, say so to diffusers rather than have it warn on every load.
        lean = importlib.util.find_spec("accelerate") is not None
        sdxl = _is_sdxl_folder(path)
        pipeline = _pipeline_class(sdxl).from_pretrained(str(path), low_cpu_mem_usage=lean, **options)
        return pipeline, sdxl
    if path.is_file() and path.suffix in SINGLE_FILE_SUFFIXES:
        sdxl = _is_sdxl_folder(Path(config)) if config else _is_sdxl_file(path)
        config = config or _cached_config(sdxl)
        if config is None:  # diffusers would try the Hub for the configs: never at run time
            raise ValueError(f"diffusers path {str(path)!r}: a single-file checkpoint needs the model's configs and "
                             f"tokenizers: give a local diffusers folder of the same kind with --diffusers-config "
                             f"DIR (config= in Python), or have {DEFAULT_REPOS[sdxl]} in the local Hugging Face cache")
        try:
            pipeline = _pipeline_class(sdxl).from_single_file(str(path), config=config, **options)
        except Exception as error:  # diffusers raises its own kinds (SingleFileComponentError, ...)
            raise ValueError(f"diffusers path {str(path)!r}: the checkpoint could not be read with the configs of "
                             f"{config!r} ({type(error).__name__}: {error})") from error
        return pipeline, sdxl
    raise ValueError(f"diffusers path {str(path)!r} is neither a pipeline folder nor a "
                     f"{'/'.join(SINGLE_FILE_SUFFIXES)} file")


def load_diffusers_renderer(path, device=None, dtype: Optional[torch.dtype] = None, *,
                            config: Optional[str] = None, clip_skip: int = 1, **options) -> DiffusersRenderer:
    """A DiffusersRenderer for the SD1.x or SDXL model at ``path`` (folder or single file).

    ``device``: None gives cuda when available, else cpu; ``dtype``: None gives
    float16 on cuda, float32 elsewhere (the VAE stays float32 where its config
    says ``force_upcast``, as SDXL's does). ``clip_skip`` (SD1.x): as A1111's "Clip
    skip" setting. ``options`` go to DiffusersRenderer (max_images_per_call, ...).
    """
    if isinstance(clip_skip, bool) or not isinstance(clip_skip, int) or clip_skip < 1:
        raise ValueError(f"clip_skip must be a whole number >= 1, got {clip_skip!r}")
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    dtype = dtype or (torch.float16 if device.type == "cuda" else torch.float32)
    pipeline, sdxl = load_pipeline(path, dtype, config)
    modules = [pipeline.unet, pipeline.vae, pipeline.text_encoder] + ([pipeline.text_encoder_2] if sdxl else [])
    for module in modules:
        module.to(device).eval().requires_grad_(False)
    pipeline.vae.to(dtype=vae_dtype(pipeline.vae.config, dtype))
    first = HFTokenizer(pipeline.tokenizer)
    if sdxl:
        encoders = [TextEncoder(pipeline.text_encoder, first, layer="penultimate"),
                    TextEncoder(pipeline.text_encoder_2, HFTokenizer(pipeline.tokenizer_2), layer="penultimate",
                                pooled=True)]
    else:
        encoders = [TextEncoder(pipeline.text_encoder, first, layer="last" if clip_skip == 1 else -clip_skip)]
    return DiffusersRenderer(pipeline.unet, pipeline.vae, PromptEncoder(encoders), dict(pipeline.scheduler.config),
                             model_name=Path(path).resolve().name, device=device, dtype=dtype, **options)
