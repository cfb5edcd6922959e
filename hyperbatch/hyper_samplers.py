"""Hyperbatch samplers: DPM++ 2M and DPM++ SDE over a batch grown from one image.

Signatures follow k-diffusion's samplers, plus the hyperbatch keywords:
``group_size`` (population batching), ``branch_noise`` (unit noise per image
for the splits; default ``x / sigmas[0]``), ``split_eta`` and ``trace_out``.
See growth.py for how the batch grows and docs/hyperbatch.md for the method.
"""
from __future__ import annotations

import torch

from .growth import GrowthOptions, grow
from .noise import default_brownian_noise
from .steps import dpmpp_2m_step, dpmpp_sde_step


def _dpmpp_2m_growth_step(row_model, x, sigmas, i, denoised, old_denoised, noise):
    """2M step; its history (the previous model output) travels with each branch."""
    sigma_prev = sigmas[i - 1] if i > 0 else None
    x_next, data_estimate = dpmpp_2m_step(x, sigmas[i], sigmas[i + 1], sigma_prev, denoised, old_denoised)
    return x_next, data_estimate, denoised


def _dpmpp_sde_growth_step(eta, s_noise, r):
    def step(row_model, x, sigmas, i, denoised, history, noise):
        x_next, data_estimate = dpmpp_sde_step(row_model, x, sigmas[i], sigmas[i + 1], denoised, noise,
                                               eta=eta, s_noise=s_noise, r=r)
        return x_next, data_estimate, None
    return step


@torch.no_grad()
def sample_dpmpp_2m_hyperbatch(model, x, sigmas, extra_args=None, callback=None, disable=None,
                               group_size=None, branch_noise=None, split_eta=1.0, trace_out=None):
    """DPM-Solver++(2M) over a hyperbatch (deterministic between splits)."""
    options = GrowthOptions(group_size, branch_noise, split_eta, trace_out)
    return grow(_dpmpp_2m_growth_step, model, x, sigmas, extra_args, callback, disable, options)


@torch.no_grad()
def sample_dpmpp_sde_hyperbatch(model, x, sigmas, extra_args=None, callback=None, disable=None,
                                eta=1.0, s_noise=1.0, noise_sampler=None, r=0.5,
                                group_size=None, branch_noise=None, split_eta=1.0, trace_out=None):
    """DPM-Solver++ (stochastic) over a hyperbatch; noise_sampler gives full-batch noise."""
    noise_sampler = default_brownian_noise(x, sigmas) if noise_sampler is None else noise_sampler
    options = GrowthOptions(group_size, branch_noise, split_eta, trace_out)
    return grow(_dpmpp_sde_growth_step(eta, s_noise, r), model, x, sigmas, extra_args, callback,
                disable, options, noise_sampler=noise_sampler)
