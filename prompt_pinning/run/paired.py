"""Losses with the seeds they were measured on, and the only ways to rank or compare them.

A loss means something only next to another loss on the same seeds: each seed block draws
its own noise, so one block can be easier than another by more than a whole run gains.
``SeedLoss`` carries the block with the value; ``lowest``, ``ranked`` and ``improvement``
refuse to compare losses on different blocks (``UnpairedError``). Every ranking a run or
its report makes goes through this module (tests/test_paired.py checks the source for
``min``/``sorted`` over raw losses elsewhere).

Blocks: a whole number is a training seed block (0: the user's seeds, seed .. seed + B - 1);
``VALIDATION`` is the mean over the run's validation blocks, common to every candidate
validated.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Optional, TypeVar, Union

T = TypeVar("T")
Block = Union[int, str]
VALIDATION = "validation"


class UnpairedError(ValueError):
    """Two losses on different seeds were about to be compared."""


@dataclass(frozen=True)
class SeedLoss:
    """A loss and the seed block it was measured on."""

    value: float
    block: Block

    def __post_init__(self) -> None:
        if not (isinstance(self.block, int) or self.block == VALIDATION):
            raise ValueError(f"seed block must be a whole number or {VALIDATION!r}, got {self.block!r}")

    def _check(self, other: "SeedLoss") -> None:
        if not isinstance(other, SeedLoss):
            raise TypeError(f"a SeedLoss compares only with a SeedLoss, not {type(other).__name__}")
        if other.block != self.block:
            raise UnpairedError(f"losses on {describe(self.block)} and {describe(other.block)} are not comparable")

    def __lt__(self, other: "SeedLoss") -> bool:
        self._check(other)
        return _sortable(self.value) < _sortable(other.value)

    def __le__(self, other: "SeedLoss") -> bool:
        self._check(other)
        return _sortable(self.value) <= _sortable(other.value)

    def __gt__(self, other: "SeedLoss") -> bool:
        return other < self

    def __ge__(self, other: "SeedLoss") -> bool:
        return other <= self


def describe(block: Block) -> str:
    return "the validation seeds" if block == VALIDATION else f"seed block {block}"


def _sortable(value: float) -> float:
    """NaN ranks last."""
    return math.inf if value is None or math.isnan(value) else float(value)


def improvement(baseline: Optional[SeedLoss], result: Optional[SeedLoss]) -> Optional[float]:
    """Relative loss reduction of ``result`` against ``baseline`` on the same seeds (positive:
    better); None when either is missing, not finite or the baseline is 0."""
    if baseline is None or result is None:
        return None
    baseline._check(result)
    values = (baseline.value, result.value)
    if not all(v is not None and math.isfinite(v) for v in values) or baseline.value == 0:
        return None
    return float((baseline.value - result.value) / baseline.value)


def ranked(items: Iterable[T], loss_of: Callable[[T], SeedLoss],
           tie: Callable[[T], Any] = lambda item: 0) -> list[T]:
    """``items`` from the lowest loss up; all their losses must share one block (``tie`` breaks ties)."""
    keyed = [(loss_of(item), item) for item in items]
    blocks = {loss.block for loss, _ in keyed}
    if len(blocks) > 1:
        raise UnpairedError(f"cannot rank losses on {', '.join(sorted(map(describe, blocks)))} together")
    return [item for _, item in sorted(keyed, key=lambda pair: (_sortable(pair[0].value), tie(pair[1])))]


def lowest(items: Iterable[T], loss_of: Callable[[T], SeedLoss],
           tie: Callable[[T], Any] = lambda item: 0) -> Optional[T]:
    """The item with the lowest loss (None for no items); all losses must share one block."""
    order = ranked(items, loss_of, tie)
    return order[0] if order else None


def lowest_value(losses: Iterable[SeedLoss]) -> Optional[SeedLoss]:
    """The lowest of losses on one block (None when there are none)."""
    return lowest(losses, lambda loss: loss)


def standing(items: list[T], loss_of: Callable[[T], SeedLoss]) -> list[float]:
    """Each item's place among the items on its own seeds, 0 (lowest loss) to 1 (highest); 0.5
    for an item alone on its seeds. A paired measure that items on different seeds share."""
    groups: dict[Block, list[int]] = {}
    for k, item in enumerate(items):
        groups.setdefault(loss_of(item).block, []).append(k)
    places = [0.5] * len(items)
    for members in groups.values():
        order = ranked(members, lambda k: loss_of(items[k]), tie=lambda k: k)
        for place, k in enumerate(order):
            places[k] = place / (len(order) - 1) if len(order) > 1 else 0.5
    return places


def spread(losses: Iterable[SeedLoss]) -> dict[str, Optional[float]]:
    """Lowest, median, mean, standard deviation and highest of finite losses on one block."""
    values = [loss.value for loss in ranked(losses, lambda loss: loss)
              if loss.value is not None and math.isfinite(loss.value)]
    if not values:
        return {"count": 0, "min": None, "median": None, "mean": None, "std": None, "max": None}
    n, mean = len(values), sum(values) / len(values)
    middle = values[n // 2] if n % 2 else (values[n // 2 - 1] + values[n // 2]) / 2
    return {"count": n, "min": values[0], "median": middle, "mean": mean,
            "std": math.sqrt(sum((v - mean) ** 2 for v in values) / n), "max": values[-1]}


def gains(baseline: Optional[SeedLoss], losses: Iterable[SeedLoss]) -> dict[str, Optional[float]]:
    """A group's best, median and worst improvement over ``baseline`` on the same seeds."""
    summary = spread(losses)
    on = (lambda value: None if value is None or baseline is None
          else improvement(baseline, SeedLoss(value, baseline.block)))
    return {"best": on(summary["min"]), "median": on(summary["median"]), "worst": on(summary["max"])}


def seed_span(seeds) -> str:
    """``57-64`` or ``1-8, 17-24``: the seeds, sorted, with consecutive ones as ranges."""
    runs: list[list[int]] = []
    for seed in sorted(set(int(s) for s in seeds)):
        if runs and seed == runs[-1][1] + 1:
            runs[-1][1] = seed
        else:
            runs.append([seed, seed])
    return ", ".join(f"{a}" if a == b else f"{a}-{b}" for a, b in runs)


def seed_ranges(seeds) -> str:
    """``seeds 1-8, 17-24`` (``seed 5`` for one)."""
    return ("seed " if len(seeds) == 1 else "seeds ") + seed_span(seeds)
