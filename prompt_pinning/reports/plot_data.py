"""What the run plots draw, as plain values the report process can unpickle without torch."""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any, Optional, Sequence

import numpy as np

from ..prompt.networks import unit_text

UNIT_TEXT_CHARS = 16


@dataclass
class RunPlotData:
    """Everything cma_plot.png, cma_mo_plot.png and loss_history.png are drawn from.

    ``generations`` are ``plain_generation`` namespaces of the search generations (1, 2, ...);
    ``rows`` are the page's individual rows (needed only with the size limiter).
    """

    generations: list[SimpleNamespace] = field(default_factory=list)
    unit_labels: list[str] = field(default_factory=list)
    rows: Optional[list[dict[str, Any]]] = None
    size_limit: float = 0.0


def cma_records(records: Sequence[Any]) -> list[Any]:
    """Generations that come from the search (generation 0 is the unmodified prompt)."""
    return [r for r in records if r.generation > 0 and np.isfinite(r.sigma)]


def optional_float(value: Any) -> Optional[float]:
    """``value`` as a finite float, or None (missing, None or not finite)."""
    if value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def plain_generation(record: Any) -> SimpleNamespace:
    """What the plots need of a generation record, as numpy arrays and floats.

    ``validation_loss`` is None when the record has no such field or no value; so are the paired
    values (``unmodified_loss``: the unmodified prompt's on this generation's seeds)."""
    return SimpleNamespace(
        generation=int(record.generation), losses=[float(x) for x in record.losses], sigma=float(record.sigma),
        axis_ratio=float(record.axis_ratio), centroid=np.asarray(record.centroid, dtype=np.float64).ravel(),
        diag_std=np.asarray(record.diag_std, dtype=np.float64).ravel(),
        eigenvalues=np.asarray(record.eigenvalues, dtype=np.float64).ravel(),
        validation_loss=optional_float(getattr(record, "validation_loss", None)),
        block=int(getattr(record, "block", 0) or 0),
        unmodified_loss=optional_float(getattr(record, "unmodified_loss", None)),
        unmodified_validation_loss=optional_float(getattr(record, "unmodified_validation_loss", None)))


def unit_label(number: int, text: str, prompt: str = "positive") -> str:
    """``3:circle``: the unit's number (as in the report's units table) and its text.

    Repeated words stay apart by number; blanks are shown as a visible mark; long text is
    shortened; units of the negative prompt are marked ``(neg)``."""
    shown = " ".join(str(text).split()) or "\u2423"  # a visible space
    if len(shown) > UNIT_TEXT_CHARS:
        shown = shown[: UNIT_TEXT_CHARS - 1] + "\u2026"
    return f"{number}:{shown}" + (" (neg)" if prompt == "negative" else "")


def unit_labels(units: Sequence[Any]) -> list[str]:
    """Labels for units (objects with ``text``, ``prompt`` and maybe ``kind``), numbered from 1."""
    return [unit_label(k, unit_text(u), getattr(u, "prompt", "positive")) for k, u in enumerate(units, start=1)]


def stack(records: Sequence[Any], name: str) -> Optional[np.ndarray]:
    """Per-generation vectors as a (G, N) array; None when their lengths differ or are empty."""
    rows = [np.asarray(getattr(r, name), dtype=np.float64).ravel() for r in records]
    if not rows or len({row.size for row in rows}) != 1 or rows[0].size == 0:
        return None
    return np.vstack(rows)


def gain_summary(records: Sequence[Any]) -> dict[str, np.ndarray]:
    """Per generation, improvements over the unmodified prompt on the same seeds (fractions; NaN
    where the unmodified prompt was not scored on them): the generation's best, median and worst
    on its own training seeds, and the best validated so far on the validation seeds."""
    from ..run.paired import VALIDATION, SeedLoss, gains, improvement

    columns: dict[str, list[float]] = {"best": [], "median": [], "worst": [], "validation": []}
    nan = lambda value: np.nan if value is None else value  # noqa: E731
    for r in records:
        block = int(getattr(r, "block", 0) or 0)
        unmodified = optional_float(getattr(r, "unmodified_loss", None))
        found = gains(None if unmodified is None else SeedLoss(unmodified, block),
                      [SeedLoss(float(x), block) for x in r.losses])
        for key in ("best", "median", "worst"):
            columns[key].append(nan(found[key]))
        base, best = (optional_float(getattr(r, name, None)) for name in ("unmodified_validation_loss",
                                                                           "validation_loss"))
        columns["validation"].append(nan(improvement(None if base is None else SeedLoss(base, VALIDATION),
                                                     None if best is None else SeedLoss(best, VALIDATION))))
    out = {key: np.array(values, dtype=np.float64) for key, values in columns.items()}
    out["generation"] = np.array([r.generation for r in records], dtype=np.float64)
    return out


GAIN_AXIS = "improvement, same seeds (%)"


def gain_note(summary: dict[str, np.ndarray]) -> str:
    """What the gain chart shows, in a line: which generations have no paired training number."""
    missing = summary["generation"][~np.isfinite(summary["best"])]
    if not missing.size:
        return "each generation against the unmodified prompt on that generation's own seeds"
    text = (f"{missing.size} of {summary['generation'].size} generations not shown: the unmodified prompt "
            "was not scored on their seeds (it is only with the fade guard on and no target images)")
    return text + ("; validation is paired" if np.isfinite(summary["validation"]).any() else "")


def main_axis_lengths(records: Sequence[Any]) -> Optional[np.ndarray]:
    """sqrt of the covariance eigenvalues per generation, sorted from shortest to longest axis."""
    eigen = stack(records, "eigenvalues")
    return None if eigen is None else np.sort(np.sqrt(np.clip(eigen, 0, None)), axis=1)


def size_points(rows: Sequence[dict[str, Any]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(generation, loss, size) of every individual with a size and a loss, in evaluation order."""
    points = [(r["g"], r["loss"], r["size"]) for r in rows if r.get("size") is not None and r.get("loss") is not None]
    if not points:
        return np.empty(0), np.empty(0), np.empty(0)
    gens, losses, sizes = (np.array(column, dtype=np.float64) for column in zip(*points))
    return gens, losses, sizes
