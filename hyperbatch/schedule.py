"""The batch-doubling schedule of a hyperbatch and its ancestry traces.

A hyperbatch of B images and S steps starts as one row (the root) and splits
at the start of each of k = floor(log2 B) equal segments of d = S // (k + 1)
steps: level m (m = 0..k) runs 2**m rows, and the last level runs all B rows
(the leftover B - 2**k rows join in that last split). Steps left over by the
integer division run at full size. B=8, S=20: sizes 1, 2, 4, 8 for 5 steps each.

Rows are named by the final image they become. At a level with n rows the
active images are ``floor(i * B / n)`` for i < n (B=8: [0], [0,4], [0,2,4,6],
[0..7]); image j's ancestor at a level is the largest active image <= j.
When S <= k the batch cannot double in time: every step runs all B rows.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

log = logging.getLogger(__name__)


def _check(batch_size: int, steps: int) -> None:
    for name, value in (("batch_size", batch_size), ("steps", steps)):
        if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{name} must be an int >= 1, got {value!r}")


def doublings(batch_size: int) -> int:
    """k = floor(log2(batch_size)): the number of splits a hyperbatch makes."""
    return int(batch_size).bit_length() - 1


def doubling_enabled(batch_size: int, steps: int) -> bool:
    """Doubling needs more steps than splits (S > floor(log2 B))."""
    _check(batch_size, steps)
    return steps > doublings(batch_size)


def level_sizes(batch_size: int, steps: int) -> list[int]:
    """Rows at each level: [1, 2, 4, ..., B], or [B] when doubling is disabled."""
    if not doubling_enabled(batch_size, steps):
        return [batch_size]
    k = doublings(batch_size)
    return [2**m for m in range(k)] + [batch_size]


def level_rows(batch_size: int, rows: int) -> list[int]:
    """The final-image indices active at a level that runs ``rows`` rows."""
    if not 1 <= rows <= batch_size:
        raise ValueError(f"rows must be in 1..{batch_size}, got {rows}")
    return [i * batch_size // rows for i in range(rows)]


@lru_cache(maxsize=4096)
def step_levels(batch_size: int, steps: int) -> tuple[int, ...]:
    """The level (0-based) that runs at every step."""
    if not doubling_enabled(batch_size, steps):
        log.info("hyperbatch doubling disabled: %d steps <= floor(log2(%d)) = %d; "
                 "every step runs the full batch", steps, batch_size, doublings(batch_size))
        return (0,) * steps
    k = doublings(batch_size)
    segment = steps // (k + 1)
    return tuple(min(i // segment, k) for i in range(steps))


def batch_schedule(batch_size: int, steps: int) -> list[int]:
    """Batch size (rows run) at every step."""
    _check(batch_size, steps)
    sizes = level_sizes(batch_size, steps)
    return [sizes[level] for level in step_levels(batch_size, steps)]


def active_rows(batch_size: int, steps: int) -> list[list[int]]:
    """For every step, the final-image indices of the rows that run."""
    return [level_rows(batch_size, size) for size in batch_schedule(batch_size, steps)]


def traces(batch_size: int, steps: int) -> np.ndarray:
    """(B, L) int array: column K-1 holds each image's ancestor at level K (K=1 root).

    With doubling disabled there is one level and every image is its own root.
    """
    _check(batch_size, steps)
    columns = []
    for size in level_sizes(batch_size, steps):
        rows = np.asarray(level_rows(batch_size, size))
        # Largest active image <= j, for every image j.
        position = np.searchsorted(rows, np.arange(batch_size), side="right") - 1
        columns.append(rows[position])
    return np.stack(columns, axis=1).astype(np.int64)


def image_steps(batch_size: int, steps: int) -> int:
    """Model evaluations (image-steps) a hyperbatch spends, counting one per row per step."""
    return sum(batch_schedule(batch_size, steps))


def image_step_ratio(batch_size: int, steps: int) -> float:
    """Plain batch image-steps divided by hyperbatch image-steps (>= 1)."""
    return batch_size * steps / image_steps(batch_size, steps)


@dataclass(frozen=True)
class Split:
    """At step ``step`` the images ``new`` start, each from image ``parents[i]``."""

    step: int
    new: tuple[int, ...]
    parents: tuple[int, ...]


def splits(batch_size: int, steps: int) -> list[Split]:
    """Every split of the schedule, in step order."""
    result = []
    schedule = batch_schedule(batch_size, steps)
    for step in range(1, steps):
        if schedule[step] == schedule[step - 1]:
            continue
        before = level_rows(batch_size, schedule[step - 1])
        after = level_rows(batch_size, schedule[step])
        new = tuple(j for j in after if j not in set(before))
        positions = np.searchsorted(before, new, side="right") - 1
        result.append(Split(step, new, tuple(int(before[p]) for p in positions)))
    return result
