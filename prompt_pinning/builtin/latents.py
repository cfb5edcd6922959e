"""The built-in model's latent space: its encoder and decoder.

Like Stable Diffusion, the built-in model diffuses in a small latent space
and decodes only the final latent to pixels. Diffusing in full pixel space
would not work here: squared distances between images over 3 x 64 x 64
values dwarf 2 sigma^2 for all but the largest sigmas, so a sample settles
on one data image within the first few steps and every later step (and
every small prompt-weight change) leaves it there.

Encoder: a latent is the image's area-average downsampled copy, 3 x
ceil(H / LATENT_FACTOR) x ceil(W / LATENT_FACTOR), mapped to [-1, 1] and
multiplied by LATENT_SCALE (as Stable Diffusion scales its VAE latents by
0.18215). Both set how close data latents sit relative to the noise, and so
when a sample commits to one image. At 64x64 the latent has 3 x 16 x 16 =
768 numbers; with the scale, a 20-step Karras run (sigmas 80..0.002) at CFG
7 commits around steps 11-13 (the unguided posterior's top weight passes 0.5
near sigma 0.7, step 12), so branches split early in a hyperbatch still end
on different images. Measured with benchmarks/bench_builtin.py --commitment.

Decoder (the VAE-decoder analogue): the posterior weights of the data
latents at a small DECODE_SIGMA, from the likelihood alone (no prompt prior),
mix the full-resolution data images. A latent on a data latent decodes to
that image, crisp; a latent between data latents decodes to a smooth blend.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .denoiser import to_model_space

LATENT_FACTOR = 4  # image pixels per latent cell along each axis
LATENT_SCALE = 0.15  # latents span [-0.15, 0.15]; nearest data latents lie ~0.5-1 apart
DECODE_SIGMA = 0.02  # in latent units; far below the distance between distinct data latents


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
    return LATENT_SCALE * to_model_space(downsample(images))


class LatentDecoder:
    """Maps latents (B, 3, h, w) to full-resolution images (B, 3, H, W) in [0, 1]."""

    def __init__(self, images: torch.Tensor, sigma: float = DECODE_SIGMA):
        if not sigma > 0:
            raise ValueError(f"decode sigma must be > 0, got {sigma!r}")
        self.sigma = float(sigma)
        self.image_shape = tuple(images.shape[1:])
        # Weights sum to 1, so mixing the [0, 1] images needs no copy in model space.
        self.pixels = images.float().reshape(images.shape[0], -1)
        latents = encode(images).double()
        self.latent_shape = tuple(latents.shape[1:])
        self.latents_t = latents.reshape(latents.shape[0], -1).t().contiguous()  # (d, N)
        self.half_sq_norms = 0.5 * (self.latents_t**2).sum(0)

    def weights(self, latents: torch.Tensor) -> torch.Tensor:
        """(B, N) likelihood weights of each data image at each latent (float64)."""
        if latents.ndim != 4 or tuple(latents.shape[1:]) != self.latent_shape:
            raise ValueError(f"latents must be (B, {', '.join(map(str, self.latent_shape))}), "
                             f"got {tuple(latents.shape)}")
        flat = latents.reshape(latents.shape[0], -1).double()
        fit = (flat @ self.latents_t - self.half_sq_norms) / self.sigma**2
        return torch.softmax(fit, dim=1)

    def __call__(self, latents: torch.Tensor) -> torch.Tensor:
        mixed = self.weights(latents).float() @ self.pixels
        return mixed.clamp_(0.0, 1.0).reshape(latents.shape[0], *self.image_shape)
