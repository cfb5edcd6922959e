"""A diffusers UNet as a k-diffusion-style denoiser, for the project's samplers.

``model(x, sigma_per_row, cond=rows, uncond=rows, cond_scale=s)`` returns the
denoised estimate with classifier-free guidance; ``cond`` and ``uncond`` are
lists with one ``Encoded`` per row (text.py), so hyperbatch samplers can pick
rows from them. Rows whose contexts have the same length share one UNet call
(cond and uncond together); others get a call per length. The sampler state
stays float32; the UNet runs in its own dtype.
"""
from __future__ import annotations

from typing import Optional, Sequence

import torch
from torch import nn

from .text import Encoded


def training_sigmas(config: Optional[dict] = None) -> torch.Tensor:
    """The model's training sigmas, ascending, from a diffusers scheduler config.

    Without one: SD1.x and SDXL's schedule ("scaled_linear" betas 0.00085..0.012 over 1000 steps).
    """
    config = dict(config or {})
    start, end = float(config.get("beta_start", 0.00085)), float(config.get("beta_end", 0.012))
    steps, kind = int(config.get("num_train_timesteps", 1000)), config.get("beta_schedule", "scaled_linear")
    if kind == "scaled_linear":
        betas = torch.linspace(start**0.5, end**0.5, steps, dtype=torch.float64) ** 2
    elif kind == "linear":
        betas = torch.linspace(start, end, steps, dtype=torch.float64)
    else:
        raise ValueError(f"beta_schedule {kind!r} is not supported; supported: scaled_linear, linear")
    alphas_cumprod = torch.cumprod(1.0 - betas, dim=0)
    return ((1 - alphas_cumprod) / alphas_cumprod).sqrt().float()


class UNetDenoiser:
    """k-diffusion-style wrapper of an eps- or v-predicting UNet; see the module docstring.

    ``time_ids`` (SDXL): the six size/crop numbers (original size, crop corner,
    target size) every row gets; None for SD1.x.
    """

    def __init__(self, unet: nn.Module, dtype: torch.dtype, device, scheduler_config: Optional[dict] = None):
        self.unet, self.dtype, self.device = unet, dtype, torch.device(device)
        prediction = (scheduler_config or {}).get("prediction_type", "epsilon")
        if prediction not in ("epsilon", "v_prediction"):
            raise ValueError(f"prediction_type {prediction!r} is not supported; supported: epsilon, v_prediction")
        self.v_prediction = prediction == "v_prediction"
        sigmas = training_sigmas(scheduler_config)
        self.log_sigmas = sigmas.log().to(self.device)
        self.sigma_min, self.sigma_max = float(sigmas[0]), float(sigmas[-1])
        self.time_ids: Optional[torch.Tensor] = None

    def timesteps(self, sigma: torch.Tensor) -> torch.Tensor:
        """Fractional training timestep of each sigma (linear in log sigma)."""
        log_sigmas = self.log_sigmas.to(sigma.device)
        log_sigma = sigma.float().log().clamp(log_sigmas[0], log_sigmas[-1])
        high = torch.searchsorted(log_sigmas, log_sigma).clamp(1, len(log_sigmas) - 1)
        low_value, high_value = log_sigmas[high - 1], log_sigmas[high]
        return high - 1 + (log_sigma - low_value) / (high_value - low_value)

    def denoise(self, x: torch.Tensor, sigma: torch.Tensor, rows: Sequence[Encoded]) -> torch.Tensor:
        """The denoised estimate of every row (sigma per row; contexts of one length)."""
        context = torch.stack([r.context for r in rows]).to(self.device, self.dtype)
        added = None
        if self.time_ids is not None:
            pooled = torch.stack([r.pooled for r in rows]).to(self.device, self.dtype)
            added = {"text_embeds": pooled,
                     "time_ids": self.time_ids.to(self.device, self.dtype).expand(len(rows), -1)}
        scale_in = (sigma**2 + 1).rsqrt()[:, None, None, None]
        out = self.unet((x * scale_in).to(self.dtype), self.timesteps(sigma), encoder_hidden_states=context,
                        added_cond_kwargs=added).sample.float()
        s = sigma[:, None, None, None]
        if self.v_prediction:
            return x / (s**2 + 1) - out * s * (s**2 + 1).rsqrt()
        return x - out * s

    def grouped(self, x: torch.Tensor, sigma: torch.Tensor, rows: Sequence[Encoded]) -> torch.Tensor:
        """``denoise`` with one UNet call per context length."""
        lengths = [r.context.shape[0] for r in rows]
        if len(set(lengths)) == 1:
            return self.denoise(x, sigma, rows)
        out = torch.empty_like(x)
        for length in sorted(set(lengths)):
            index = [k for k, n in enumerate(lengths) if n == length]
            picked = torch.tensor(index, device=x.device)
            out[picked] = self.denoise(x[picked], sigma[picked], [rows[k] for k in index])
        return out

    def __call__(self, x, sigma, cond, uncond=None, cond_scale: float = 1.0):
        n = x.shape[0]
        sigma = torch.as_tensor(sigma, dtype=torch.float32, device=x.device).expand(n)
        if uncond is None or cond_scale == 1.0:
            return self.grouped(x, sigma, cond)
        both = self.grouped(torch.cat([x, x]), torch.cat([sigma, sigma]), [*cond, *uncond])
        positive, negative = both[:n], both[n:]
        return negative + cond_scale * (positive - negative)
