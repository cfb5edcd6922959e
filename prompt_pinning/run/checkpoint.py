"""What a run keeps on disk so that it can be resumed, independent of reports.

Files in the run folder (data formats only: nothing here is ever unpickled):

* ``prompt_pinning_run.json``: the marker that the project made this folder,
  with the format version. Only marked folders are resumed.
* ``run_config.json``: the configuration and the resolved CMA settings.
* ``evaluations.jsonl``: one line per finished evaluation (``evaluation_log``).
* ``checkpoint-<generation>.npz``: at the start of every generation, the
  optimizer's whole state (CMA strategy and random state). The journal's
  checkpoint line names it by SHA-256 with its scalars, after the file is
  written; the previous file is removed only after that line, so the journal
  alone says which state a resume restores. ``checkpoint.json`` holds the same
  (read only for runs written before the checkpoint lines). Everything else is
  replayed from the log.
* ``baseline.npz`` / ``targets.npz`` / ``result.npz``: the unmodified prompt's
  images, explicit target images and the result rendered on the user's seeds.
* ``kept/<id>.npz``: the images (on their own seeds) of every candidate the run
  may still show: the selected one and the next one to validate. Each is written
  before the log line that makes it needed and removed after the line that makes
  it not, so whatever the log says is selected has its images on disk.
  (``best.npz``, the selected candidate's images in earlier folders, is still read.)
* ``run_state.json``: whether the run is running, completed, interrupted or
  stopped by an error (with the message).

Every file except the append-only log goes through ``files.write_bytes_atomic``.
Reading back for a resume treats every file as user input: sizes, types,
shapes and finite numbers are checked, and any problem is a ``ResumeError``
(a ``ValueError``) that names the file.
"""
from __future__ import annotations

import hashlib
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np
import torch

from ..config import ConfigError, PinningConfig
from .files import FileFormatError, npz_bytes, read_json, read_npz, write_bytes_atomic, write_json_atomic
from ..rendering import GenerationSettings
from .evaluation_log import (EVALUATIONS_FILE, append_evaluation, drop_torn_tail,  # noqa: F401 (the run files' API)
                             evaluation_entry, is_evaluation, read_evaluations, read_individuals, read_json_line,
                             record_from_entry)
from .checks import ResumeError, is_id, is_int
from ..options import GENERATION_LIMITS
from ..score.targets import MAX_TARGETS

MARKER_FILE = "prompt_pinning_run.json"
CONFIG_FILE = "run_config.json"
CHECKPOINT_FILE = "checkpoint.json"
STATE_FILE = "run_state.json"
BASELINE_FILE = "baseline.npz"
TARGETS_FILE = "targets.npz"
BEST_FILE = "best.npz"  # read only: earlier folders' selected candidate
KEPT_FOLDER = "kept"
RESULT_FILE = "result.npz"
LEGACY_FILES = ("checkpoint.pkl", "baseline.pt", "targets.pt", "best.pt")

RUN_FORMAT = "prompt pinning run"
CHECKPOINT_FORMAT = "prompt pinning checkpoint"
FORMAT_VERSION = 3
ARRAYS_NAME = re.compile(r"checkpoint-(\d{8})\.npz")
MAX_CONFIG_BYTES = 64 * 2**20
MAX_IMAGES_PER_FILE = max(MAX_TARGETS, GENERATION_LIMITS["batch_size"][1])  # targets.npz or one batch


def arrays_file(generation: int) -> str:
    return f"checkpoint-{generation:08d}.npz"


# -- the marker ---------------------------------------------------------------

def write_marker(run_dir: Path) -> None:
    write_json_atomic(Path(run_dir) / MARKER_FILE, {"format": RUN_FORMAT, "version": FORMAT_VERSION})


