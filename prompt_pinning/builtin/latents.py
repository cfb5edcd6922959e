"""The built-in model's latent space and its encoder.

Like Stable Diffusion, the built-in model diffuses in a small latent space
with four channels and decodes only the final latent to pixels
(LayoutDenoiser.decode). The latent grid is ceil(H / 4) x ceil(W / 4).

- Channels 0-2 (colour): the image area-averaged onto the grid, mapped to
  [-1, 1] and multiplied by LATENT_SCALE (as Stable Diffusion scales its VAE
  latents by 0.18215).
- Channel 3 (structure): where the shape is, as drawn in its layout before
  the prompt moves it: 2 m - 1 times LATENT_SCALE, m the coverage. It holds
  no colour, so the layout a sample settles on depends on its seed alone.

Colours in the latent are unbounded (guidance can push them past the
gamut); the decoder shows them through ``tone``, the identity between
TONE_KNEE and 1 - TONE_KNEE with smooth exponential shoulders towards 0 and
1, so more push keeps making a colour more intense, never clipped flat.
The encoder applies the inverse, ``untone``.

The scale sets how close different layouts' latents sit relative to the
noise, and so when a sample commits to one layout. Encoding an arbitrary
image (img2img) estimates the structure channel from each pixel's colour
distance to the image's border colour.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

LATENT_FACTOR = 4  # image pixels per latent cell along each axis
LATENT_SCALE = 0.15  # latents span [-0.15, 0.15]
LATENT_CHANNELS = 4  # three colour channels and the structure channel
STRUCTURE = 3  # the structure channel's index
TONE_KNEE = 0.15  # tone() is the identity on [TONE_KNEE, 1 - TONE_KNEE]
TONE_LIMIT = 1e-3  # untone() clamps display values to [TONE_LIMIT, 1 - TONE_LIMIT]
OBJECT_CONTRAST = 0.3  # colour distance from the border colour that counts as fully inside the shape


def latent_size(width: int, height: int) -> tuple[int, int]:
    """(h, w) of the latent grid for an image of width x height pixels."""
    return math.ceil(height / LATENT_FACTOR), math.ceil(width / LATENT_FACTOR)


def downsample(images: torch.Tensor) -> torch.Tensor:
    """Area-average (N, C, H, W) images onto the latent grid (any H, W)."""
    if images.ndim != 4:
        raise ValueError(f"images must be (N, C, H, W), got shape {tuple(images.shape)}")
    h, w = latent_size(images.shape[3], images.shape[2])
    return F.adaptive_avg_pool2d(images.float(), (h, w))


def tone(colour: torch.Tensor) -> torch.Tensor:
    """Latent colour values (any real) to display values in (0, 1); smooth and increasing."""
    k = TONE_KNEE
    high = 1.0 - k * torch.exp(-(colour - (1.0 - k)).clamp_min(0.0) / k)
    low = k * torch.exp((colour - k).clamp_max(0.0) / k)
    return torch.where(colour > 1.0 - k, high, torch.where(colour < k, low, colour))


def untone(display: torch.Tensor) -> torch.Tensor:
    """The inverse of ``tone`` (display values clamped to [TONE_LIMIT, 1 - TONE_LIMIT] first)."""
    k, v = TONE_KNEE, display.clamp(TONE_LIMIT, 1.0 - TONE_LIMIT)
    high = (1.0 - k) - k * torch.log((1.0 - v).clamp_max(k) / k)
    low = k + k * torch.log(v.clamp_max(k) / k)
    return torch.where(v > 1.0 - k, high, torch.where(v < k, low, v))


def estimated_coverage(images: torch.Tensor) -> torch.Tensor:
    """(N, 1, H, W) in [0, 1]: how far each pixel's colour is from the median border colour."""
    border = torch.cat([images[:, :, 0], images[:, :, -1], images[:, :, :, 0], images[:, :, :, -1]], dim=2)
    background = border.median(dim=2).values[:, :, None, None]
    return ((images - background).norm(dim=1, keepdim=True) / OBJECT_CONTRAST).clamp(0.0, 1.0)


def encode(images: torch.Tensor) -> torch.Tensor:
    """(N, 3, H, W) images in [0, 1] to (N, 4, h, w) latents (structure in [-LATENT_SCALE, LATENT_SCALE])."""
    if images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"images must be (N, 3, H, W), got shape {tuple(images.shape)}")
    images = images.float()
    both = torch.cat([untone(images), estimated_coverage(images)], dim=1)
    return LATENT_SCALE * (2.0 * downsample(both) - 1.0)
