"""Noise schedules (sigma sequences) for the samplers.

Each function returns ``n + 1`` descending sigmas: ``n`` noise levels from
``sigma_max`` down to ``sigma_min`` followed by a final 0.
"""
from __future__ import annotations

import math

import torch


def _check_schedule_args(n: int, sigma_min: float, sigma_max: float) -> None:
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise ValueError(f"n (number of steps) must be an int >= 1, got {n!r}")
    if not (0 < sigma_min < sigma_max):
        raise ValueError(
            f"need 0 < sigma_min < sigma_max, got sigma_min={sigma_min!r}, sigma_max={sigma_max!r}"
        )


def _with_final_zero(sigmas: torch.Tensor) -> torch.Tensor:
    return torch.cat([sigmas, sigmas.new_zeros(1)])


def karras_sigmas(n: int, sigma_min: float, sigma_max: float, rho: float = 7.0, device="cpu") -> torch.Tensor:
    """Karras et al. (2022) schedule: sigmas evenly spaced in sigma**(1/rho)."""
    _check_schedule_args(n, sigma_min, sigma_max)
    if rho <= 0:
        raise ValueError(f"rho must be > 0, got {rho!r}")
    fraction = torch.linspace(0, 1, n)
    top, bottom = sigma_max ** (1 / rho), sigma_min ** (1 / rho)
    sigmas = (top + fraction * (bottom - top)) ** rho
    return _with_final_zero(sigmas).to(device)


def exponential_sigmas(n: int, sigma_min: float, sigma_max: float, device="cpu") -> torch.Tensor:
    """Sigmas evenly spaced in log(sigma)."""
    _check_schedule_args(n, sigma_min, sigma_max)
    log_sigmas = torch.linspace(math.log(sigma_max), math.log(sigma_min), n, device=device)
    return _with_final_zero(log_sigmas.exp())


SCHEDULES = {"karras": karras_sigmas, "exponential": exponential_sigmas}


def make_sigmas(scheduler: str, n: int, sigma_min: float, sigma_max: float, device="cpu") -> torch.Tensor:
    """Build a schedule by name ("karras" or "exponential")."""
    if scheduler not in SCHEDULES:
        raise ValueError(f"unknown scheduler {scheduler!r}; valid: {sorted(SCHEDULES)}")
    return SCHEDULES[scheduler](n, sigma_min, sigma_max, device=device)