def check_run_folder(run_dir: Path) -> Path:
    """``run_dir`` if it is a run folder this version can continue; else a ResumeError."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise ResumeError(f"{run_dir}: no such run folder; pass a folder like <outdir>/prompt_pins/00000003")
    legacy = [name for name in LEGACY_FILES if (run_dir / name).exists()]
    if legacy and not (run_dir / MARKER_FILE).exists():
        raise ResumeError(f"{run_dir / legacy[0]}: this run was written by an older version, in a format "
                          "(pickle) that is not loaded because it can run code; it cannot be resumed. "
                          "Its reports stay readable; start a new run instead")
    marker = run_dir / MARKER_FILE
    if not marker.exists() and not marker.is_symlink():
        raise ResumeError(f"{marker}: missing, so {run_dir} is not a prompt pinning run folder "
                          "(only folders the extension made are resumed)")
    data = _read_json(marker, 4096)
    if not isinstance(data, dict) or data.get("format") != RUN_FORMAT:
        raise ResumeError(f"{marker}: not a prompt pinning run marker")
    if data.get("version") != FORMAT_VERSION:
        raise ResumeError(f"{marker}: run format version {data.get('version')!r}; "
                          f"this version resumes only version {FORMAT_VERSION}")
    try:
        links = [path for path in run_dir.iterdir() if path.is_symlink()]
    except OSError as error:
        raise ResumeError(f"{run_dir}: cannot be read: {error.strerror or error}") from None
    if links:  # writes must stay inside the folder
        raise ResumeError(f"{links[0]}: a symbolic link inside a run folder; refusing to resume {run_dir}")
    return run_dir


def confined_run_dir(path: Path | str, runs_roots: list[Path]) -> Path:
    """``path`` with symlinks and ``..`` resolved, if it is a run folder directly in one of ``runs_roots``.

    For callers that must not reach outside the outputs (the WebUI and its API).
    The answer for a path outside the roots is the same whether it exists or not.
    """
    roots = [Path(root).resolve() for root in runs_roots]
    try:
        resolved = Path(path).resolve()
    except (OSError, RuntimeError):  # a symlink loop
        resolved = None
    if resolved is None or resolved.parent not in roots:
        allowed = ", ".join(f"{root}/<run>" for root in roots) or "(no outputs folder is configured)"
        raise ResumeError(f"{path}: resume only continues run folders in the WebUI's outputs: {allowed}")
    if not resolved.is_dir():
        raise ResumeError(f"{path}: no such run folder")
    return resolved


def _read_json(path: Path, limit: int) -> Any:
    try:
        return read_json(path, limit)
    except FileFormatError as error:
        raise ResumeError(str(error)) from None


# -- run configuration --------------------------------------------------------

def save_run_config(run_dir: Path, config: PinningConfig, resolved: dict[str, Any]) -> None:
    write_json_atomic(Path(run_dir) / CONFIG_FILE, {"config": config.to_dict(), "resolved": resolved})


def load_run_config(run_dir: Path) -> tuple[PinningConfig, dict[str, Any]]:
    """The run's configuration, checked like any user's (targets come back from ``targets.npz``)."""
    config, resolved, _ = load_saved_run(run_dir)
    return config, resolved


def load_saved_run(run_dir: Path) -> tuple[PinningConfig, dict[str, Any], dict[str, Any]]:
    """``run_config.json``, checked: the config, the resolved settings and the recorded inputs
    (``targets``: the target names, ``target_mask``: how the mask was given).

    The inputs are for display only: a resumed run takes its targets' and mask's pixels from
    ``targets.npz`` and ``mask.npz`` and never opens a path written in a file.
    """
    path = Path(run_dir) / CONFIG_FILE
    data = _read_json(path, MAX_CONFIG_BYTES)
    if not isinstance(data, dict) or not isinstance(data.get("config"), dict):
        raise ResumeError(f"{path}: expected an object with a \"config\" object")
    resolved = data.get("resolved", {})
    if not isinstance(resolved, dict):
        raise ResumeError(f"{path}: \"resolved\" must be an object")
    try:
        config = config_from_dict(data["config"], Path(run_dir))
        config.validate()
    except ConfigError as error:
        raise ResumeError(f"{path}: {error}") from None
    except (TypeError, ValueError, KeyError) as error:
        raise ResumeError(f"{path}: bad configuration: {error}") from None
    saved = data["config"]
    return config, resolved, {"targets": list(saved.get("targets") or []),
                              **({"target_mask": saved["target_mask"]} if saved.get("target_mask") else {})}


_SETTING_TYPES = {"seed": int, "subseed": int, "subseed_strength": (int, float), "batch_size": int,
                  "steps": int, "cfg_scale": (int, float), "width": int, "height": int, "sampler": str,
                  "scheduler": str, "denoising_strength": (int, float)}


def config_from_dict(data: dict[str, Any], run_dir: Optional[Path] = None) -> PinningConfig:
    """A config from ``run_config.json``'s "config" (not yet validated)."""
    values = dict(data)
    settings = values.get("generation")
    if not isinstance(settings, dict):
        raise ValueError("generation: must be an object")
    for name, kind in _SETTING_TYPES.items():
        if name in settings and (isinstance(settings[name], bool) or not isinstance(settings[name], kind)):
            raise ConfigError(name, f"must be of type {getattr(kind, '__name__', 'number')}, got {settings[name]!r}")
    values["generation"] = GenerationSettings(**settings)
    targets = values.get("targets", [])
    if not isinstance(targets, list) or len(targets) > MAX_TARGETS:
        raise ConfigError("targets", f"must be a list of at most {MAX_TARGETS} names")
    values["targets"] = ()
    values["target_mask"] = None  # a resumed run takes its mask from mask.npz (run_mask.py)
    values["outdir"] = Path(run_dir).parent.parent if run_dir is not None else Path(str(values.get("outdir", "outputs")))
    values["resume"] = None
    values.setdefault("fade_guard", 0.0)  # a run saved before the fade guard existed ran without it
    values.setdefault("fade_tolerance", 0.0)  # ... and one saved before its tolerance charged from the first loss
    values.setdefault("fade_guard_form", "batch")  # ... and one saved before the forms guarded the whole batch
    if values.get("cmatrix") is not None:
        values["cmatrix"] = np.array(values["cmatrix"], dtype=np.float64)
    known = PinningConfig.__dataclass_fields__
    return PinningConfig(**{k: v for k, v in values.items() if k in known})


