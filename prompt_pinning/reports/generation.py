"""Per-generation outputs: a JSON summary and ``generation_loss_plot.png``."""
from __future__ import annotations

import io
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from .files import atomic_write_bytes, dump_json, jsonable
from .quickplot import BARS, CURVE, finite, four_panels

if TYPE_CHECKING:  # records imports torch; the worker process never needs it
    from ..run.records import GenerationRecord

GENERATION_SUMMARY = "generation_summary.json"
GENERATION_PLOT = "generation_loss_plot.png"


def generation_folder_name(generation: int) -> str:
    return f"{generation:08d}"


def loss_stats(values: Sequence[float]) -> dict[str, Any]:
    array = finite(values)
    if not array.size:
        return {"count": 0, "min": None, "median": None, "mean": None, "std": None, "max": None}
    return {
        "count": int(array.size),
        "min": float(array.min()),
        "median": float(np.median(array)),
        "mean": float(array.mean()),
        "std": float(array.std()),
        "max": float(array.max()),
    }


def generation_summary(record: GenerationRecord, individuals: list[dict[str, Any]]) -> dict[str, Any]:
    """What happened in one generation; ``individuals`` are the report rows of its members."""
    return jsonable(
        {
            "generation": record.generation,
            "best_loss": record.best_loss,
            "losses": record.losses,
            "loss_stats": loss_stats(record.losses),
            "individual_ids": record.individual_ids,
            "sigma": record.sigma,
            "axis_ratio": record.axis_ratio,
            "centroid": record.centroid,
            "diag_std": record.diag_std,
            "eigenvalues": record.eigenvalues,
            "individuals": [
                {k: row.get(k) for k in ("index", "id", "loss", "size", "dir")} for row in individuals
            ],
        }
    )


def write_generation_summary(folder: Path, summary: dict[str, Any]) -> None:
    dump_json(folder / GENERATION_SUMMARY, summary)


def write_generation_plot(
    folder: Path, generation: int, image_losses: Sequence[np.ndarray], individual_losses: Sequence[float]
) -> None:
    """Image losses (every image of every individual) and individual losses: sorted and histogram."""
    images = finite(np.concatenate([np.ravel(p) for p in image_losses]) if len(image_losses) else [])
    losses = finite(individual_losses)
    plot = four_panels(f"generation {generation}", [
        ("sorted", images, "image losses, sorted", "image, from lowest loss", "image loss (LDR-FLIP)", BARS),
        ("hist", images, "image losses", "image loss (LDR-FLIP)", "images", BARS),
        ("sorted", losses, "individual losses, sorted", "individual, from lowest loss", "loss (LDR-FLIP)", CURVE),
        ("hist", losses, "individual losses", "loss (LDR-FLIP)", "individuals", CURVE),
    ], note=f"{losses.size} individuals; image loss: an image's mean FLIP against the other images")
    buffer = io.BytesIO()
    plot.save(buffer, format="PNG", compress_level=1)
    atomic_write_bytes(folder / GENERATION_PLOT, buffer.getvalue())
