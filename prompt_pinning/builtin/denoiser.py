"""The exact denoiser of the built-in image set, with classifier-free guidance.

The data y_n are [0, 1] pictures mapped to [-1, 1] and multiplied by
``scale`` (the built-in model passes its downsampled images, giving its
latents; see latents.py). With prior logits l_n and x = y + sigma * noise,
the posterior mean is

    D(x, sigma, l) = sum_n softmax_n(l_n - |x - y_n|^2 / (2 sigma^2)) y_n

The |x|^2 part of the distance is the same for every image, so the softmax
uses l_n + (x . y_n - |y_n|^2 / 2) / sigma^2, which avoids cancelling large
numbers. Guidance as in Stable Diffusion: D_u + scale * (D_c - D_u).
"""
from __future__ import annotations

import torch

SIGMA_MIN = 0.002
SIGMA_MAX = 80.0  # large enough that the start x barely favours any image
SIGMA_FLOOR = 1e-6  # sigma 0 is treated as this (the nearest image wins)


def to_model_space(images: torch.Tensor) -> torch.Tensor:
    """[0, 1] images to the model's [-1, 1] space."""
    return images * 2.0 - 1.0


def to_image_space(x: torch.Tensor) -> torch.Tensor:
    """Model-space samples to float32 images in [0, 1]."""
    return ((x + 1.0) / 2.0).clamp(0.0, 1.0).float()


class PosteriorMeanDenoiser:
    """k-diffusion-style model: ``model(x, sigma, cond=..., uncond=..., cond_scale=...)``.

    ``cond``/``uncond`` are (rows, N) prior logits, one row per row of x, so a
    sampler can select rows of x and of the logits together.
    """

    sigma_min = SIGMA_MIN
    sigma_max = SIGMA_MAX

    def __init__(self, images: torch.Tensor, scale: float = 1.0):
        if images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"images must be (N, 3, H, W), got shape {tuple(images.shape)}")
        if not scale > 0:
            raise ValueError(f"scale must be > 0, got {scale!r}")
        self.image_shape = tuple(images.shape[1:])
        self.data = (scale * to_model_space(images.float())).reshape(images.shape[0], -1).contiguous()
        self.data_t = self.data.t().contiguous()  # (D, N): x @ data_t gives x . y_n
        self.half_sq_norms = 0.5 * (self.data.double() ** 2).sum(1).float()

    @property
    def image_count(self) -> int:
        return self.data.shape[0]

    def posterior_weights(self, x: torch.Tensor, sigma: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        """(rows, N) posterior probability of each image for each row of x."""
        rows = x.shape[0]
        self._check(x, logits, "logits")
        sigma = _per_row(sigma, rows).clamp_min(SIGMA_FLOOR)
        flat = x.reshape(rows, -1).float()
        fit = (flat @ self.data_t - self.half_sq_norms) / (sigma**2)[:, None]
        return torch.softmax(logits.float() + fit, dim=1)

    def posterior_mean(self, x: torch.Tensor, sigma: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        weights = self.posterior_weights(x, sigma, logits)
        return (weights @ self.data).reshape(x.shape)

    def __call__(self, x: torch.Tensor, sigma, cond: torch.Tensor, uncond: torch.Tensor | None = None,
                 cond_scale: float = 1.0) -> torch.Tensor:
        if uncond is None or cond_scale == 1.0:
            return self.posterior_mean(x, sigma, cond)
        rows = x.shape[0]
        self._check(x, uncond, "uncond")
        sigma = _per_row(sigma, rows)
        both = self.posterior_mean(torch.cat([x, x]), torch.cat([sigma, sigma]), torch.cat([cond, uncond]))
        positive, negative = both[:rows], both[rows:]
        return negative + cond_scale * (positive - negative)

    def _check(self, x: torch.Tensor, logits: torch.Tensor, name: str) -> None:
        if tuple(x.shape[1:]) != self.image_shape:
            raise ValueError(f"x must be (rows, {', '.join(map(str, self.image_shape))}), got {tuple(x.shape)}")
        if logits.shape != (x.shape[0], self.image_count):
            raise ValueError(
                f"{name} must be (rows, images) = ({x.shape[0]}, {self.image_count}), got {tuple(logits.shape)}"
            )


def _per_row(sigma, rows: int) -> torch.Tensor:
    sigma = torch.as_tensor(sigma, dtype=torch.float32)
    if sigma.ndim == 0:
        return sigma.expand(rows)
    if sigma.shape != (rows,):
        raise ValueError(f"sigma must be a scalar or one value per row ({rows}), got shape {tuple(sigma.shape)}")
    return sigma.float()
