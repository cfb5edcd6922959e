"""The maps' report jobs: run in the report worker (process or thread), from plain data.

``add_generation`` reads a finished generation's PNGs (already on disk) into the
run's influence accumulator and keeps its members for the weight map; ``write_maps``
solves and writes the maps' data and pictures, and returns what the page shows.
A generation the worker never saw (a resumed run, a restarted worker) is read from
its ``batch_stats.json`` files when the run ends.
"""
from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np

from ..run.files import FileFormatError, read_json, write_npz_atomic
from ..run.paired import SeedLoss, standing
from .files import atomic_write_bytes, dump_json, jsonable
from .influence import CHANNELS, MAP_SIDE, MAX_SLOTS, InfluenceAccumulator, Member
from .map_drawing import influence_grid, opponent_to_rgb, scatter_map
from .page_data import relative_url
from .weight_map import CLUSTER_RANKING, ENABLE_HINT, weight_map

logger = logging.getLogger(__name__)

INFLUENCE_NPZ = "influence_maps.npz"
INFLUENCE_JSON = "influence_maps.json"
INFLUENCE_PNG = "influence_maps.png"
WEIGHT_MAP_JSON = "weight_map.json"
WEIGHT_MAP_PNG = "weight_map.png"
MAX_STATS_BYTES = 16 * 2**20
SHOWN_SLOTS = 4


class RunMaps:
    def __init__(self, units: int):
        self.accumulator = InfluenceAccumulator(units)
        self.members: dict[tuple[int, int], Member] = {}


_runs: dict[str, RunMaps] = {}


def _state(run_dir: Path, units: int) -> RunMaps:
    key = str(run_dir)
    if key not in _runs or _runs[key].accumulator.units != units:
        _runs[key] = RunMaps(units)
    return _runs[key]


def add_generation(run_dir: Path, units: int, generation: int, members: Sequence[Member]) -> None:
    state = _state(run_dir, units)
    for member in members:
        state.members[(member.generation, member.index)] = member
    if generation > 0:
        state.accumulator.add_generation(generation, members)


def write_maps(run_dir: Path, labels: Sequence[str], baseline: Optional[Member], final: bool) -> dict[str, Any]:
    """Write the maps' files; return the page's ``maps`` entry."""
    run_dir = Path(run_dir)
    state = _state(run_dir, len(labels))
    if final:
        _read_missing(run_dir, state)
        _runs.pop(str(run_dir), None)
    page: dict[str, Any] = {"influence": None, "weights": None}
    if not labels:
        return page
    maps = state.accumulator.solve()
    if maps is not None:
        page["influence"] = _write_influence(run_dir, maps, labels, baseline)
    page["weights"] = _write_weight_map(run_dir, list(state.members.values()), labels)
    return page


def _write_influence(run_dir: Path, maps, labels: Sequence[str], baseline: Optional[Member]) -> dict[str, Any]:
    summary = maps.unit_summary()
    write_npz_atomic(run_dir / INFLUENCE_NPZ, {
        "coefficients": maps.coefficients, "mean_images": maps.mean_images,
        "unit_labels": np.array(list(labels), dtype=str), "channels": np.array(CHANNELS, dtype=str)})
    info = {
        "units": [{"n": n, "label": label, **s} for n, (label, s) in enumerate(zip(labels, summary), start=1)],
        "individuals": maps.individuals, "groups": maps.groups, "ridge": maps.ridge, "aligned": maps.aligned,
        "slots": int(maps.coefficients.shape[1]), "map_size": list(maps.coefficients.shape[-1:-3:-1]),
        "channels": list(CHANNELS), "max_side": MAP_SIDE, "max_slots": MAX_SLOTS,
        "coefficients": "change of each channel (sRGB values in [0, 1]) per unit of weight; "
                        "shape (units, slots, channels, height, width)",
    }
    dump_json(run_dir / INFLUENCE_JSON, info)
    strength = maps.magnitude()
    shown = min(SHOWN_SLOTS, strength.shape[1])
    backdrops = _backdrops(baseline, maps, shown)
    notes = [f"{s['strength']:.3g} (lum {s['luminance']:.2g}, col {s['colour']:.2g})" for s in summary]
    where = "each image is one seed, over the unmodified prompt's images" if maps.aligned else \
        "rotating seeds: each column pools its slot's seeds (where in the frame, on average)"
    subset = f"; the first {shown} of {strength.shape[1]} image slots" if shown < strength.shape[1] else ""
    picture = influence_grid(strength[:, :shown], [f"{n}:{label}" for n, label in enumerate(labels, 1)],
                             notes, backdrops, f"influence maps from {maps.individuals} individuals; {where}{subset}")
    _save_png(run_dir / INFLUENCE_PNG, picture)
    return {"png": INFLUENCE_PNG, "json": INFLUENCE_JSON, "npz": INFLUENCE_NPZ, "aligned": maps.aligned,
            "individuals": maps.individuals, "units": info["units"], "slots": int(strength.shape[1]),
            "shown": int(shown), "width": picture.width, "height": picture.height}


