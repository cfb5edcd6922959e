"""Single solver steps shared by the plain and the hyperbatch samplers.

Conventions (k-diffusion's): ``denoised = model(x, sigma_per_row)`` is the
model's estimate of the clean image; sigmas are 0-d tensors; the DPM-Solver++
steps work in t = -log(sigma).

Each DPM++ step returns ``(x_next, data_estimate)``: the data estimate is the
clean-image prediction the step's final first-order update moved towards, so
``x_next = (s'/s) x + (1 - s'/s) data_estimate`` for some target s'. Splits use
it to turn the step into an ancestral one for a new branch (see splitting.py).
"""
from __future__ import annotations

from typing import Callable, Optional

import torch

NoiseFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
RowModel = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # (x, sigma scalar) -> denoised


def neg_log(sigma: torch.Tensor) -> torch.Tensor:
    """t = -log(sigma)."""
    return sigma.log().neg()


def exp_neg(t: torch.Tensor) -> torch.Tensor:
    """sigma = exp(-t)."""
    return t.neg().exp()


def ancestral_split(sigma_from, sigma_to, eta: float = 1.0):
    """Split a move sigma_from -> sigma_to into (sigma_down, sigma_up).

    The deterministic part goes to sigma_down; fresh noise of std sigma_up is
    added so the total noise level is sigma_to again (down^2 + up^2 = to^2).
    """
    if not eta:
        return sigma_to, sigma_to * 0
    up = eta * (sigma_to**2 * (sigma_from**2 - sigma_to**2) / sigma_from**2) ** 0.5
    up = torch.minimum(torch.as_tensor(sigma_to), torch.as_tensor(up))
    down = (sigma_to**2 - up**2) ** 0.5
    return down, up


def first_order_update(x, t, t_target, data_estimate):
    """DPM-Solver++ first-order move of x from time t to t_target towards data_estimate."""
    return (exp_neg(t_target) / exp_neg(t)) * x - (t - t_target).expm1() * data_estimate


def euler_step(x, sigma, sigma_next, denoised):
    """Euler step of the probability-flow ODE dx/dsigma = (x - denoised) / sigma."""
    slope = (x - denoised) / sigma
    return x + slope * (sigma_next - sigma)


def dpmpp_2m_step(x, sigma, sigma_next, sigma_prev: Optional[torch.Tensor], denoised,
                  old_denoised: Optional[torch.Tensor]):
    """One DPM-Solver++(2M) step; returns (x_next, data_estimate).

    ``old_denoised``/``sigma_prev`` are the previous step's model output and
    sigma (None on the first step, which is first order, as is the last step).
    """
    if sigma_next == 0:
        return denoised.clone(), denoised
    t, t_next = neg_log(sigma), neg_log(sigma_next)
    h = t_next - t
    if old_denoised is None:
        data_estimate = denoised
    else:
        ratio = (t - neg_log(sigma_prev)) / h
        weight_old = 1 / (2 * ratio)
        data_estimate = (1 + weight_old) * denoised - weight_old * old_denoised
    x_next = (exp_neg(t_next) / exp_neg(t)) * x - (-h).expm1() * data_estimate
    return x_next, data_estimate


def dpmpp_sde_step(model: RowModel, x, sigma, sigma_next, denoised, noise: NoiseFn,
                   eta: float = 1.0, s_noise: float = 1.0, r: float = 0.5):
    """One DPM-Solver++ (stochastic, 2 model calls) step; returns (x_next, data_estimate).

    ``model(x, sigma)`` evaluates the current rows at a scalar sigma;
    ``noise(sigma_a, sigma_b)`` gives unit noise for the current rows.
    """
    if sigma_next == 0:
        return euler_step(x, sigma, sigma_next, denoised), denoised
    t, t_next = neg_log(sigma), neg_log(sigma_next)
    h = t_next - t
    t_mid = t + h * r
    sigma_mid = exp_neg(t_mid)
    # Stage 1: to the intermediate time, with ancestral noise.
    down, up = ancestral_split(sigma, sigma_mid, eta)
    x_mid = first_order_update(x, t, neg_log(down), denoised)
    x_mid = x_mid + noise(sigma, sigma_mid) * s_noise * up
    denoised_mid = model(x_mid, sigma_mid)
    # Stage 2: full step with the blended estimate, with ancestral noise.
    mix = 1 / (2 * r)
    data_estimate = (1 - mix) * denoised + mix * denoised_mid
    down, up = ancestral_split(sigma, sigma_next, eta)
    x_next = first_order_update(x, t, neg_log(down), data_estimate)
    x_next = x_next + noise(sigma, sigma_next) * s_noise * up
    return x_next, data_estimate
