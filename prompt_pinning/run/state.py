"""What a run knows, changed only by ``RunState.apply(event)``. Pure: no I/O, no rendering.

Events are the lines of the run's journal (``evaluations.jsonl``):

* evaluated: an individual rendered and scored on its training block;
* validated (``"validation": true``): its losses on the validation blocks;
* closed (``"closed": true``): a generation's end, with the search distribution;
* final (``"final": true``): the result scored on the user's seeds (block 0);
* checkpoint (``"checkpoint": true``): the optimizer's state at a generation's start, naming
  its arrays file by SHA-256 (the last one is what a resume restores);
* reference (``"reference": true``): the fade guard's reference (batch statistics
  and each seed's subject) of the unmodified prompt on one seed block, from the baseline's render there or (``"source":
  "reference"``, a render of its own that the plan counts) rendered for the guard.

An uninterrupted run applies each event as it logs it; a resume applies the
logged events in order, so both reach the same state. Images are kept in one
place (``images``, by individual id) and only for the baseline, the candidate
selected so far and the final render.

An event costs the same early and late in a run: leaders (per seed block, per
validation interval), the best validation and the hall of fame are kept up to
date as records arrive instead of searched for, and a record keeps its loss,
not its pair losses (they are in the log and the reports).

Comparisons are paired: training losses are ranked only within one seed block,
and candidates from different blocks only by their validation losses (the
validation blocks are common to all) or on the user's seeds.
"""
from __future__ import annotations

import bisect
import dataclasses
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np
import torch

from .evaluation_log import record_from_entry
from .paired import VALIDATION, SeedLoss, improvement, lowest, lowest_value, ranked, spread
from .plan import RunPlan
from .records import GenerationRecord, IndividualRecord, PairedScore, RunResult
from ..score.fade_guard import Reference
from ..score.subject import SubjectProfile
from ..search.seed_blocks import block_settings, noise_keys

HALL_OF_FAME_SIZE = 10


def event_kind(entry: dict[str, Any]) -> str:
    for kind in ("validation", "closed", "final", "reference", "checkpoint", "fingerprint"):
        if entry.get(kind) is True:
            return kind
    return "evaluated"


# what names an event among those of its kind: a generation, a validation point, a seed block, a hash
_EVENT_KEYS = {"validation": lambda e: e["generation"], "closed": lambda e: e["generation"],
               "final": lambda e: None, "reference": lambda e: int(e["block"]),
               "checkpoint": lambda e: e["generation"], "fingerprint": lambda e: e["hash"]}


