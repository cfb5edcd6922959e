"""Plain (non-hyperbatch) samplers with k-diffusion's signature.

``model(x, sigma_per_row, **extra_args)`` returns the denoised estimate; every
row of ``x`` is sampled for every step. The callback gets k-diffusion's dict
(x, i, sigma, sigma_hat, denoised) plus image_steps_done / image_steps_total.
"""
from __future__ import annotations

import torch
from tqdm.auto import tqdm

from .noise import default_brownian_noise
from .steps import ancestral_split, dpmpp_2m_step, dpmpp_sde_step, euler_step


def check_sigmas(sigmas: torch.Tensor) -> None:
    """Reject sigma sequences the samplers cannot use."""
    if not isinstance(sigmas, torch.Tensor) or sigmas.ndim != 1 or sigmas.numel() < 2:
        raise ValueError("sigmas must be a 1-D tensor of at least 2 values (steps + 1, ending in 0)")
    if bool((sigmas[:-1] <= 0).any()) or bool((sigmas < 0).any()):
        raise ValueError("sigmas must be positive except for the last value, which may be 0")


def _progress(total: int, disable):
    return tqdm(total=total, disable=disable, unit="img-step")


def _report(callback, bar, x, i, sigma, denoised, done, total):
    bar.update(done - bar.n)
    if callback is not None:
        callback({"x": x, "i": i, "sigma": sigma, "sigma_hat": sigma, "denoised": denoised,
                  "image_steps_done": done, "image_steps_total": total})


@torch.no_grad()
def sample_euler(model, x, sigmas, extra_args=None, callback=None, disable=None):
    """Euler steps of the probability-flow ODE (no churn)."""
    return _euler(model, x, sigmas, extra_args, callback, disable, eta=0.0)


@torch.no_grad()
def sample_euler_ancestral(model, x, sigmas, extra_args=None, callback=None, disable=None,
                           eta=1.0, s_noise=1.0, noise_sampler=None):
    """Euler steps down to sigma_down, then fresh noise of std sigma_up ("Euler a")."""
    if eta and noise_sampler is None:
        noise_sampler = default_brownian_noise(x, sigmas)
    return _euler(model, x, sigmas, extra_args, callback, disable, eta, s_noise, noise_sampler)


def _euler(model, x, sigmas, extra_args, callback, disable, eta, s_noise=1.0, noise_sampler=None):
    check_sigmas(sigmas)
    extra_args = {} if extra_args is None else extra_args
    ones = x.new_ones([x.shape[0]])
    steps, rows = len(sigmas) - 1, x.shape[0]
    with _progress(steps * rows, disable) as bar:
        for i in range(steps):
            denoised = model(x, sigmas[i] * ones, **extra_args)
            _report(callback, bar, x, i, sigmas[i], denoised, (i + 1) * rows, steps * rows)
            down, up = ancestral_split(sigmas[i], sigmas[i + 1], eta)
            x = euler_step(x, sigmas[i], down, denoised)
            if eta and sigmas[i + 1] > 0:
                x = x + noise_sampler(sigmas[i], sigmas[i + 1]) * s_noise * up
    return x


@torch.no_grad()
def sample_dpmpp_2m(model, x, sigmas, extra_args=None, callback=None, disable=None):
    """DPM-Solver++(2M): second-order multistep, deterministic."""
    check_sigmas(sigmas)
    extra_args = {} if extra_args is None else extra_args
    ones = x.new_ones([x.shape[0]])
    steps, rows = len(sigmas) - 1, x.shape[0]
    old_denoised = None
    with _progress(steps * rows, disable) as bar:
        for i in range(steps):
            denoised = model(x, sigmas[i] * ones, **extra_args)
            _report(callback, bar, x, i, sigmas[i], denoised, (i + 1) * rows, steps * rows)
            sigma_prev = sigmas[i - 1] if i > 0 else None
            x, _ = dpmpp_2m_step(x, sigmas[i], sigmas[i + 1], sigma_prev, denoised, old_denoised)
            old_denoised = denoised
    return x


@torch.no_grad()
def sample_dpmpp_sde(model, x, sigmas, extra_args=None, callback=None, disable=None,
                     eta=1.0, s_noise=1.0, noise_sampler=None, r=0.5):
    """DPM-Solver++ (stochastic): two model calls per step, Brownian noise."""
    check_sigmas(sigmas)
    extra_args = {} if extra_args is None else extra_args
    noise_sampler = default_brownian_noise(x, sigmas) if noise_sampler is None else noise_sampler
    ones = x.new_ones([x.shape[0]])
    steps, rows = len(sigmas) - 1, x.shape[0]

    def row_model(x_rows, sigma):
        return model(x_rows, sigma * ones, **extra_args)

    with _progress(steps * rows, disable) as bar:
        for i in range(steps):
            denoised = row_model(x, sigmas[i])
            _report(callback, bar, x, i, sigmas[i], denoised, (i + 1) * rows, steps * rows)
            x, _ = dpmpp_sde_step(row_model, x, sigmas[i], sigmas[i + 1], denoised, noise_sampler,
                                  eta=eta, s_noise=s_noise, r=r)
    return x
