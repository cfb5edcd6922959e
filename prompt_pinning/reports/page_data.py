"""The data behind index.html, built from run records as plain JSON-ready values."""
from __future__ import annotations

import math
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional, Sequence
from urllib.parse import quote


from .files import jsonable
from .generation import loss_stats
from .individual import image_file_names

if TYPE_CHECKING:  # records imports torch; the worker process never needs it
    from ..run.records import GenerationRecord, IndividualRecord, RunResult, UnitRow


def relative_url(path: Optional[Path], run_dir: Path) -> Optional[str]:
    """A URL, relative to the run folder, for a file or folder inside it (percent-encoded)."""
    if path is None:
        return None
    relative = Path(os.path.relpath(Path(path), Path(run_dir))).as_posix()
    return quote(relative, safe="/")


def individual_row(record: IndividualRecord, run_dir: Path) -> dict[str, Any]:
    """One line of the page's table of individuals (short keys keep 2,000 rows small)."""
    return jsonable(
        {
            "g": record.generation,
            "i": record.index,
            "id": record.individual_id,
            "loss": record.loss,
            "size": record.size,
            "pos": record.positive,
            "neg": record.negative,
            "dir": relative_url(record.folder, run_dir),
            "n": len(record.seeds),
            "sec": record.render_seconds + record.loss_seconds,
            **({"tags": record.extra["tags"]} if record.extra.get("tags") else {}),
        }
    )


def batch_entry(record: Optional[IndividualRecord], run_dir: Path) -> Optional[dict[str, Any]]:
    if record is None:
        return None
    folder = relative_url(record.folder, run_dir)
    return jsonable(
        {
            "id": record.individual_id,
            "g": record.generation,
            # the loss on the images shown: the result's on the user's seeds once rendered there
            "loss": record.extra.get("user_seed_loss", record.loss),
            "val": record.validation_loss,
            "seeds": [int(seed) for seed in record.seeds],  # None when not rendered on the validation seeds
            "size": record.size,
            "pos": record.positive,
            "neg": record.negative,
            "dir": folder,
            "images": [f"{folder}/{quote(name)}" for name in image_file_names(record.seeds)] if folder else [],
            **({"tags": record.extra["tags"]} if record.extra.get("tags") else {}),
        }
    )


def unit_entries(units: Sequence[UnitRow]) -> list[dict[str, Any]]:
    return jsonable(
        [
            {
                "n": number,
                "text": u.text,
                "prompt": u.prompt,
                "kind": u.kind,
                "base": u.base_weight,
                "pinned": u.pinned_weight,
                "change": u.pinned_weight - u.base_weight,
                "offset": u.offset,
                "tight": u.tightness,
            }
            for number, u in enumerate(units, start=1)
        ]
    )


def convergence(generations: Sequence[GenerationRecord]) -> list[dict[str, Any]]:
    """Per generation, improvements over the unmodified prompt on the same seeds (``plot_data.
    gain_summary``; None where it was not scored on them), its losses on its own seeds, and the
    unmodified prompt's loss there."""
    from .plot_data import gain_summary, plain_generation

    records = [plain_generation(r) for r in sorted(generations, key=lambda r: r.generation)]
    summary = gain_summary(records)
    value = lambda key, k: float(summary[key][k]) if math.isfinite(summary[key][k]) else None  # noqa: E731
    points = []
    for k, (record, plain) in enumerate(zip(sorted(generations, key=lambda r: r.generation), records)):
        stats = loss_stats(record.losses)
        points.append({
            "g": record.generation, "seed": getattr(record, "training_seed", None), "n": stats["count"],
            "min": stats["min"], "median": stats["median"], "unmodified": plain.unmodified_loss,
            "gain": value("best", k), "gain_median": value("median", k), "gain_worst": value("worst", k),
            "val": record.validation_loss, "val_unmodified": plain.unmodified_validation_loss,
            "val_gain": value("validation", k), "sigma": record.sigma, "axis_ratio": record.axis_ratio,
        })
    return jsonable(points)


