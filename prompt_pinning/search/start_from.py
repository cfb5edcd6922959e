"""Start a run from one cluster of a previous run's map of explored weights.

``start_from`` is ``RUN_FOLDER:CLUSTER``: the folder of a finished run (it holds
``weight_map.json``, written when HDBSCAN was installed) and a cluster number as
its report shows it. The new search starts at the cluster's centre, with a step
size sigma equal to the root mean square of the cluster's spread and a diagonal
covariance that gives each unit its own spread. The prompt must split into the
same units as that run's. The file is read as user input: bounded, JSON only,
every value checked; a problem is a ``ConfigError`` naming ``start_from``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np

from ..run.files import FileFormatError, read_json
from ..run.rundir import public_run_dir
from ..prompt.networks import unit_text
from ..options import ConfigError

WEIGHT_MAP_FILE = "weight_map.json"
MARKER_FILE = "prompt_pinning_run.json"
MAX_MAP_BYTES = 64 * 2**20
MIN_SIGMA, MAX_SIGMA = 1e-4, 10.0  # the bounds of initial_std
MIN_AXIS_SHARE = 0.05  # no unit's spread below this share of sigma: the covariance stays well conditioned
MAX_OFFSET = 10.0


@dataclass
class StartPoint:
    centroid: np.ndarray
    sigma: float
    cmatrix: np.ndarray  # the covariance is sigma^2 cmatrix
    run_dir: Path
    cluster: int

    def resolved(self) -> dict[str, Any]:
        return {"run": public_run_dir(self.run_dir), "cluster": self.cluster, "centre": self.centroid.tolist(),
                "sigma": self.sigma, "spread": (self.sigma * np.sqrt(np.diag(self.cmatrix))).tolist()}


def map_labels(units: Sequence[Any]) -> list[str]:
    """Units (with ``text`` and ``prompt``) as the maps name them: the text (a network strength
    after its kind: "lora te style"), "(neg)" for the negative prompt."""
    return [f"{unit_text(u)} (neg)" if u.prompt == "negative" else unit_text(u) for u in units]


def parse_start_from(value: Any) -> tuple[Path, int]:
    """``RUN_FOLDER:CLUSTER`` as (folder, cluster number >= 1)."""
    text = str(value).strip()
    folder, sep, number = text.rpartition(":")
    if not sep or not folder or not number.strip().isdigit() or int(number) < 1:
        raise ConfigError("start_from", f"must be RUN_FOLDER:CLUSTER with a cluster number >= 1 "
                                        f"(for example outputs/txt2img-images/prompt_pins/00000003:2), got {text!r}")
    return Path(folder), int(number)


def cluster_start(value: Any, unit_labels: Sequence[str]) -> Optional[StartPoint]:
    """The start of a new run from ``start_from`` (None when it is empty), for a prompt of ``unit_labels``."""
    if value is None or not str(value).strip():
        return None
    run_dir, number = parse_start_from(value)
    if not (run_dir / MARKER_FILE).is_file():
        raise ConfigError("start_from", f"{run_dir}: not a prompt pinning run folder (no {MARKER_FILE})")
    try:
        data = read_json(run_dir / WEIGHT_MAP_FILE, MAX_MAP_BYTES)
    except FileFormatError as error:
        raise ConfigError("start_from", f"{error} (the run's report writes it when the run ends)") from None
    where = run_dir / WEIGHT_MAP_FILE
    if not isinstance(data, dict) or not isinstance(data.get("clusters"), list):
        raise ConfigError("start_from", f"{where}: not a map of explored weights")
    labels = data.get("unit_labels")
    if not isinstance(labels, list) or list(labels) != list(unit_labels):
        raise ConfigError("start_from", f"{where}: that run's units {_short(labels)} differ from this prompt's "
                                        f"{_short(list(unit_labels))}; start from a run of the same prompt")
    if not data["clusters"]:
        hint = "" if data.get("clustered") else " (HDBSCAN was not installed for that run: " \
                                                "pip install \"scikit-learn>=1.3\", then run it again)"
        raise ConfigError("start_from", f"{where}: that run has no clusters{hint}")
    found = [c for c in data["clusters"] if isinstance(c, dict) and c.get("cluster") == number]
    if not found:
        numbers = [c.get("cluster") for c in data["clusters"] if isinstance(c, dict)]
        raise ConfigError("start_from", f"{where}: no cluster {number}; it has clusters {numbers}")
    n = len(unit_labels)
    centre = _vector(found[0].get("centre"), n, where, "centre", MAX_OFFSET)
    spread = _vector(found[0].get("spread"), n, where, "spread", MAX_SIGMA)
    if (spread < 0).any():
        raise ConfigError("start_from", f"{where}: cluster {number} has a negative spread")
    sigma = float(np.clip(math.sqrt(float(np.mean(spread ** 2))), MIN_SIGMA, MAX_SIGMA))
    axes = np.maximum(spread, MIN_AXIS_SHARE * sigma) / sigma
    return StartPoint(centroid=centre, sigma=sigma, cmatrix=np.diag(axes ** 2), run_dir=run_dir, cluster=number)


def saved_start(resolved: dict[str, Any], n: int) -> Optional[StartPoint]:
    """The start a resumed run began from, out of its own run_config.json ("resolved"), checked."""
    entry = resolved.get("start_from")
    if entry is None:
        return None
    where = Path("run_config.json")
    if not (isinstance(entry, dict) and isinstance(entry.get("cluster"), int) and isinstance(entry.get("run"), str)):
        raise ConfigError("start_from", f"{where}: the saved start is not readable")
    centre = _vector(entry.get("centre"), n, where, "centre", MAX_OFFSET)
    spread = _vector(entry.get("spread"), n, where, "spread", MAX_SIGMA)
    sigma = entry.get("sigma")
    if not isinstance(sigma, (int, float)) or isinstance(sigma, bool) or not MIN_SIGMA <= sigma <= MAX_SIGMA:
        raise ConfigError("start_from", f"{where}: the saved sigma must lie in [{MIN_SIGMA:g}, {MAX_SIGMA:g}]")
    axes = np.maximum(spread, MIN_AXIS_SHARE * sigma) / sigma
    return StartPoint(centre, float(sigma), np.diag(axes ** 2), Path(entry["run"]), entry["cluster"])


def _vector(value: Any, n: int, where: Path, name: str, bound: float) -> np.ndarray:
    if not isinstance(value, list) or len(value) != n or not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and abs(v) <= bound
            for v in value):
        raise ConfigError("start_from", f"{where}: the cluster's {name} must be {n} finite numbers within "
                                        f"+-{bound:g}")
    return np.array(value, dtype=np.float64)


def _short(labels: Any) -> str:
    if not isinstance(labels, list):
        return repr(labels)
    text = ", ".join(str(v) for v in labels[:12])
    return f"[{text}{', ...' if len(labels) > 12 else ''}] ({len(labels)})"
