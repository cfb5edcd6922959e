"""What a run knows, changed only by ``RunState.apply(event)``. Pure: no I/O, no rendering.

Events are the lines of the run's journal (``evaluations.jsonl``):

* evaluated: an individual rendered and scored on its training block;
* validated (``"validation": true``): its losses on the validation blocks;
* closed (``"closed": true``): a generation's end, with the search distribution;
* final (``"final": true``): the result scored on the user's seeds (block 0);
* reference (``"reference": true``): the fade guard's reference (batch statistics
  and each seed's subject) of the unmodified prompt on one seed block, from the baseline's render there or (``"source":
  "reference"``, a render of its own that the plan counts) rendered for the guard.

An uninterrupted run applies each event as it logs it; a resume applies the
logged events in order, so both reach the same state. Images are kept in one
place (``images``, by individual id) and only for the baseline, the candidate
selected so far and the final render.

Comparisons are paired: training losses are ranked only within one seed block,
and candidates from different blocks only by their validation losses (the
validation blocks are common to all) or on the user's seeds.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np
import torch

from .evaluation_log import record_from_entry
from .plan import RunPlan
from .records import GenerationRecord, IndividualRecord, PairedScore, RunResult
from ..score.fade_guard import Reference
from ..score.subject import SubjectProfile
from ..search.seed_blocks import block_settings, noise_keys

HALL_OF_FAME_SIZE = 10


def event_kind(entry: dict[str, Any]) -> str:
    for kind in ("validation", "closed", "final", "reference"):
        if entry.get(kind) is True:
            return kind
    return "evaluated"


class RunState:
    def __init__(self, plan: RunPlan, settings, run_dir: Optional[Path] = None):
        self.plan = plan
        self.settings = settings
        self.run_dir = run_dir
        self.baseline: Optional[IndividualRecord] = None
        self.centroid: Optional[IndividualRecord] = None
        self.by_slot: dict[tuple[int, int], IndividualRecord] = {}  # (generation, index) -> record
        self.by_id: dict[str, IndividualRecord] = {}
        self.validations: dict[str, tuple[float, list[float]]] = {}  # id -> (mean, per block)
        self.validated_at: dict[int, str] = {}  # point (0: baseline, G + 1: centroid) -> id
        self.generation_records: list[GenerationRecord] = []
        self.logbook: list[dict[str, Any]] = []
        self.final: Optional[dict[str, Any]] = None
        self.images: dict[str, tuple[torch.Tensor, Optional[np.ndarray], list[int]]] = {}
        self.references: dict[int, Reference] = {}  # seed block -> the unmodified prompt's fade guard reference
        self.references_rendered = 0  # the plan's reference renders done
        self.done = 0  # individual renders, as the plan counts them

    # -- events -------------------------------------------------------------------
    def apply(self, entry: dict[str, Any], images: Optional[torch.Tensor] = None,
              traces: Optional[np.ndarray] = None) -> None:
        """Apply one journal event; ``images`` are its render, when at hand (kept only if needed)."""
        kind = event_kind(entry)
        getattr(self, f"_apply_{kind}")(entry)
        if images is not None and images.numel():
            ident = entry["id"]
            seeds = list(entry["seeds"]) if "seeds" in entry else list(self.by_id[ident].seeds)
            key = "final" if kind == "final" else ident
            self.images[key] = (images, traces, seeds)
        self._prune_images()

    def _apply_evaluated(self, entry: dict[str, Any]) -> None:
        record = record_from_entry(entry, self.run_dir, _no_images(self.settings))
        self.by_slot[(record.generation, record.index)] = record
        self.by_id.setdefault(record.individual_id, record)
        if record.generation == 0:
            self.baseline = record
        if record.extra.get("centroid"):
            self.centroid = record
        self.done += 1

    def _apply_validation(self, entry: dict[str, Any]) -> None:
        self.validations[entry["id"]] = (float(entry["loss"]), [float(x) for x in entry["losses"]])
        self.validated_at[entry["generation"]] = entry["id"]
        self.done += len(entry["losses"])

    def _apply_closed(self, entry: dict[str, Any]) -> None:
        g = entry["generation"]
        records = self.generation(g)
        losses = [r.loss for r in records]
        validated = self.validated_at.get(g)
        best_validation = min((v[0] for v in self.validations.values()), default=None)
        record = GenerationRecord(
            generation=g, losses=losses, individual_ids=[r.individual_id for r in records],
            sigma=float(entry["sigma"]), centroid=np.array(entry["centroid"], dtype=np.float64),
            diag_std=np.array(entry["diag_std"], dtype=np.float64), axis_ratio=float(entry["axis_ratio"]),
            eigenvalues=np.array(entry["eigenvalues"], dtype=np.float64), best_loss=float(min(losses)),
            folder=Path(self.run_dir) / f"{g:08d}" if self.run_dir is not None else None,
            validation_loss=best_validation, validated_id=validated,
            validated_loss=self.validations[validated][0] if validated else None,
            training_seed=self.settings.seed + self.plan.training_block(g) * self.settings.batch_size)
        self.generation_records.append(record)
        line = {"gen": g, "nevals": len(records), "min": float(np.min(losses)), "avg": float(np.mean(losses)),
                "max": float(np.max(losses)), "std": float(np.std(losses)),
                "best": self.block_leader(self.plan.training_block(g), up_to=g).loss,
                "sigma": record.sigma, "axis_ratio": record.axis_ratio, **_stage_seconds(records)}
        if self.plan.validation_batches:
            line["val"] = best_validation
        self.logbook.append(line)

    def _apply_final(self, entry: dict[str, Any]) -> None:
        self.final = dict(entry)
        self.done += 1

    def _apply_reference(self, entry: dict[str, Any]) -> None:
        profile = entry.get("subject")
        self.references[int(entry["block"])] = Reference(
            np.array(entry["stats"], dtype=np.float64), None if profile is None else SubjectProfile.from_json(profile))
        if entry["source"] == "reference":
            self.references_rendered += 1
            self.done += 1

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
        up_to = self.plan.generations + 1 if up_to is None else up_to
        pool = [r for (g, _), r in self.by_slot.items()
                if since < g <= up_to and self.plan.training_block(g) == block]
        if block == 0 and since == 0 and self.baseline is not None:
            pool.append(self.baseline)
        return min(pool, key=lambda r: (r.loss, r.generation, r.index)) if pool else None

    def validation_candidate(self, point: int) -> Optional[IndividualRecord]:
        """Who is validated after generation ``point``: the lowest training loss since the
        previous point among the generations that trained on this point's seed block."""
        last = max((p for p in self.plan.validation_points if p < point), default=0)
        leader = self.block_leader(self.plan.training_block(point), up_to=point, since=last)
        return leader

    def selected(self) -> Optional[IndividualRecord]:
        """The result so far: the lowest validation loss when the run validates, else the
        leader of the latest generation's seed block (centroid included)."""
        if self.plan.validation_batches:
            if not self.validations:
                return self.baseline
            return self.by_id[min(self.validations, key=self._validation_rank)]
        latest = max((g for g, _ in self.by_slot), default=0)
        return self.block_leader(self.plan.training_block(latest))

    def _validation_rank(self, ident: str) -> tuple:
        """Lowest validation loss first; on a tie the unmodified prompt (the user's weights) wins."""
        baseline = self.baseline.individual_id if self.baseline is not None else None
        return self.validations[ident][0], ident != baseline, self.by_id[ident].loss

    def hall_of_fame(self) -> list[IndividualRecord]:
        """The best candidates, ranked on common seeds (validation, else the selected one's block)."""
        if self.plan.validation_batches:
            ids = sorted(self.validations, key=self._validation_rank)
            return [self.view(self.by_id[i]) for i in ids[:HALL_OF_FAME_SIZE]]
        chosen = self.selected()
        if chosen is None:
            return []
        block = self.plan.training_block(chosen.generation)
        pool = [r for (g, _), r in self.by_slot.items() if self.plan.training_block(g) == block]
        return [self.view(r) for r in sorted(pool, key=lambda r: r.loss)[:HALL_OF_FAME_SIZE]]

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
            user = PairedScore("your seeds", baseline.loss, float(self.final["loss"]))
        if self.plan.validation_batches and chosen.individual_id in self.validations \
                and baseline.individual_id in self.validations:
            return PairedScore("validation seeds", self.validations[baseline.individual_id][0],
                               self.validations[chosen.individual_id][0]), user
        return user, user

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
            paired=headline, user_seeds=user)

    def _prune_images(self) -> None:
        """Keep the baseline's, the selected candidate's, the next one to validate and the final render."""
        latest = max((g for g, _ in self.by_slot), default=0)
        point = next((p for p in self.plan.validation_points if p >= latest), None)
        pending = self.validation_candidate(point) if point is not None else None
        keep = {"final"} | {r.individual_id for r in (self.baseline, self.selected(), pending, self.centroid)
                            if r is not None}
        for key in [k for k in self.images if k not in keep]:
            del self.images[key]


RESULT_FOLDER = "result"


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
