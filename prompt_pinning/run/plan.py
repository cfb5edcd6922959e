"""The run's plan: what it will render, computed once before the first render.

Pure: a ``RunPlan`` follows from the config, the number of prompt units and the
optimizer's population sizes. It is saved with the run (``run_config.json``,
"resolved") and a resume refuses a folder whose plan differs from the one its
config gives now.

Renders, in individuals (one batch each):

* the baseline (the unmodified prompt) on the user's seeds, block 0;
* with the fade guard on and no target images, the unmodified prompt once more on
  each training block it is not rendered on otherwise (every block of the
  ``rotating`` schedule: generation g's, just before generation g), so that the
  guard compares each batch with it on the same seeds (``reference_renders``; 0
  otherwise, and then the plan is the one a run without the guard has);
* every generation's population on its training block;
* the final search mean (plain CMA only) on the last generation's block;
* validation: the baseline, one candidate at each validation point and the
  centroid, each on every validation block;
* the result on the user's seeds (block 0): one render, or none when the
  result is the baseline, whose batch already is that render (counted all the same; the
  WebUI adapter ends its job count at the calls made).
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
    reference_renders: int = 0  # the fade guard's own renders of the baseline (see above)

    def training_block(self, generation: int) -> int:
        return training_block(self.schedule, generation)

    def reference_generations(self) -> list[int]:
        """The generations that render the baseline on their block first (``reference_renders`` of them)."""
        if not self.reference_renders:
            return []
        return reference_generations(self.schedule, self.generations, self.validation_blocks)

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
        return (1 + self.reference_renders + training + int(self.with_centroid)
                + validated * self.validation_batches + 1)

    def renders_to_come(self, *, baseline: bool, baseline_validated: bool, next_generation: int,
                        centroid: bool, centroid_validated: bool, result: bool,
                        references_done: int = 0) -> list[tuple[int, int]]:
        """(individuals per render call, calls) still to make, run-length encoded, given what is done
        (``references_done``: the fade guard's reference renders made, in plan order)."""
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
        references = set(self.reference_generations()[references_done:])

        def generations(start: int, stop: int) -> None:
            if not references:
                for size, count in self.population_runs(start, stop):
                    add(size, count)
                return
            for g in range(start, stop + 1):
                add(1, int(g in references))
                add(self.population_size(g))

        done_to = first - 1
        for point in (p for p in self.validation_points if p >= first):
            generations(done_to + 1, point)
            add(1, v)
            done_to = point
        generations(done_to + 1, self.generations)
        if self.with_centroid:
            add(1, int(not centroid) + v * int(not centroid_validated))
        add(1, int(not result))
        return calls

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["validation_blocks"] = list(self.validation_blocks)
        data["validation_points"] = list(self.validation_points)
        data["total"] = self.total
        if not self.reference_renders:  # a plan without them reads as before they existed
            del data["reference_renders"]
        return data

    def differences(self, saved: Any) -> list[str]:
        """What differs between this plan and a saved one (``to_dict`` form); [] when equal."""
        if not isinstance(saved, dict):
            return ["the run folder records no plan"]
        mine = self.to_dict()
        if "reference_renders" in mine and "reference_renders" not in saved:
            return [f"reference_renders: the run was made before the fade guard's reference renders were "
                    f"part of its plan (now {mine['reference_renders']}); start it again"]
        return [f"{key}: recorded {saved.get(key)!r}, now {value!r}" for key, value in mine.items()
                if saved.get(key) != value]


def reference_generations(schedule: str, generations: int, validation_blocks) -> list[int]:
    """Generations whose training block the baseline is not rendered on otherwise (block 0 and the
    validation blocks are), each block once."""
    seen = {0, *validation_blocks}
    needed = []
    for g in range(1, generations + 1):
        block = training_block(schedule, g)
        if block not in seen:
            seen.add(block)
            needed.append(g)
    return needed


def make_plan(config, units: int, optimizer, generations: int, has_targets: Optional[bool] = None) -> RunPlan:
    """The plan of a run of ``config`` with ``optimizer`` (freshly built) over ``generations``.
    ``has_targets``: whether the run pins to target images (default: ``config.targets``)."""
    count = int(config.validation_batches)
    first = optimizer.population_size(1)
    later = optimizer.population_size(2)
    blocks = tuple(validation_blocks(config.seed_schedule, generations, count))
    has_targets = bool(config.targets) if has_targets is None else has_targets
    references = (len(reference_generations(config.seed_schedule, generations, blocks))
                  if same_seed_reference(config, has_targets) else 0)
    return RunPlan(
        units=units, generations=generations, schedule=config.seed_schedule,
        first_population=first, population=later, validation_batches=count,
        validation_blocks=blocks,
        validation_points=tuple(validation_points(generations, later, count)),
        with_centroid=not optimizer.multi_objective, reference_renders=references)


def same_seed_reference(config, has_targets: bool) -> bool:
    """Whether the fade guard compares with the unmodified prompt on the same seeds (no target images)."""
    return bool(getattr(config, "fade_guard", 0.0)) and not has_targets


def stage_label(kind: str, generation: Optional[int], plan: RunPlan) -> str:
    """What the progress line says about a render."""
    if kind == "generation":
        return f"generation {generation}/{plan.generations}"
    if kind == "reference":
        return f"reference (generation {generation})"
    if kind == "validation":
        return "validation (baseline)" if generation == 0 else (
            "validation (final mean)" if generation is None else f"validation after generation {generation}")
    return kind
