"""Seed blocks: which seeds a generation trains on and which seeds validate.

Seeds come in blocks of ``batch_size``: block k starts at ``seed + k * batch_size``
(and, for variation seeds, at ``subseed + k * batch_size``). Block 0 holds the
user's seeds. Generation g trains on block 0 (``fixed``) or block g
(``rotating``); the validation blocks follow the last training block, so they
are disjoint from every training seed and fixed for the run.

An image's noise is named by ``noise_keys``: its seed, or with variation seeds
(``subseed_strength > 0``) its (seed, subseed, strength). Two images share noise
exactly when their keys are equal, whatever the host does with a batch's seeds
(A1111 gives a variation batch one seed and many subseeds).
"""
from __future__ import annotations

import math

VALIDATION_SHARE = 0.1  # validation renders per generation render, about (baseline and centroid aside)


def block_settings(settings, block: int):
    """The settings of seed block ``block``: seeds (and subseeds) ``+ block * B`` onwards."""
    shift = block * settings.batch_size
    return settings.with_(seed=settings.seed + shift, subseed=settings.subseed + shift)


def noise_keys(settings) -> list:
    """One key per image of a batch rendered with ``settings``: equal keys, equal noise."""
    if not settings.subseed_strength:
        return settings.seeds()
    strength = float(settings.subseed_strength)
    return [(settings.seed + i, settings.subseed + i, strength) for i in range(settings.batch_size)]


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
