"""The run's plan: what it will render, computed once before the first render.

Pure: a ``RunPlan`` follows from the config, the number of prompt units and the
optimizer's population sizes. It is saved with the run (``run_config.json``,
"resolved") and a resume refuses a folder whose plan differs from the one its
config gives now.

Renders, in individuals (one batch each):

* the baseline (the unmodified prompt) on the user's seeds, block 0;
* every generation's population on its training block;
* the final search mean (plain CMA only) on the last generation's block;
* validation: the baseline, one candidate at each validation point and the
  centroid, each on every validation block;
* the result on the user's seeds (block 0): one render, or none when the
  result is the baseline, whose batch already is that render (counted all the same).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Optional

from ..search.seed_blocks import training_block, validation_blocks, validation_points


@dataclass(frozen=True)
class RunPlan:
    units: int
    generations: int
    schedule: str  # "fixed" or "rotating"
    first_population: int  # generation 1 (the size limiter's mu parents)
    population: int  # every later generation
    validation_batches: int
    validation_blocks: tuple[int, ...]
    validation_points: tuple[int, ...]
    with_centroid: bool

    def training_block(self, generation: int) -> int:
        return training_block(self.schedule, generation)

    def population_size(self, generation: int) -> int:
        return self.first_population if generation <= 1 else self.population

    def population_runs(self, first: int, last: int) -> list[tuple[int, int]]:
        """(individuals, generations) for generations first..last."""
        runs = []
        if first <= 1 <= last:
            runs.append((self.first_population, 1))
            first = 2
        if last >= first:
            runs.append((self.population, last - first + 1))
        return runs

    @property
    def total(self) -> int:
        """Individual renders of the whole run (see the module docstring)."""
        training = sum(size * count for size, count in self.population_runs(1, self.generations))
        validated = 1 + len(self.validation_points) + int(self.with_centroid)
        return 1 + training + int(self.with_centroid) + validated * self.validation_batches + 1

    def renders_to_come(self, *, baseline: bool, baseline_validated: bool, next_generation: int,
                        centroid: bool, centroid_validated: bool, result: bool) -> list[tuple[int, int]]:
        """(individuals per render call, calls) still to make, run-length encoded, given what is done."""
        calls: list[tuple[int, int]] = []

        def add(size: int, count: int = 1) -> None:
            if count <= 0:
                return
            if calls and calls[-1][0] == size:
                calls[-1] = (size, calls[-1][1] + count)
            else:
                calls.append((size, count))

        v = self.validation_batches
        add(1, int(not baseline) + v * int(not baseline_validated))
        first = max(1, next_generation)
        done_to = first - 1
        for point in (p for p in self.validation_points if p >= first):
            for size, count in self.population_runs(done_to + 1, point):
                add(size, count)
            add(1, v)
            done_to = point
        for size, count in self.population_runs(done_to + 1, self.generations):
            add(size, count)
        if self.with_centroid:
            add(1, int(not centroid) + v * int(not centroid_validated))
        add(1, int(not result))
        return calls

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["validation_blocks"] = list(self.validation_blocks)
        data["validation_points"] = list(self.validation_points)
        data["total"] = self.total
        return data

    def differences(self, saved: Any) -> list[str]:
        """What differs between this plan and a saved one (``to_dict`` form); [] when equal."""
        if not isinstance(saved, dict):
            return ["the run folder records no plan"]
        mine = self.to_dict()
        return [f"{key}: recorded {saved.get(key)!r}, now {value!r}" for key, value in mine.items()
                if saved.get(key) != value]


def make_plan(config, units: int, optimizer, generations: int) -> RunPlan:
    """The plan of a run of ``config`` with ``optimizer`` (freshly built) over ``generations``."""
    count = int(config.validation_batches)
    first = optimizer.population_size(1)
    later = optimizer.population_size(2)
    return RunPlan(
        units=units, generations=generations, schedule=config.seed_schedule,
        first_population=first, population=later, validation_batches=count,
        validation_blocks=tuple(validation_blocks(config.seed_schedule, generations, count)),
        validation_points=tuple(validation_points(generations, later, count)),
        with_centroid=not optimizer.multi_objective)


def stage_label(kind: str, generation: Optional[int], plan: RunPlan) -> str:
    """What the progress line says about a render."""
    if kind == "generation":
        return f"generation {generation}/{plan.generations}"
    if kind == "validation":
        return "validation (baseline)" if generation == 0 else (
            "validation (final mean)" if generation is None else f"validation after generation {generation}")
    return kind