# -- images ---------------------------------------------------------------------

def save_images(path: Path, images: torch.Tensor, ident: Optional[str] = None,
                traces: Optional[np.ndarray] = None) -> None:
    """A batch (with its individual's id and its sampler's traces, when given)."""
    arrays = {"images": images.detach().cpu().to(torch.float32).numpy()}
    if ident is not None:
        arrays["id"] = np.array(ident)
    if traces is not None:
        arrays["traces"] = np.asarray(traces, dtype=np.float64)
    write_bytes_atomic(path, npz_bytes(arrays))


def load_images(path: Path, settings: GenerationSettings, *, count: Optional[int] = None,
                with_id: bool = False) -> tuple[torch.Tensor, Optional[str]]:
    """A saved image batch, checked: (count, 3, height, width) float32 in [0, 1]."""
    images, ident, _ = load_batch(path, settings, count=count, with_id=with_id)
    return images, ident


def load_batch(path: Path, settings: GenerationSettings, *, count: Optional[int] = None,
               with_id: bool = False) -> tuple[torch.Tensor, Optional[str], Optional[np.ndarray]]:
    """``load_images`` and the batch's traces (None when the file holds none)."""
    h, w = settings.height, settings.width

    def shape_ok(shape: tuple[int, ...]) -> bool:
        return (len(shape) == 4 and shape[1:] == (3, h, w) and 1 <= shape[0] <= MAX_IMAGES_PER_FILE
                and (count is None or shape[0] == count))

    expected: dict[str, tuple[str, Callable]] = {"images": ("f", shape_ok),
                                                 "traces": ("f", lambda shape: 1 <= len(shape) <= 4)}
    if with_id:
        expected["id"] = ("U", lambda shape: shape == ())
    try:
        arrays = read_npz(path, expected, optional=frozenset({"traces"}))
    except FileFormatError as error:
        raise ResumeError(str(error)) from None
    images = arrays["images"]
    if images.dtype != np.float32 or not np.isfinite(images).all() or images.min() < 0 or images.max() > 1:
        raise ResumeError(f"{path}: images must be float32 values in [0, 1]")
    ident = str(arrays["id"]) if with_id else None
    if ident is not None and not is_id(ident):
        raise ResumeError(f"{path}: bad individual id {ident!r}")
    traces = arrays.get("traces")
    if traces is not None and traces.shape[0] != images.shape[0]:
        raise ResumeError(f"{path}: traces for {traces.shape[0]} images, the batch has {images.shape[0]}")
    return torch.from_numpy(images), ident, traces


def kept_path(run_dir: Path, ident: str) -> Path:
    """Where a candidate's kept images are (see the module's list of files)."""
    if not is_id(ident):
        raise ValueError(f"bad individual id {ident!r}")
    return Path(run_dir) / KEPT_FOLDER / f"{ident}.npz"


def kept_ids(run_dir: Path) -> list[str]:
    """The ids whose images ``kept/`` holds (other names there are ignored)."""
    folder = Path(run_dir) / KEPT_FOLDER
    if folder.is_symlink() or not folder.is_dir():
        return []
    return sorted(p.stem for p in folder.iterdir() if p.suffix == ".npz" and is_id(p.stem))


# -- the checkpoint ---------------------------------------------------------------

@dataclass
class Checkpoint:
    """The optimizer's state at the start of ``generation``, before its population is drawn.

    Everything else a run knows is replayed from the evaluation log."""

    generation: int
    optimizer: tuple[dict[str, Any], dict[str, np.ndarray]]  # the optimizer's state()


