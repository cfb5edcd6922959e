"""Seed blocks: which seeds a generation trains on and which seeds validate.

Seeds come in blocks of ``batch_size``: block k starts at ``seed + k * batch_size``.
Generation g trains on block 0 (``fixed``) or block g (``rotating``); the
validation blocks follow the last training block, so they are disjoint from every
training seed and fixed for the run.
"""
from __future__ import annotations

import math

VALIDATION_SHARE = 0.1  # validation renders per generation render, about (baseline and centroid aside)


def block_settings(settings, block: int):
    """The settings of seed block ``block``: seeds ``seed + block * B`` onwards."""
    return settings.with_(seed=settings.seed + block * settings.batch_size)


def training_block(schedule: str, generation: int) -> int:
    return 0 if schedule == "fixed" else generation


def validation_blocks(schedule: str, generations: int, count: int) -> list[int]:
    """The blocks after the last training block: disjoint from every training seed."""
    first = 1 if schedule == "fixed" else generations + 1
    return list(range(first, first + count))


def validation_points(generations: int, population: int, batches: int) -> list[int]:
    """Generations after which the best unvalidated candidate is validated: every k-th and
    the last, with k the smallest step keeping ``batches`` renders per point near
    VALIDATION_SHARE of the ``population`` renders per generation."""
    if batches <= 0:
        return []
    every = max(1, math.ceil(batches / (VALIDATION_SHARE * population) - 1e-9))
    return [g for g in range(1, generations + 1) if g % every == 0 or g == generations]
