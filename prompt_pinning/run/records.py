"""Plain records that a run produces and reports consume.

The run writes them; report writers only read them. Keeping them here lets
the optimizer and the reports change independently.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Protocol

import numpy as np
import torch


@dataclass
class UnitRow:
    """One pinnable unit of the prompt and what the run did with it."""

    text: str
    prompt: str  # "positive" or "negative"
    base_weight: float
    offset: float = 0.0
    tightness: Optional[float] = None  # final search std along this unit
    kind: str = "word"  # or a network strength: "lora", "lora te", "lora unet", "hypernet"

    @property
    def pinned_weight(self) -> float:
        """The weight written: |base + offset| for a word; a network strength keeps its sign."""
        value = self.base_weight + self.offset
        return value if self.kind != "word" else abs(value)


@dataclass
class IndividualRecord:
    """One evaluated candidate: its weights, images and loss."""

    generation: int  # 0 is the unmodified prompt
    index: int  # position within its generation
    individual_id: str  # stable, derived from the offsets
    offsets: np.ndarray
    positive: str
    negative: str
    images: torch.Tensor  # (B, 3, H, W) float32 in [0, 1], CPU
    seeds: list[int]
    loss: float
    pair_losses: np.ndarray  # every pair value the loss used
    traces: Optional[np.ndarray] = None
    size: Optional[float] = None  # L2 distance from the original weights
    render_seconds: float = 0.0
    loss_seconds: float = 0.0
    folder: Optional[Path] = None
    extra: dict[str, Any] = field(default_factory=dict)
    # Mean loss over the run's validation batches (seeds no training render used),
    # and the loss of each batch; None when it was not rendered on them.
    validation_loss: Optional[float] = None
    validation_losses: list[float] = field(default_factory=list)


@dataclass
class GenerationRecord:
    """Summary of one CMA generation after all its individuals are evaluated."""

    generation: int
    losses: list[float]
    individual_ids: list[str]
    sigma: float
    centroid: np.ndarray
    diag_std: np.ndarray  # sigma * sqrt(diag(C)) per coordinate
    axis_ratio: float
    eigenvalues: np.ndarray  # scaling of all main axes
    best_loss: float
    folder: Optional[Path] = None
    # The validation series: the lowest validation loss so far (the candidate the
    # run would return now), and the individual validated after this generation.
    validation_loss: Optional[float] = None
    validated_id: Optional[str] = None
    validated_loss: Optional[float] = None
    training_seed: Optional[int] = None  # first seed of this generation's renders
    # Paired with the unmodified prompt: its loss on this generation's block (None: not scored
    # there), the generation best's improvement over it; the same on the validation seeds for
    # the best validated so far.
    block: int = 0
    unmodified_loss: Optional[float] = None
    gain: Optional[float] = None
    unmodified_validation_loss: Optional[float] = None
    validation_gain: Optional[float] = None


@dataclass(frozen=True)
class PairedScore:
    """The result's loss against the unmodified prompt's, on the same seeds and pair set."""

    basis: str  # "validation seeds" (held out) or "your seeds" (the run's seed .. seed+B-1)
    baseline: float
    result: float
    seeds: tuple[int, ...] = field(default=(), compare=False)  # the seeds both were rendered with

    @classmethod
    def of(cls, basis: str, baseline: Any, result: Any, seeds=()) -> Optional["PairedScore"]:
        """From two ``SeedLoss`` values on the same block (refused otherwise); None if one is missing."""
        from .paired import improvement

        if baseline is None or result is None:
            return None
        improvement(baseline, result)  # raises UnpairedError for losses on different seeds
        return cls(basis, baseline.value, result.value, tuple(int(s) for s in seeds))

    @property
    def improvement(self) -> Optional[float]:
        """Relative loss reduction; None when it cannot be computed."""
        values = np.array([self.baseline, self.result], dtype=np.float64)
        if not np.isfinite(values).all() or self.baseline == 0:
            return None
        return float((self.baseline - self.result) / self.baseline)

    def seed_text(self) -> str:
        """``seeds 265-272`` (runs of consecutive seeds joined), or the basis alone without seeds."""
        from .paired import seed_ranges

        return f"{self.basis} ({seed_ranges(self.seeds)})" if self.seeds else self.basis

    def to_dict(self) -> dict[str, Any]:
        return {"basis": self.basis, "seeds": list(self.seeds), "baseline_loss": self.baseline,
                "result_loss": self.result, "improvement": self.improvement}


@dataclass
class RunResult:
    """What a finished (or stopped) run hands back."""

    run_dir: Optional[Path]  # None for a run kept in memory (runstore.MemoryStore)
    original_positive: str
    original_negative: str
    baseline: Optional[IndividualRecord]
    best: Optional[IndividualRecord]
    hall_of_fame: list[IndividualRecord]
    units: list[UnitRow]
    generations: list[GenerationRecord]
    stop_reason: str  # "completed", "interrupted", "error: ..."
    config: dict[str, Any] = field(default_factory=dict)
    logbook: list[dict[str, Any]] = field(default_factory=list)
    # "validation": best is the lowest validation loss among the validated
    # candidates (hall of fame leaders, baseline, centroid); "training": the
    # lowest training loss (validation off, or nothing validated yet).
    selected_by: str = "training"
    validation_seeds: list[int] = field(default_factory=list)
    centroid: Optional[IndividualRecord] = None  # the final search mean, when evaluated
    # The headline comparison (validation seeds when the result was chosen by them,
    # else the user's seeds) and the comparison on the user's seeds; None until known.
    paired: Optional[PairedScore] = None
    user_seeds: Optional[PairedScore] = None
    # The comparison on the seeds of the images shown for ``best`` (the user's once it is rendered
    # there; before that, e.g. an interrupted run, its training seeds); None where not measured.
    shown: Optional[PairedScore] = None

    def scores(self) -> list[PairedScore]:
        """The distinct paired comparisons: headline, on the user's seeds, on the seeds shown."""
        found: list[PairedScore] = []
        for score in (self.paired, self.user_seeds, self.shown):
            if score is not None and all(score is not s and (score.seeds, score.basis) != (s.seeds, s.basis)
                                         for s in found):
                found.append(score)
        return found

    @property
    def best_loss(self) -> float:
        return self.best.loss if self.best is not None else float("nan")

    @property
    def baseline_loss(self) -> float:
        return self.baseline.loss if self.baseline is not None else float("nan")

    @property
    def best_validation_loss(self) -> float:
        value = self.best.validation_loss if self.best is not None else None
        return float("nan") if value is None else value

    @property
    def baseline_validation_loss(self) -> float:
        value = self.baseline.validation_loss if self.baseline is not None else None
        return float("nan") if value is None else value


class ReportSink(Protocol):
    """Receives a run's records as they happen. Report writers implement this."""

    def on_run_start(self, run_dir: Path, config: dict[str, Any], units: list[UnitRow]) -> None: ...

    def on_individual(self, record: IndividualRecord) -> None: ...

    def on_generation(self, record: GenerationRecord, result: RunResult) -> None: ...

    def on_finish(self, result: RunResult) -> None:
        """Flush everything; when this returns every report is complete."""
