"""Hyperbatch samplers: batches that grow from one image by splitting.

``SAMPLERS`` maps the sampler names shown to users to a ``SamplerSpec``;
``get_sampler(name)`` looks one up. No host (WebUI) imports here.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

from .hyper_samplers import sample_dpmpp_2m_hyperbatch, sample_dpmpp_sde_hyperbatch
from .rows import register_row_selector, select_rows, unregister_row_selector
from .samplers import sample_dpmpp_2m, sample_dpmpp_sde, sample_euler, sample_euler_ancestral
from .schedule import active_rows, batch_schedule, image_step_ratio, image_steps, traces
from .sigmas import exponential_sigmas, karras_sigmas, make_sigmas


@dataclass(frozen=True)
class SamplerSpec:
    """A sampler as a host sees it."""

    name: str
    function: Callable
    hyperbatch: bool  # grows the batch from one image; produces traces
    needs_noise_sampler: bool  # stochastic (SDE): takes a per-image seeded noise_sampler
    scheduler: Optional[str]  # default schedule: "karras", "exponential" or None (host default)


SAMPLERS: dict[str, SamplerSpec] = {
    spec.name: spec
    for spec in (
        SamplerSpec("Euler", sample_euler, False, False, None),
        SamplerSpec("Euler a", sample_euler_ancestral, False, True, None),
        SamplerSpec("DPM++ 2M", sample_dpmpp_2m, False, False, "karras"),
        SamplerSpec("DPM++ SDE", sample_dpmpp_sde, False, True, "karras"),
        SamplerSpec("DPM++ 2M Karras - Hyperbatch", sample_dpmpp_2m_hyperbatch, True, False, "karras"),
        SamplerSpec("DPM++ SDE Karras - Hyperbatch", sample_dpmpp_sde_hyperbatch, True, True, "karras"),
        SamplerSpec("DPM++ SDE - Hyperbatch", sample_dpmpp_sde_hyperbatch, True, True, None),
    )
}


def get_sampler(name: str) -> SamplerSpec:
    """The SamplerSpec called ``name``; ValueError listing the valid names otherwise."""
    try:
        return SAMPLERS[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown sampler {name!r}; valid: {', '.join(SAMPLERS)}") from None


__all__ = [
    "SAMPLERS", "SamplerSpec", "get_sampler",
    "sample_euler", "sample_euler_ancestral", "sample_dpmpp_2m", "sample_dpmpp_sde",
    "sample_dpmpp_2m_hyperbatch", "sample_dpmpp_sde_hyperbatch",
    "karras_sigmas", "exponential_sigmas", "make_sigmas",
    "batch_schedule", "traces", "active_rows", "image_steps", "image_step_ratio",
    "select_rows", "register_row_selector", "unregister_row_selector",
]
