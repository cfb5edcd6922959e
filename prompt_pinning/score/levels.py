"""Hyperbatch levels: how the pair losses of one batch become the objective's number.

Each summary is ``mean + |std|`` of pair values. At each branch level K the pairs are
grouped by ancestor and X_K is the mean of the groups' summaries; the levels are
combined with the hyperbatch weight (see ``loss``'s module docstring).
"""
from __future__ import annotations

import math

import numpy as np

from ..options import HYPERBATCH_WEIGHT_TYPES

WORST_SUMMARY = (1.0 + math.sqrt(2.0)) / 2.0  # supremum of mean + std for values in [0, 1]


def summary(values: np.ndarray) -> float:
    """mean + |std| (population std) of pair values."""
    values = np.asarray(values, dtype=np.float64)
    return float(values.mean() + abs(values.std()))


def combine_levels(level_values: np.ndarray, weight_type: str, scale: float) -> float:
    """Sum over levels K = 1..L of the hyperbatch weight of X_K."""
    x = np.asarray(level_values, dtype=np.float64)
    k = np.arange(1, x.size + 1, dtype=np.float64)
    if weight_type == "Geometric":
        return float(np.sum(x ** (scale / k)))
    if weight_type == "Exponential":
        return float(np.sum(x * (0.5 + scale) ** k))
    if weight_type == "Polynomial":
        return float(np.sum((1.0 + x) ** (scale * k)))
    raise ValueError(f"weight_type: must be one of {', '.join(HYPERBATCH_WEIGHT_TYPES)}; got {weight_type!r}")


def level_values(pair_losses: np.ndarray, pairs: np.ndarray, ancestors: np.ndarray) -> np.ndarray:
    """X_K for each level: mean over ancestor groups of the group's summary.

    ``ancestors`` is (n, L): the group label of each member of U at each level.
    """
    out = np.empty(ancestors.shape[1])
    for level in range(ancestors.shape[1]):
        first, second = ancestors[pairs[:, 0], level], ancestors[pairs[:, 1], level]
        groups = np.unique(np.concatenate([first, second]))  # groups with at least one pair
        out[level] = np.mean([summary(pair_losses[(first == g) | (second == g)]) for g in groups])
    return out


def union_ancestors(n_targets: int, traces: np.ndarray) -> np.ndarray:
    """(T + B, L) group labels: targets get labels of their own, images their traces."""
    _, levels = traces.shape
    labels = np.empty((n_targets + traces.shape[0], levels), dtype=np.int64)
    for level in range(levels):
        _, image_labels = np.unique(traces[:, level], return_inverse=True)
        labels[n_targets:, level] = image_labels.reshape(-1) + n_targets
        labels[:n_targets, level] = np.arange(n_targets)
    return labels
