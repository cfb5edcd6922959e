"""The built-in model's latent space and its encoder.

Like Stable Diffusion, the built-in model diffuses in a small latent space
and decodes only the final latent to pixels (LayoutDenoiser.decode). A
latent is the image's area-average downsampled copy, 3 x ceil(H / 4) x
ceil(W / 4), mapped to [-1, 1] and multiplied by LATENT_SCALE (as Stable
Diffusion scales its VAE latents by 0.18215). The scale sets how close
different layouts' latents sit relative to the noise, and so when a sample
commits to one layout.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

LATENT_FACTOR = 4  # image pixels per latent cell along each axis
LATENT_SCALE = 0.15  # latents span [-0.15, 0.15]


def latent_size(width: int, height: int) -> tuple[int, int]:
    """(h, w) of the latent grid for an image of width x height pixels."""
    return math.ceil(height / LATENT_FACTOR), math.ceil(width / LATENT_FACTOR)


def downsample(images: torch.Tensor) -> torch.Tensor:
    """Area-average (N, 3, H, W) images onto the latent grid (any H, W)."""
    if images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"images must be (N, 3, H, W), got shape {tuple(images.shape)}")
    h, w = latent_size(images.shape[3], images.shape[2])
    return F.adaptive_avg_pool2d(images.float(), (h, w))


def encode(images: torch.Tensor) -> torch.Tensor:
    """(N, 3, H, W) images in [0, 1] to (N, 3, h, w) latents in [-LATENT_SCALE, LATENT_SCALE]."""
    return LATENT_SCALE * (2.0 * downsample(images) - 1.0)
