"""The hyperbatch driver: run a solver step over a batch that grows by splitting.

The host passes the full batch: ``x`` has B rows (x[j] = image j's seeded
noise times sigmas[0]) and ``extra_args`` is full-batch conditioning. The
driver starts from row 0 alone and follows ``schedule.batch_schedule``; at a
split, each new image j copies its parent's state and solver history, and the
split step becomes an ancestral step for it, with image j's own noise (see
``renoise_branch`` and docs/hyperbatch.md).

With ``group_size=B`` and P*B rows, each contiguous group of B rows is an
independent hyperbatch with the same schedule, all run in one model call.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Callable, Optional

import torch
from tqdm.auto import tqdm

from .rows import select_rows
from .samplers import check_sigmas
from .schedule import batch_schedule, level_rows, splits, traces

log = logging.getLogger(__name__)

# step(row_model, x, sigmas, i, denoised, history, noise) -> (x_next, data_estimate, history)
Step = Callable[..., tuple]


@dataclass
class GrowthOptions:
    """Hyperbatch settings shared by every hyperbatch sampler."""

    group_size: Optional[int] = None  # B; None = the whole of x is one hyperbatch
    branch_noise: Optional[torch.Tensor] = None  # unit noise per image; default x / sigmas[0]
    split_eta: float = 1.0  # ancestral strength of the split step for new branches
    trace_out: Optional[list] = None  # if given, the (B, L) traces are appended to it


def split_noise_fraction(sigma_from, sigma_to, split_eta: float) -> torch.Tensor:
    """Share a of the noise at sigma_to that a new branch draws afresh.

    It is sigma_up / sigma_to of an ancestral step sigma_from -> sigma_to with
    eta = split_eta: a = eta * sqrt(1 - (sigma_to / sigma_from)^2), at most 1.
    """
    ratio = torch.as_tensor(sigma_to / sigma_from)
    return torch.clamp(split_eta * torch.sqrt(torch.clamp(1 - ratio**2, min=0)), max=1.0)


def renoise_branch(x, data_estimate, sigma, fraction, unit_noise):
    """Swap a share of a branch's noise for fresh noise, keeping its noise level.

    x = data_estimate + sigma * n  ->  data_estimate + sigma * (sqrt(1-a^2) n + a z).
    """
    keep = torch.sqrt(1 - fraction**2)
    return data_estimate + keep * (x - data_estimate) + sigma * fraction * unit_noise


def _check_batch(x: torch.Tensor, group_size: Optional[int]) -> tuple[int, int]:
    total = x.shape[0]
    size = total if group_size is None else group_size
    if not isinstance(size, int) or size < 1 or total % size:
        raise ValueError(
            f"group_size must be a positive int dividing the rows of x ({total}), got {group_size!r}"
        )
    return size, total // size


def _global_rows(active: list[int], batch_size: int, groups: int) -> list[int]:
    return [g * batch_size + a for g in range(groups) for a in active]


def _gather_for_split(old_active, new_active, parents_of_new, groups):
    """Indices into the old state that give each new-state row its source row."""
    position = {image: p for p, image in enumerate(old_active)}
    source = [position[parents_of_new.get(j, j)] for j in new_active]
    return [g * len(old_active) + s for g in range(groups) for s in source]


def _index(value, index):
    if value is None:
        return None
    if isinstance(value, tuple):
        return tuple(_index(v, index) for v in value)
    return value[index]


def grow(step: Step, model, x, sigmas, extra_args=None, callback=None, disable=None,
         options: Optional[GrowthOptions] = None, noise_sampler=None):
    """Run ``step`` over a hyperbatch; returns the final x with all rows."""
    check_sigmas(sigmas)
    options = options or GrowthOptions()
    extra_args = {} if extra_args is None else extra_args
    batch_size, groups = _check_batch(x, options.group_size)
    steps = len(sigmas) - 1
    schedule = batch_schedule(batch_size, steps)
    split_at = {s.step: s for s in splits(batch_size, steps)}
    if batch_size > 1 and not split_at:
        log.info("hyperbatch: %d steps are too few to grow a batch of %d; running all rows at every step",
                 steps, batch_size)
    if options.trace_out is not None:
        options.trace_out.append(traces(batch_size, steps))
    unit_noise = options.branch_noise if options.branch_noise is not None else x / sigmas[0]
    if unit_noise.shape != x.shape:
        raise ValueError(f"branch_noise must have x's shape {tuple(x.shape)}, got {tuple(unit_noise.shape)}")

    active = level_rows(batch_size, schedule[0])
    rows = _global_rows(active, batch_size, groups)
    state = x[rows]
    history, data_estimate = None, None
    total = groups * sum(schedule)
    done = 0
    with tqdm(total=total, disable=disable, unit="img-step") as bar:
        for i in range(steps):
            if i in split_at:
                split = split_at[i]
                parents = dict(zip(split.new, split.parents))
                new_active = level_rows(batch_size, schedule[i])
                gather = _gather_for_split(active, new_active, parents, groups)
                state, data_estimate = state[gather], data_estimate[gather]
                history = _index(history, gather)
                rows = _global_rows(new_active, batch_size, groups)
                fresh = [p for p, r in enumerate(rows) if r % batch_size in parents]
                fraction = split_noise_fraction(sigmas[i - 1], sigmas[i], options.split_eta)
                state[fresh] = renoise_branch(state[fresh], data_estimate[fresh], sigmas[i],
                                              fraction, unit_noise[[rows[p] for p in fresh]])
                active = new_active
            if i == 0 or i in split_at:
                args = select_rows(extra_args, rows, x.shape[0])
                ones = x.new_ones([len(rows)])

            def row_model(x_rows, sigma, _args=args, _ones=ones):
                return model(x_rows, sigma * _ones, **_args)

            def row_noise(sigma_a, sigma_b, _rows=rows):
                return noise_sampler(sigma_a, sigma_b)[_rows]

            denoised = row_model(state, sigmas[i])
            done += len(rows)
            bar.update(len(rows))
            if callback is not None:
                callback({"x": state, "i": i, "sigma": sigmas[i], "sigma_hat": sigmas[i],
                          "denoised": denoised, "rows": rows,
                          "image_steps_done": done, "image_steps_total": total})
            state, data_estimate, history = step(row_model, state, sigmas, i, denoised, history,
                                                 row_noise if noise_sampler is not None else None)
    out = torch.empty_like(x)
    out[rows] = state
    return out