def block_baselines(generations: Sequence[GenerationRecord], baseline: Optional[IndividualRecord]) -> dict[str, float]:
    """Generation number -> the unmodified prompt's loss on that generation's seeds, where known:
    what each row of the Individuals table is compared with."""
    known = {str(r.generation): r.unmodified_loss for r in generations if getattr(r, "unmodified_loss", None)
             is not None}
    if baseline is not None:
        known["0"] = baseline.loss
    return jsonable(known)


def score_entry(score) -> Optional[dict[str, Any]]:
    """A paired comparison for the page: basis, seeds, both losses and the improvement."""
    if score is None:
        return None
    from ..run.paired import seed_ranges

    return jsonable({**score.to_dict(), "seed_text": seed_ranges(score.seeds) if score.seeds else None})


VALIDATION_FOLDER = "validation"  # <id>/: validated candidates' images on the first validation block


def validation_view(run_dir: Path, result: RunResult) -> Optional[dict[str, Any]]:
    """The unmodified prompt's and the result's images on the first validation block (the same
    seeds), where both were saved; None otherwise."""
    baseline, best = result.baseline, result.best
    seeds = list(result.validation_seeds[:len(baseline.seeds)]) if baseline is not None else []
    if not seeds or best is None:
        return None
    names = image_file_names(seeds)
    images = {}
    for key, record in (("baseline", baseline), ("best", best)):
        folder = Path(run_dir) / VALIDATION_FOLDER / record.individual_id
        if not all((folder / name).is_file() for name in names):
            return None
        images[key] = [relative_url(folder / name, run_dir) for name in names]
    losses = (baseline.validation_losses[:1] or [None])[0], (best.validation_losses[:1] or [None])[0]
    return jsonable({"seeds": seeds, "baseline": images["baseline"], "best": images["best"],
                     "baseline_loss": losses[0], "best_loss": losses[1],
                     "blocks": max(1, len(result.validation_seeds) // max(1, len(seeds)))})


def tag_table(config: dict[str, Any], baseline: Optional[dict], best: Optional[dict]) -> list[dict[str, Any]]:
    """Each target tag: wanted or unwanted, its weight, and its mean probability for the
    unmodified prompt and for the result (None where not yet known)."""
    from ..score.tags import TagTargetError, parse_tag_list

    try:
        roles = [("wanted", tag, w) for tag, w in parse_tag_list(config.get("wanted_tags") or "", "wanted_tags")]
        roles += [("unwanted", tag, w) for tag, w in parse_tag_list(config.get("unwanted_tags") or "", "unwanted_tags")]
    except TagTargetError:
        return []
    probability = lambda entry, tag: (entry or {}).get("tags", {}).get(tag)  # noqa: E731
    return [{"tag": tag, "role": role, "weight": weight, "base": probability(baseline, tag),
             "best": probability(best, tag)} for role, tag, weight in roles]


def page_data(
    run_dir: Path,
    result: RunResult,
    rows: Sequence[dict[str, Any]],
    units: Sequence[UnitRow],
    status: str,
    plots: dict[str, Optional[str]],
    updated: str,
) -> dict[str, Any]:
    """Everything index.html shows. ``rows`` must already be JSON-ready (``individual_row``)."""
    baseline = batch_entry(result.baseline, run_dir)
    best = batch_entry(result.best, run_dir)
    page = jsonable(
        {
            "run": {
                "name": Path(run_dir).name,
                "status": status,
                "stop_reason": result.stop_reason,
                "updated": updated,
                "generations": len(result.generations),
                "individuals": len(rows),
                "size_limit": result.config.get("size_limit"),
                "original_positive": result.original_positive,
                "original_negative": result.original_negative,
            },
            "baseline": baseline,
            "best": best,
            # paired only: the same seeds and pairs for both (None until the result is scored so)
            "improvement": result.paired.improvement if result.paired else None,
            "improvement_basis": result.paired.basis if result.paired else None,
            "headline": score_entry(result.paired),
            "your_seeds": score_entry(result.user_seeds),
            "shown": score_entry(getattr(result, "shown", None)),
            "validation_view": validation_view(run_dir, result),
            "tags": tag_table(result.config, baseline, best),
            "units": unit_entries(units),
            "convergence": convergence(result.generations),
            "row_baselines": block_baselines(result.generations, result.baseline),
            "plots": plots,
            "settings": result.config,
        }
    )
    page["rows"] = list(rows)
    return page
