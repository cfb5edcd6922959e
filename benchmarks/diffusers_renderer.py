"""The package's DiffusersRenderer (prompt_pinning.diffusers) on random weights, for measuring speed.

``build_renderer("sd15")`` builds the real SD1.5 layout (UNet, VAE and a CLIP
ViT-L text encoder) from configs with seeded random weights: nothing is
downloaded, and the cost of a forward pass does not depend on the weight
values. ``build_renderer("tiny")`` is the tiny random pipeline of
tools/make_tiny_diffusers.py, for CPU tests; ``checkpoint=`` loads a local
pipeline folder or single-file checkpoint instead.
"""
from __future__ import annotations

import sys
import tempfile
from pathlib import Path
from typing import Optional

import torch

from prompt_pinning.diffusers import DiffusersRenderer, load_diffusers_renderer
from prompt_pinning.diffusers.renderer import StageClock  # noqa: F401  (the benchmarks' stage timer)
from prompt_pinning.diffusers.text import PromptEncoder, TextEncoder
from prompt_pinning.prompt.tokenizers import ClipBpeTokenizer

TOOLS = Path(__file__).resolve().parents[1] / "tools"

SD15 = {
    "unet": dict(sample_size=64, block_out_channels=(320, 640, 1280, 1280), layers_per_block=2,
                 cross_attention_dim=768, attention_head_dim=8),
    "vae": dict(block_out_channels=(128, 256, 512, 512), layers_per_block=2, latent_channels=4,
                sample_size=512, down_block_types=("DownEncoderBlock2D",) * 4,
                up_block_types=("UpDecoderBlock2D",) * 4),
    "text": dict(hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12,
                 max_position_embeddings=77, hidden_act="quick_gelu"),
}
PRESETS = ("sd15", "tiny")


def random_sd15(device: torch.device, dtype: torch.dtype, seed: int = 0, **options) -> DiffusersRenderer:
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    with torch.random.fork_rng(devices=[]):  # seeding the weights leaves the host's RNG alone
        torch.manual_seed(seed)
        with torch.device(device):
            unet = UNet2DConditionModel(**SD15["unet"])
            vae = AutoencoderKL(**SD15["vae"])
            text = CLIPTextModel(CLIPTextConfig(**SD15["text"]))
            with torch.no_grad():  # a nonzero output mean, as real CLIP has: A1111's emphasis divides by it
                getattr(text, "text_model", text).final_layer_norm.bias.normal_(0.1, 0.5)
    modules = [m.to(device, dtype).eval().requires_grad_(False) for m in (unet, vae, text)]
    encoder = TextEncoder(modules[2], ClipBpeTokenizer())
    return DiffusersRenderer(modules[0], modules[1], PromptEncoder([encoder]), model_name="random-sd15",
                             device=device, dtype=dtype, **options)


def tiny_pipeline(seed: int = 0) -> Path:
    """The tiny random pipeline folder (tools/make_tiny_diffusers.py), written once per seed."""
    sys.path.insert(0, str(TOOLS))
    from make_tiny_diffusers import make_tiny

    folder = Path(tempfile.gettempdir()) / f"prompt-pinning-tiny-diffusers-{seed}"
    if not (folder / "model_index.json").is_file():
        make_tiny(folder, seed)
    return folder


def build_renderer(preset: str = "sd15", device: Optional[str] = None, dtype: Optional[torch.dtype] = None,
                   checkpoint: Optional[str] = None, seed: int = 0, **options) -> DiffusersRenderer:
    """A renderer for ``preset`` on random weights, or for ``checkpoint``; ``preset`` is kept on it."""
    if preset not in PRESETS:
        raise ValueError(f"preset must be one of {', '.join(PRESETS)}, got {preset!r}")
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    dtype = dtype or (torch.float16 if device.type == "cuda" else torch.float32)
    if checkpoint is not None:
        renderer = load_diffusers_renderer(checkpoint, device, dtype, **options)
    elif preset == "tiny":
        renderer = load_diffusers_renderer(tiny_pipeline(seed), device, dtype, **options)
    else:
        renderer = random_sd15(device, dtype, seed, **options)
    renderer.preset = preset
    return renderer


def hyperbatch_denoiser(device: str = "cuda", preset: Optional[str] = None, cfg_scale: float = 7.0):
    """For ``bench_hyperbatch.py --model diffusers_renderer:hyperbatch_denoiser``.

    Returns (denoiser(x, sigma), latent_shape): the UNet with an empty-prompt
    CFG pair (two UNet rows an image), at 512x512 for sd15, 64x64 for tiny.
    """
    preset = preset or ("sd15" if torch.device(device).type == "cuda" else "tiny")
    renderer = build_renderer(preset, device=device)
    size = 512 if preset == "sd15" else 64
    empty = renderer.text.encode("")

    def denoiser(x, sigma):
        rows = [empty] * x.shape[0]
        return renderer.model(x, sigma, cond=rows, uncond=rows, cond_scale=cfg_scale)

    return denoiser, (renderer.latent_channels, size // renderer.latent_factor, size // renderer.latent_factor)