def _backdrops(baseline: Optional[Member], maps, shown: int) -> list[Optional[np.ndarray]]:
    """The unmodified prompt's images when every slot is one seed, else the pooled images."""
    from .influence import read_map_image

    size = (maps.coefficients.shape[-1], maps.coefficients.shape[-2])
    if maps.aligned and baseline is not None and len(baseline.images) >= shown:
        try:
            return [opponent_to_rgb(read_map_image(Path(baseline.folder) / baseline.images[k], size))
                    for k in range(shown)]
        except OSError as error:
            logger.warning("influence maps: the unmodified prompt's images cannot be read (%s)", error)
    return [opponent_to_rgb(maps.mean_images[k]) for k in range(shown)]


def _write_weight_map(run_dir: Path, members: list[Member], labels: Sequence[str]) -> dict[str, Any]:
    members = sorted(members, key=lambda m: (m.generation, m.index))
    offsets = np.array([m.offsets for m in members], dtype=np.float64).reshape(len(members), len(labels))
    losses = np.array([m.loss for m in members], dtype=np.float64)
    places = standing(members, lambda m: SeedLoss(m.loss, m.seeds[0] if m.seeds else -1))
    result = weight_map(offsets, losses, np.array(places, dtype=np.float64))
    clusters = []
    for c in result["clusters"]:
        best = members[c.pop("best")]
        folder = relative_url(Path(best.folder), run_dir)
        clusters.append({**c, "best": {"g": best.generation, "i": best.index, "id": best.individual_id,
                                       "loss": best.loss, "dir": folder,
                                       "images": [f"{folder}/{name}" for name in best.images]}})
    points = [{"g": m.generation, "i": m.index, "id": m.individual_id, "x": float(x), "y": float(y),
               "loss": m.loss, "place": float(place), "cluster": int(k)}
              for m, (x, y), k, place in zip(members, result["xy"], result["cluster_of"], places)]
    data = {"method": result["method"], "clustered": result["clustered"], "hint": None if result["clustered"]
            else ENABLE_HINT, "unit_labels": list(labels), "points": points, "ranking": CLUSTER_RANKING,
            "clusters": clusters}
    dump_json(run_dir / WEIGHT_MAP_JSON, data)
    marks = [(c["cluster"], next(j for j, m in enumerate(members) if (m.generation, m.index) ==
                                 (c["best"]["g"], c["best"]["i"]))) for c in clusters]
    note = f"{len(members)} individuals, {result['method'].upper()} layout; " + (
        f"{len(clusters)} HDBSCAN clusters (ringed), each one's best numbered" if result["clustered"]
        else "no clusters: HDBSCAN is not installed")
    picture = scatter_map(result["xy"], np.array(places, dtype=np.float64), result["cluster_of"] - 1, marks,
                          "explored weights", note)
    _save_png(run_dir / WEIGHT_MAP_PNG, picture)
    return jsonable({"png": WEIGHT_MAP_PNG, "json": WEIGHT_MAP_JSON, "method": result["method"],
                     "width": picture.width, "height": picture.height,
                     "clustered": result["clustered"], "hint": data["hint"],
                     "ranking": CLUSTER_RANKING,
                     "clusters": [{k: c[k] for k in ("cluster", "count", "standing", "best_loss", "best")}
                                  for c in clusters]})


def _save_png(path: Path, picture) -> None:
    import io

    buffer = io.BytesIO()
    picture.save(buffer, format="PNG", compress_level=1)
    atomic_write_bytes(path, buffer.getvalue())


def _read_missing(run_dir: Path, state: RunMaps) -> None:
    """Members of generations this worker did not see, from their batch_stats.json files."""
    seen = {g for g, _ in state.members}
    found: dict[int, list[Member]] = {}
    root = run_dir.resolve()
    for path in sorted(run_dir.glob("[0-9]*/*/batch_stats.json")):
        try:
            generation = int(path.parent.parent.name)
        except ValueError:
            continue
        if generation in seen:
            continue
        try:
            if path.is_symlink() or root not in path.resolve().parents:
                raise ValueError("not a file of this run folder")
            member = member_from_stats(read_json(path, MAX_STATS_BYTES), path.parent, state.accumulator.units)
        except (FileFormatError, ValueError, KeyError, TypeError) as error:
            logger.warning("influence maps: skipping %s: %s", path, error)
            continue
        found.setdefault(generation, []).append(member)
    for generation, members in sorted(found.items()):
        add_generation(run_dir, state.accumulator.units, generation, members)


def member_from_stats(stats: dict[str, Any], folder: Path, units: int) -> Member:
    """A ``Member`` from an individual's batch_stats.json, checked as user input."""
    offsets, seeds, images = stats["offsets"], stats["seeds"], stats["images"]
    if not (isinstance(offsets, list) and len(offsets) == units and all(_number(v) for v in offsets)):
        raise ValueError(f"offsets must be {units} finite numbers")
    if not (isinstance(seeds, list) and all(isinstance(s, int) and not isinstance(s, bool) for s in seeds)):
        raise ValueError("seeds must be whole numbers")
    if not (isinstance(images, list) and all(isinstance(n, str) and "/" not in n and "\\" not in n
                                             and not n.startswith(".") for n in images)):
        raise ValueError("images must be plain file names")
    loss = stats.get("loss")
    return Member(generation=int(stats["generation"]), index=int(stats["index"]),
                  offsets=[float(v) for v in offsets], seeds=list(seeds), folder=str(folder),
                  images=list(images), loss=float(loss) if _number(loss) else float("nan"),
                  individual_id=str(stats.get("individual_id") or ""))


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