class RunState:
    def __init__(self, plan: RunPlan, settings, run_dir: Optional[Path] = None):
        self.plan = plan
        self.settings = settings
        self.run_dir = run_dir
        self.baseline: Optional[IndividualRecord] = None
        self.centroid: Optional[IndividualRecord] = None
        self.by_slot: dict[tuple[int, int], IndividualRecord] = {}  # (generation, index) -> record
        self.by_id: dict[str, IndividualRecord] = {}
        self.fingerprint: Optional[str] = None
        self._held: set[tuple[str, Any]] = set()  # (kind, key) of every other journaled event
        self.validations: dict[str, tuple[float, list[float]]] = {}  # id -> (mean, per block)
        self.validated_at: dict[int, str] = {}  # point (0: baseline, G + 1: centroid) -> id
        self.generation_records: list[GenerationRecord] = []
        self.logbook: list[dict[str, Any]] = []
        self.final: Optional[dict[str, Any]] = None
        self.images: dict[str, tuple[torch.Tensor, Optional[np.ndarray], list[int]]] = {}
        self.references: dict[int, Reference] = {}  # seed block -> the unmodified prompt's fade guard reference
        self.reference_losses: dict[int, float] = {}  # seed block -> the unmodified prompt's loss (reference renders)
        self.references_rendered = 0  # the plan's reference renders done
        self.done = 0  # individual renders, as the plan counts them
        # kept as records arrive (see the module docstring); keys compare as the searches did
        self._latest = 0  # the latest generation with a record
        self._block_best: dict[int, IndividualRecord] = {}  # seed block -> lowest (loss, generation, index)
        self._interval_best: dict[tuple[int, int], IndividualRecord] = {}  # (block, validation point) -> same
        self._block_fame: dict[int, list[tuple[float, int, IndividualRecord]]] = {}  # (loss, arrival, record)
        self._arrivals = 0
        self._seeds: dict[tuple[int, ...], list[int]] = {}  # one list per seed block, shared by its records

    # -- events -------------------------------------------------------------------
    def apply(self, entry: dict[str, Any], images: Optional[torch.Tensor] = None,
              traces: Optional[np.ndarray] = None) -> None:
        """Apply one journal event; ``images`` are its render, when at hand (kept only if needed)."""
        kind = event_kind(entry)
        getattr(self, f"_apply_{kind}")(entry)
        if kind != "evaluated":  # an evaluation is held by its slot (by_slot)
            self._held.add((kind, _EVENT_KEYS[kind](entry)))
        if images is not None and images.numel():
            ident = entry["id"]
            seeds = list(entry["seeds"]) if "seeds" in entry else list(self.by_id[ident].seeds)
            key = "final" if kind == "final" else ident
            self.images[key] = (images, traces, seeds)
        self._prune_images()

    def _apply_evaluated(self, entry: dict[str, Any]) -> None:
        record = record_from_entry(_slim(entry), self.run_dir, _no_images(self.settings))
        seeds = tuple(record.seeds)
        record.seeds = self._seeds.setdefault(seeds, record.seeds)
        g = record.generation
        self.by_slot[(g, record.index)] = record
        self.by_id.setdefault(record.individual_id, record)
        if g == 0:
            self.baseline = record
        if record.extra.get("centroid"):
            self.centroid = record
        self.done += 1
        self._latest = max(self._latest, g)
        block = self.plan.training_block(g)
        self._keep_lower(self._block_best, block, record)
        point = self._point_at_or_after(g)
        if point is not None:
            self._keep_lower(self._interval_best, (block, point), record)
        fame = self._block_fame.setdefault(block, [])
        self._arrivals += 1
        if len(fame) < HALL_OF_FAME_SIZE or record.loss < fame[-1][0]:
            bisect.insort(fame, (record.loss, self._arrivals, record), key=lambda item: item[:2])
            del fame[HALL_OF_FAME_SIZE:]

    def _apply_validation(self, entry: dict[str, Any]) -> None:
        ident, mean = entry["id"], float(entry["loss"])
        self.validations[ident] = (mean, [float(x) for x in entry["losses"]])
        self.validated_at[entry["generation"]] = ident
        self.done += len(entry["losses"])

    def _keep_lower(self, leaders: dict, key, record: IndividualRecord) -> None:
        """``leaders[key]``: the lowest training loss so far on one block (ties: the earlier)."""
        held = leaders.get(key)
        if held is None or lowest([held, record], self.training_loss, tie=_order) is record:
            leaders[key] = record

    def _point_at_or_after(self, g: int) -> Optional[int]:
        points = self.plan.validation_points
        at = bisect.bisect_left(points, g)
        return points[at] if at < len(points) else None

    def _apply_closed(self, entry: dict[str, Any]) -> None:
        g = entry["generation"]
        records = self.generation(g)
        losses = [r.loss for r in records]
        validated = self.validated_at.get(g)
        best_validation = lowest_value(self.validation_loss(i) for i in self.validations)
        block_best = lowest_value(self.training_loss(r) for r in records)
        unmodified = self.unmodified(self.plan.training_block(g))
        unmodified_validation = self.unmodified(VALIDATION)
        record = GenerationRecord(
            generation=g, losses=losses, individual_ids=[r.individual_id for r in records],
            sigma=float(entry["sigma"]), centroid=np.array(entry["centroid"], dtype=np.float64),
            diag_std=np.array(entry["diag_std"], dtype=np.float64), axis_ratio=float(entry["axis_ratio"]),
            eigenvalues=np.array(entry["eigenvalues"], dtype=np.float64),
            best_loss=block_best.value if block_best else float("nan"),
            folder=Path(self.run_dir) / f"{g:08d}" if self.run_dir is not None else None,
            validation_loss=best_validation.value if best_validation else None, validated_id=validated,
            validated_loss=self.validations[validated][0] if validated else None,
            training_seed=self.settings.seed + self.plan.training_block(g) * self.settings.batch_size,
            block=self.plan.training_block(g), unmodified_loss=unmodified.value if unmodified else None,
            gain=improvement(unmodified, block_best),
            unmodified_validation_loss=unmodified_validation.value if unmodified_validation else None,
            validation_gain=improvement(unmodified_validation, best_validation))
        self.generation_records.append(record)
        summary = spread(self.training_loss(r) for r in records)
        line = {"gen": g, "block": record.block, "nevals": len(records), "min": summary["min"],
                "avg": summary["mean"], "max": summary["max"], "std": summary["std"],
                "best": self.block_leader(self.plan.training_block(g), up_to=g).loss,
                "unmodified": record.unmodified_loss, "gain": record.gain,
                "sigma": record.sigma, "axis_ratio": record.axis_ratio, **_stage_seconds(records)}
        if self.plan.validation_batches:
            line["val"] = record.validation_loss
        self.logbook.append(line)

    def _apply_final(self, entry: dict[str, Any]) -> None:
        self.final = dict(entry)
        self.done += 1

    def _apply_checkpoint(self, entry: dict[str, Any]) -> None:
        pass  # the optimizer's state, restored from its file on resume (setup)

    def _apply_fingerprint(self, entry: dict[str, Any]) -> None:
        self.fingerprint = entry["hash"]  # the last journaled; later lines name it

    def _apply_reference(self, entry: dict[str, Any]) -> None:
        profile = entry.get("subject")
        self.references[int(entry["block"])] = Reference(
            np.array(entry["stats"], dtype=np.float64), None if profile is None else SubjectProfile.from_json(profile))
        if "loss" in entry:
            self.reference_losses[int(entry["block"])] = float(entry["loss"])
        if entry["source"] == "reference":
            self.references_rendered += 1
            self.done += 1

    def holds(self, kind: str, key: Any = None) -> bool:
        """Whether the journal holds this event: ``("evaluated", (generation, index))``,
        ``("validation", point)``, ``("closed", generation)``, ``("reference", block)``, ``("final",)``,
        ``("checkpoint", generation)`` or ``("fingerprint", hash)``. The driver's only "done?" question."""
        return key in self.by_slot if kind == "evaluated" else (kind, key) in self._held

    def stage_reference(self, block: int, reference: Reference) -> None:
        """The fade guard's reference of a render being scored, before its event is journaled
        (the same value the event then applies; a run stopped in between renders it again)."""
        self.references[int(block)] = reference

    # -- paired losses --------------------------------------------------------------
    def training_loss(self, record: IndividualRecord) -> SeedLoss:
        """A record's training loss with its seed block."""
        return SeedLoss(record.loss, self.plan.training_block(record.generation))

    def validation_loss(self, ident: str) -> SeedLoss:
        """A validated candidate's mean loss on the validation seeds."""
        return SeedLoss(self.validations[ident][0], VALIDATION)

    def unmodified(self, block) -> Optional[SeedLoss]:
        """The unmodified prompt's loss on ``block`` (a training block or VALIDATION); None where
        it was not scored there (training blocks other than 0 are scored by the fade guard's
        reference renders only)."""
        if self.baseline is None:
            return None
        if block == VALIDATION:
            ident = self.baseline.individual_id
            return self.validation_loss(ident) if ident in self.validations else None
        if block == 0:
            return SeedLoss(self.baseline.loss, 0)
        return SeedLoss(self.reference_losses[block], block) if block in self.reference_losses else None

    def gain(self, record: IndividualRecord) -> Optional[float]:
        """A record's improvement over the unmodified prompt on its own training block (None: unknown)."""
        loss = self.training_loss(record)
        return improvement(self.unmodified(loss.block), loss)

    def _tie(self, ident: str) -> tuple[bool, int, int]:
        """Equal validation losses: the unmodified prompt (the user's weights) first, then the earlier.
        Nothing from the training blocks: they differ between candidates, so they cannot break a tie."""
        record = self.by_id[ident]
        return (record is not self.baseline, *_order(record))

    # -- questions ----------------------------------------------------------------
    @property
    def closed(self) -> int:
        """The last closed generation (0 when none)."""
        return self.generation_records[-1].generation if self.generation_records else 0

    def reference(self, keys: Sequence[Any]) -> Optional[Reference]:
        """The recorded reference of the seed block whose noise keys are ``keys`` (None: none recorded)."""
        keys = list(keys)
        first = keys[0][0] if keys and isinstance(keys[0], tuple) else (keys[0] if keys else None)
        if not isinstance(first, int):
            return None
        block, rest = divmod(first - self.settings.seed, self.settings.batch_size)
        if rest or block not in self.references or keys != noise_keys(block_settings(self.settings, block)):
            return None
        return self.references[block]

    def generation(self, g: int) -> list[IndividualRecord]:
        """Generation g's population, in order (the centroid is not one of them)."""
        size = self.plan.population_size(g)
        return [self.by_slot[(g, i)] for i in range(size) if (g, i) in self.by_slot]

    def block_leader(self, block: int, up_to: Optional[int] = None,
                     since: int = 0) -> Optional[IndividualRecord]:
        """Lowest training loss among the records of generations since < g <= up_to on ``block``
        (the baseline counts on block 0 when since is 0): a paired comparison."""
        if since == 0 and (up_to is None or up_to >= self._latest):  # every record of the block so far
            return self._block_best.get(block)
        up_to = self.plan.generations + 1 if up_to is None else up_to
        pool = [r for (g, _), r in self.by_slot.items()
                if since < g <= up_to and self.plan.training_block(g) == block]
        if block == 0 and since == 0 and self.baseline is not None:
            pool.append(self.baseline)
        return lowest(pool, self.training_loss, tie=_order)

    def validation_candidate(self, point: int) -> Optional[IndividualRecord]:
        """Who is validated after generation ``point``: the lowest training loss since the
        previous point among the generations that trained on this point's seed block."""
        points = self.plan.validation_points
        at = bisect.bisect_left(points, point)
        if at < len(points) and points[at] == point:  # kept as records arrived
            return self._interval_best.get((self.plan.training_block(point), point))
        last = points[at - 1] if at else 0
        return self.block_leader(self.plan.training_block(point), up_to=point, since=last)

    def selected(self) -> Optional[IndividualRecord]:
        """The result so far: the lowest validation loss when the run validates, else the
        leader of the latest generation's seed block (centroid included), unless its final
        render on the user's seeds is not better than their prompt (ties keep the prompt)."""
        if self.plan.validation_batches:
            if not self.validations:
                return self.baseline
            ident = lowest(self.validations, self.validation_loss, tie=self._tie)
            return self.by_id[ident]
        leader = self.block_leader(self.plan.training_block(self._latest))
        if self._not_better_on_user_seeds(leader):
            return self.baseline
        return leader

    def _not_better_on_user_seeds(self, leader: Optional[IndividualRecord]) -> bool:
        """Without validation, the final render is the only paired test of a leader from another
        seed block: one that does not beat the user's prompt on the user's seeds gives way to it."""
        if leader is None or self.baseline is None or self.final is None:
            return False
        return self.final["id"] == leader.individual_id and SeedLoss(float(self.final["loss"]), 0) >= self.unmodified(0)

    def hall_of_fame(self) -> list[IndividualRecord]:
        """The best candidates, ranked on common seeds (validation, else the selected one's block)."""
        if self.plan.validation_batches:
            ids = ranked(self.validations, self.validation_loss, tie=self._tie)
            return [self.view(self.by_id[i]) for i in ids[:HALL_OF_FAME_SIZE]]
        chosen = self.selected()
        if chosen is None:
            return []
        fame = self._block_fame.get(self.plan.training_block(chosen.generation), [])
        return [self.view(r) for _, _, r in fame]

    def view(self, record: Optional[IndividualRecord], with_images: bool = False) -> Optional[IndividualRecord]:
        """``record`` with its validation losses and, if asked and kept, its images."""
        if record is None:
            return None
        changes: dict[str, Any] = {}
        if record.individual_id in self.validations:
            mean, losses = self.validations[record.individual_id]
            changes.update(validation_loss=mean, validation_losses=list(losses))
        if with_images and record.individual_id in self.images:
            images, traces, seeds = self.images[record.individual_id]
            changes.update(images=images, traces=traces, seeds=seeds)
        return dataclasses.replace(record, **changes) if changes else record

    def result_view(self) -> Optional[IndividualRecord]:
        """The selected candidate as the user sees it: on their seeds once the final render is in."""
        chosen = self.view(self.selected(), with_images=True)
        if chosen is None or self.final is None or self.final["id"] != chosen.individual_id:
            return chosen
        images, traces, seeds = self.images.get("final", (chosen.images, chosen.traces, chosen.seeds))
        folder = Path(self.run_dir) / RESULT_FOLDER if self.run_dir is not None else None
        return dataclasses.replace(chosen, images=images, traces=traces, seeds=list(seeds), folder=folder,
                                   extra={**chosen.extra, "user_seed_loss": float(self.final["loss"])})

    def paired_scores(self) -> tuple[Optional[PairedScore], Optional[PairedScore]]:
        """(headline, on the user's seeds): the result against the baseline on the same seeds."""
        baseline, chosen = self.baseline, self.selected()
        if baseline is None or chosen is None:
            return None, None
        user = None
        if self.final is not None and self.final["id"] == chosen.individual_id:
            user = PairedScore.of("your seeds", self.unmodified(0), SeedLoss(float(self.final["loss"]), 0),
                                  self.block_seeds(0))
        elif self.final is not None and chosen is baseline:  # the search's pick lost on the user's seeds
            user = PairedScore.of("your seeds", self.unmodified(0), self.unmodified(0), self.block_seeds(0))
        if self.plan.validation_batches and chosen.individual_id in self.validations \
                and baseline.individual_id in self.validations:
            return PairedScore.of("validation seeds", self.unmodified(VALIDATION),
                                  self.validation_loss(chosen.individual_id), self.validation_seeds()), user
        return user, user

    def shown_score(self) -> Optional[PairedScore]:
        """The result against the unmodified prompt on the seeds of the images shown for it: the
        user's once the final render is in, else its training block (None where the unmodified
        prompt was not scored there)."""
        chosen = self.selected()
        if chosen is None:
            return None
        if self.final is not None and self.final["id"] == chosen.individual_id:
            return self.paired_scores()[1]
        loss = self.training_loss(chosen)
        basis = "your seeds" if loss.block == 0 else "its training seeds"
        return PairedScore.of(basis, self.unmodified(loss.block), loss, self.block_seeds(loss.block))

    def block_seeds(self, block: int) -> list[int]:
        """The first seeds of a training block's images (variation seeds aside)."""
        first = self.settings.seed + block * self.settings.batch_size
        return list(range(first, first + self.settings.batch_size))

    def validation_seeds(self) -> list[int]:
        return [s for k in self.plan.validation_blocks for s in self.block_seeds(k)]

    def result(self, reason: str, *, config: dict[str, Any], units: list, validation_seeds: list[int]) -> RunResult:
        headline, user = self.paired_scores()
        return RunResult(
            run_dir=self.run_dir, original_positive=config.get("positive", ""),
            original_negative=config.get("negative", ""), baseline=self.view(self.baseline, with_images=True),
            best=self.result_view(), hall_of_fame=self.hall_of_fame(), units=units,
            generations=list(self.generation_records), stop_reason=reason, config=config,
            logbook=list(self.logbook),
            selected_by="validation" if self.plan.validation_batches and self.validations else "training",
            validation_seeds=validation_seeds, centroid=self.view(self.centroid),
            paired=headline, user_seeds=user, shown=self.shown_score())

    def _prune_images(self) -> None:
        """Keep the baseline's, the selected candidate's, the next one to validate and the final render."""
        point = self._point_at_or_after(self._latest)
        pending = self.validation_candidate(point) if point is not None else None
        keep = {"final"} | {r.individual_id for r in (self.baseline, self.selected(), pending, self.centroid)
                            if r is not None}
        for key in [k for k in self.images if k not in keep]:
            del self.images[key]


