"""What a run keeps on disk so that it can be resumed, independent of reports.

Files in the run folder:

* ``run_config.json``: the configuration and the resolved CMA settings.
* ``evaluations.jsonl``: one line per finished evaluation, appended and
  fsynced at once; a crash loses at most the individual in flight.
* ``checkpoint.pkl``: at the start of every generation, the optimizer (CMA
  strategy and its random state), the logbook and the generation summaries.
* ``baseline.pt`` / ``targets.pt`` / ``best.pt``: the unmodified prompt's
  images, explicit target images, and the best individual's images.
* ``run_state.json``: whether the run is running, completed, interrupted or
  stopped by an error (with the message).

Every file except the append-only log is written to a temporary name and
renamed, so a reader never sees half a file.
"""
from __future__ import annotations

import json
import os
import pickle
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch

from .config import PinningConfig
from .records import IndividualRecord
from .rendering import GenerationSettings
from .rundir import write_json_atomic

CONFIG_FILE = "run_config.json"
EVALUATIONS_FILE = "evaluations.jsonl"
CHECKPOINT_FILE = "checkpoint.pkl"
STATE_FILE = "run_state.json"
BASELINE_FILE = "baseline.pt"
TARGETS_FILE = "targets.pt"
BEST_FILE = "best.pt"
CHECKPOINT_VERSION = 1


@dataclass
class Checkpoint:
    """The state at the start of ``generation``, before its population is drawn."""

    generation: int
    optimizer: Any
    logbook: list[dict[str, Any]]
    generations: list[Any]  # GenerationRecord list so far
    version: int = CHECKPOINT_VERSION



def save_pickle_atomic(path: Path, obj: Any) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as f:
        pickle.dump(obj, f, protocol=pickle.HIGHEST_PROTOCOL)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def save_checkpoint(run_dir: Path, checkpoint: Checkpoint) -> None:
    save_pickle_atomic(Path(run_dir) / CHECKPOINT_FILE, checkpoint)


def load_checkpoint(run_dir: Path) -> Optional[Checkpoint]:
    path = Path(run_dir) / CHECKPOINT_FILE
    if not path.is_file():
        return None
    with open(path, "rb") as f:
        checkpoint = pickle.load(f)
    if not isinstance(checkpoint, Checkpoint) or checkpoint.version != CHECKPOINT_VERSION:
        raise ValueError(f"{path}: not a checkpoint this version can resume")
    return checkpoint


def save_tensor_atomic(path: Path, value: Any) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    torch.save(value, tmp)
    os.replace(tmp, path)


def load_tensor(path: Path) -> Any:
    return torch.load(path, weights_only=False) if Path(path).is_file() else None


def append_evaluation(run_dir: Path, entry: dict[str, Any]) -> None:
    """Append one evaluation as a JSON line and force it to disk."""
    with open(Path(run_dir) / EVALUATIONS_FILE, "a", encoding="utf-8") as f:
        f.write(json.dumps(entry, allow_nan=True) + "\n")
        f.flush()
        os.fsync(f.fileno())


def evaluation_entry(record: IndividualRecord, run_dir: Path) -> dict[str, Any]:
    """The JSON line that lets a resumed run skip this evaluation."""
    return {
        "generation": record.generation, "index": record.index, "id": record.individual_id,
        "folder": str(record.folder.relative_to(run_dir)), "offsets": record.offsets.tolist(),
        "positive": record.positive, "negative": record.negative, "seeds": record.seeds,
        "loss": record.loss, "pair_losses": record.pair_losses.tolist(), "size": record.size,
        "render_seconds": record.render_seconds, "loss_seconds": record.loss_seconds,
        "extra": {k: v for k, v in record.extra.items() if k != "infotexts"},
    }


def record_from_entry(entry: dict[str, Any], run_dir: Path, images: torch.Tensor) -> IndividualRecord:
    """An evaluation read back from the log, with the images the caller has for it."""
    return IndividualRecord(
        generation=entry["generation"], index=entry["index"], individual_id=entry["id"],
        offsets=np.array(entry["offsets"], dtype=np.float64), positive=entry["positive"],
        negative=entry["negative"], images=images, seeds=entry["seeds"], loss=entry["loss"],
        pair_losses=np.array(entry["pair_losses"], dtype=np.float64), size=entry["size"],
        render_seconds=entry["render_seconds"], loss_seconds=entry["loss_seconds"],
        folder=Path(run_dir) / entry["folder"], extra=entry.get("extra", {}))


def clear_evaluations(run_dir: Path) -> None:
    """Forget logged evaluations (a restart from the baseline re-evaluates them)."""
    path = Path(run_dir) / EVALUATIONS_FILE
    tmp = path.with_suffix(".tmp")
    tmp.write_text("", encoding="utf-8")
    os.replace(tmp, path)


def read_evaluations(run_dir: Path) -> list[dict[str, Any]]:
    """Every complete line of the log; a torn last line (a crash mid-write) is skipped."""
    path = Path(run_dir) / EVALUATIONS_FILE
    if not path.is_file():
        return []
    entries = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            if not line.endswith("\n"):
                break
            try:
                entries.append(json.loads(line))
            except json.JSONDecodeError:
                break
    return entries


def write_run_state(run_dir: Path, status: str, **info: Any) -> None:
    write_json_atomic(Path(run_dir) / STATE_FILE, {"stop_reason": status, "time": time.time(), **info})


def read_run_state(run_dir: Path) -> dict[str, Any]:
    path = Path(run_dir) / STATE_FILE
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


def save_run_config(run_dir: Path, config: PinningConfig, resolved: dict[str, Any]) -> None:
    write_json_atomic(Path(run_dir) / CONFIG_FILE, {"config": config.to_dict(), "resolved": resolved})


def load_run_config(run_dir: Path) -> tuple[PinningConfig, dict[str, Any]]:
    """The run's configuration (targets come back from ``targets.pt``, not their names)."""
    path = Path(run_dir) / CONFIG_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path}: not a run folder (no {CONFIG_FILE}); pass a folder like <outdir>/prompt_pins/00000003")
    data = json.loads(path.read_text(encoding="utf-8"))
    return config_from_dict(data["config"]), data.get("resolved", {})


def config_from_dict(data: dict[str, Any]) -> PinningConfig:
    values = dict(data)
    values["generation"] = GenerationSettings(**values["generation"])
    values["targets"] = ()
    values["outdir"] = Path(values["outdir"])
    values["resume"] = None
    if values.get("cmatrix") is not None:
        values["cmatrix"] = np.array(values["cmatrix"], dtype=np.float64)
    known = PinningConfig.__dataclass_fields__
    return PinningConfig(**{k: v for k, v in values.items() if k in known})