def save_checkpoint(run_dir: Path, checkpoint: Checkpoint, n: int) -> dict[str, Any]:
    """Write the arrays file, then ``checkpoint.json`` naming it; returns the journal's checkpoint
    event (the arrays file by name and SHA-256, and the scalars). Earlier arrays files stay until
    the event is logged (``drop_old_arrays``)."""
    run_dir = Path(run_dir)
    scalars, opt_arrays = checkpoint.optimizer
    data = npz_bytes({f"opt_{k}": v for k, v in opt_arrays.items()})
    name = arrays_file(checkpoint.generation)
    write_bytes_atomic(run_dir / name, data)
    event = {"checkpoint": True, "generation": checkpoint.generation, "arrays": name,
             "sha256": hashlib.sha256(data).hexdigest(), "optimizer": scalars}
    write_json_atomic(run_dir / CHECKPOINT_FILE, {
        "format": CHECKPOINT_FORMAT, "version": FORMAT_VERSION, "generation": checkpoint.generation,
        "arrays": name, "optimizer": scalars, "sha256": event["sha256"]})
    return event


def drop_old_arrays(run_dir: Path, keep: str) -> None:
    """Remove the arrays files of earlier generations (once the journal names ``keep``)."""
    for path in Path(run_dir).iterdir():
        if ARRAYS_NAME.fullmatch(path.name) and path.name != keep and not path.is_symlink():
            path.unlink(missing_ok=True)


def load_checkpoint(run_dir: Path, optimizer: Any, n: int, generations: int,
                    named: Optional[dict[str, Any]] = None) -> Checkpoint:
    """Read and check the checkpoint; restore ``optimizer`` (freshly built) from it. ``named``:
    the journal's last checkpoint event, which then is the truth (``checkpoint.json`` may be one
    generation ahead of it after a crash); without one (earlier runs), ``checkpoint.json``."""
    if named is not None:
        path, doc = Path(run_dir) / EVALUATIONS_FILE, named
    else:
        path = Path(run_dir) / CHECKPOINT_FILE
        doc = _read_json(path, MAX_CONFIG_BYTES)
        if not isinstance(doc, dict) or doc.get("format") != CHECKPOINT_FORMAT \
                or doc.get("version") != FORMAT_VERSION:
            raise ResumeError(f"{path}: not a version {FORMAT_VERSION} prompt pinning checkpoint")
    g = doc.get("generation")
    if not is_int(g) or not 0 <= g <= generations + 1:
        raise ResumeError(f"{path}: generation must be a whole number from 0 to {generations + 1}, got {g!r}")
    if doc.get("arrays") != arrays_file(g) or not isinstance(doc.get("sha256"), str):
        raise ResumeError(f"{path}: must name its arrays file {arrays_file(g)} and its sha256")
    scalars = doc.get("optimizer")
    if not isinstance(scalars, dict):
        raise ResumeError(f"{path}: \"optimizer\" must be an object")
    try:
        shapes = optimizer.array_shapes(scalars)
    except ValueError as error:
        raise ResumeError(f"{path}: optimizer state: {error}") from None
    expected: dict[str, tuple[str, Callable]] = {
        f"opt_{k}": ("u" if k == "rng_key" else "f", lambda s, want=shape: s == want) for k, shape in shapes.items()}
    arrays_path = Path(run_dir) / arrays_file(g)
    try:
        _check_sha256(arrays_path, doc["sha256"])
        arrays = read_npz(arrays_path, expected)
    except FileFormatError as error:
        raise ResumeError(str(error)) from None
    try:
        optimizer.restore(scalars, {k[4:]: v for k, v in arrays.items()})
    except ValueError as error:
        raise ResumeError(f"{path} with {arrays_path.name}: optimizer state: {error}") from None
    return Checkpoint(g, optimizer.state())


def _check_sha256(path: Path, expected: str) -> None:
    if path.is_symlink() or not path.is_file():
        raise FileFormatError(path, "is missing")
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
    except OSError as error:
        raise FileFormatError(path, f"cannot be read: {error.strerror or error}") from None
    if digest.hexdigest() != expected:
        raise FileFormatError(path, "does not match the checksum the run recorded for it (truncated or edited?)")


# -- run state ----------------------------------------------------------------------

def write_run_state(run_dir: Path, status: str, **info: Any) -> None:
    write_json_atomic(Path(run_dir) / STATE_FILE, {"stop_reason": status, "time": time.time(), **info})


def read_run_state(run_dir: Path) -> dict[str, Any]:
    path = Path(run_dir) / STATE_FILE
    return read_json(path) if path.is_file() else {}