RESULT_FOLDER = "result"


def _order(record: IndividualRecord) -> tuple[int, int]:
    """Ties go to the earlier candidate (the unmodified prompt first): never to a loss on other seeds."""
    return record.generation, record.index


_PER_IMAGE = ("image_losses", "level_values")
_NO_PAIRS = np.empty(0, dtype=np.float64)


def _slim(entry: dict[str, Any]) -> dict[str, Any]:
    """An evaluation without what grows with the batch (pair and image losses): the log keeps them."""
    extra = entry["extra"]
    return {**entry, "pair_losses": _NO_PAIRS, "extra": {k: v for k, v in extra.items() if k not in _PER_IMAGE}}


def _no_images(settings) -> torch.Tensor:
    return torch.empty(0, 3, settings.height, settings.width)


def _stage_seconds(records: list[IndividualRecord]) -> dict[str, float]:
    """A generation's seconds per stage, summed over its individuals."""
    def total(values) -> float:
        return float(sum(v for v in values if v is not None))

    return {"render_seconds": total(r.render_seconds for r in records),
            "host_prompt_seconds": total(r.extra.get("host_prompt_seconds") for r in records),
            "loss_seconds": total(r.loss_seconds for r in records),
            "prompt_seconds": total(r.extra.get("prompt_seconds") for r in records)}
