"""A sweep's summary table (``sweep.csv`` and ``sweep.md``), read from each run's files.

Per prompt: the headline gain (``final_result.json``'s ``improvement``: on the validation
seeds when the result was chosen by them), the pinned weight of every unit, and where in
the frame each unit acts, read from the run's influence maps (``influence_maps.npz``):
the centre of mass of its effect, named on a 3 x 3 grid ("spread" when no cell holds
much more than its share), and its strength as a share of the strongest unit's.
"""
from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any, Optional

import numpy as np

from ..run.files import read_json, write_text_atomic

PLACES = {(0, 0): "top left", (0, 1): "top", (0, 2): "top right", (1, 0): "left", (1, 1): "centre",
          (1, 2): "right", (2, 0): "bottom left", (2, 1): "bottom", (2, 2): "bottom right"}
CONCENTRATED = 1.5  # a cell holding this many times its area's share of the effect names the place
COLUMNS = ["prompt", "status", "gain", "basis", "unmodified_loss", "pinned_loss", "pinned_prompt", "units", "run"]


def summary_row(prompt: str, run_dir: Path, status: str) -> dict[str, Any]:
    final = read_json(run_dir / "final_result.json")
    improvement = final.get("improvement") or {}
    best = final.get("best") or {}
    units = final.get("units") or []
    places = unit_places(run_dir, len(units))
    return {"prompt": prompt, "status": status, "gain": improvement.get("improvement"),
            "basis": improvement.get("basis"), "unmodified_loss": improvement.get("baseline_loss"),
            "pinned_loss": improvement.get("result_loss"), "pinned_prompt": best.get("pos"),
            "units": [{"text": u.get("text"), "prompt": u.get("prompt"), "from": u.get("base_weight"),
                       "to": u.get("pinned_weight"), **(place or {})} for u, place in zip(units, places)],
            "run": str(run_dir)}


def unit_places(run_dir: Path, count: int) -> list[Optional[dict[str, Any]]]:
    """Each unit's place and relative strength from the run's influence maps (None without them)."""
    path = Path(run_dir) / "influence_maps.npz"
    if not path.is_file():
        return [None] * count
    with np.load(path) as data:
        coefficients = np.asarray(data["coefficients"], dtype=np.float64)  # (units, slots, channels, h, w)
    if coefficients.ndim != 5 or coefficients.shape[0] != count:
        return [None] * count
    magnitude = np.sqrt(np.square(coefficients).sum(axis=2)).mean(axis=1)  # (units, h, w)
    strongest = float(magnitude.mean(axis=(1, 2)).max())
    h, w = magnitude.shape[1:]
    rows = np.minimum(2, (np.arange(h) * 3) // h)
    cols = np.minimum(2, (np.arange(w) * 3) // w)
    found: list[Optional[dict[str, Any]]] = []
    for unit in magnitude:
        total = float(unit.sum())
        if total <= 0 or strongest <= 0:
            found.append({"where": "nowhere", "strength": 0.0})
            continue
        y = float((unit.sum(axis=1) * (np.arange(h) + 0.5) / h).sum() / total)
        x = float((unit.sum(axis=0) * (np.arange(w) + 0.5) / w).sum() / total)
        cell = (min(2, int(y * 3)), min(2, int(x * 3)))
        inside = (rows[:, None] == cell[0]) & (cols[None, :] == cell[1])
        share = float(unit[inside].sum()) / total / (inside.sum() / inside.size)
        found.append({"where": PLACES[cell] if share >= CONCENTRATED else "spread",
                      "strength": float(unit.mean()) / strongest})
    return found


def unit_text(unit: dict[str, Any]) -> str:
    text = f"{unit['text']}: {_number(unit['from'])} -> {_number(unit['to'])}"
    if unit.get("prompt") == "negative":
        text += " (negative)"
    if "where" in unit:
        text += f" @ {unit['where']} ({unit['strength'] * 100:.0f}%)"
    return text


def _number(value) -> str:
    return "?" if value is None else f"{float(value):.3g}"


def _cells(row: dict[str, Any], folder: Path) -> list[str]:
    gain = row.get("gain")
    run = row.get("run")
    if run:
        try:
            run = Path(run).relative_to(folder).as_posix()
        except ValueError:
            pass
    return [row["prompt"], row["status"], "" if gain is None else f"{gain * 100:+.1f}%", row.get("basis") or "",
            "" if row.get("unmodified_loss") is None else f"{row['unmodified_loss']:.6f}",
            "" if row.get("pinned_loss") is None else f"{row['pinned_loss']:.6f}", row.get("pinned_prompt") or "",
            "; ".join(unit_text(u) for u in row.get("units") or []), run or ""]


def write_tables(folder: Path, rows: list[dict[str, Any]]) -> None:
    """``sweep.csv`` and ``sweep.md`` in the sweep folder, one row per prompt so far."""
    cells = [_cells(row, Path(folder)) for row in rows]
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(COLUMNS)
    writer.writerows(cells)
    write_text_atomic(Path(folder) / "sweep.csv", out.getvalue(), durable=False)
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(_markdown(c) for c in row) + " |" for row in cells]
    write_text_atomic(Path(folder) / "sweep.md", "\n".join(lines) + "\n", durable=False)


def _markdown(text: str) -> str:
    return str(text).replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")
