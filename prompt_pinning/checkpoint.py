"""What a run keeps on disk so that it can be resumed, independent of reports.

Files in the run folder (data formats only: nothing here is ever unpickled):

* ``prompt_pinning_run.json``: the marker that the project made this folder,
  with the format version. Only marked folders are resumed.
* ``run_config.json``: the configuration and the resolved CMA settings.
* ``evaluations.jsonl``: one line per finished evaluation, appended and
  fsynced at once; a crash loses at most the individual in flight.
* ``checkpoint.json`` with ``checkpoint-<generation>.npz``: at the start of
  every generation, the optimizer's whole state (CMA strategy and random
  state), the logbook and the generation summaries. The JSON names its arrays
  file and that file's SHA-256, so the pair is always read consistently: the
  arrays file of a generation is written before the JSON that points to it,
  and the previous one is removed only after.
* ``baseline.npz`` / ``targets.npz`` / ``best.npz``: the unmodified prompt's
  images, explicit target images, and the best individual's images.
* ``run_state.json``: whether the run is running, completed, interrupted or
  stopped by an error (with the message).

Every file except the append-only log goes through ``files.write_bytes_atomic``.
Reading back for a resume treats every file as user input: sizes, types,
shapes and finite numbers are checked, and any problem is a ``ResumeError``
(a ``ValueError``) that names the file.
"""
from __future__ import annotations

import hashlib
import math
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np
import torch

from .config import ConfigError, PinningConfig
from .files import (FileFormatError, append_json_line, npz_bytes, read_json, read_npz, read_text,
                    write_bytes_atomic, write_json_atomic)
from .records import GenerationRecord, IndividualRecord
from .rendering import GenerationSettings
from .rundir import ID_LENGTH, individual_id

MARKER_FILE = "prompt_pinning_run.json"
CONFIG_FILE = "run_config.json"
EVALUATIONS_FILE = "evaluations.jsonl"
CHECKPOINT_FILE = "checkpoint.json"
STATE_FILE = "run_state.json"
BASELINE_FILE = "baseline.npz"
TARGETS_FILE = "targets.npz"
BEST_FILE = "best.npz"
LEGACY_FILES = ("checkpoint.pkl", "baseline.pt", "targets.pt", "best.pt")

RUN_FORMAT = "prompt pinning run"
CHECKPOINT_FORMAT = "prompt pinning checkpoint"
FORMAT_VERSION = 2
ARRAYS_NAME = re.compile(r"checkpoint-(\d{8})\.npz")
MAX_CONFIG_BYTES = 64 * 2**20
MAX_TARGETS = 256
MAX_LIST = 10**6


class ResumeError(ValueError):
    """A run folder that cannot be continued; the message names the file and the problem."""


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


def load_saved_run(run_dir: Path) -> tuple[PinningConfig, dict[str, Any], list]:
    """``run_config.json``, checked: the config, the resolved settings and the target names.

    The names are for display only: a resumed run takes its targets' pixels from
    ``targets.npz`` and never opens a path written in a file.
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
    return config, resolved, list(data["config"].get("targets") or [])


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
    values["outdir"] = Path(run_dir).parent.parent if run_dir is not None else Path(str(values.get("outdir", "outputs")))
    values["resume"] = None
    if values.get("cmatrix") is not None:
        values["cmatrix"] = np.array(values["cmatrix"], dtype=np.float64)
    known = PinningConfig.__dataclass_fields__
    return PinningConfig(**{k: v for k, v in values.items() if k in known})


# -- images ---------------------------------------------------------------------

def save_images(path: Path, images: torch.Tensor, ident: Optional[str] = None) -> None:
    arrays = {"images": images.detach().cpu().to(torch.float32).numpy()}
    if ident is not None:
        arrays["id"] = np.array(ident)
    write_bytes_atomic(path, npz_bytes(arrays))


def load_images(path: Path, settings: GenerationSettings, *, count: Optional[int] = None,
                with_id: bool = False) -> tuple[torch.Tensor, Optional[str]]:
    """A saved image batch, checked: (count, 3, height, width) float32 in [0, 1]."""
    h, w = settings.height, settings.width

    def shape_ok(shape: tuple[int, ...]) -> bool:
        return (len(shape) == 4 and shape[1:] == (3, h, w) and 1 <= shape[0] <= MAX_TARGETS
                and (count is None or shape[0] == count))

    expected: dict[str, tuple[str, Callable]] = {"images": ("f", shape_ok)}
    if with_id:
        expected["id"] = ("U", lambda shape: shape == ())
    try:
        arrays = read_npz(path, expected)
    except FileFormatError as error:
        raise ResumeError(str(error)) from None
    images = arrays["images"]
    if images.dtype != np.float32 or not np.isfinite(images).all() or images.min() < 0 or images.max() > 1:
        raise ResumeError(f"{path}: images must be float32 values in [0, 1]")
    ident = str(arrays["id"]) if with_id else None
    if ident is not None and not _is_id(ident):
        raise ResumeError(f"{path}: bad individual id {ident!r}")
    return torch.from_numpy(images), ident


# -- the checkpoint ---------------------------------------------------------------

@dataclass
class Checkpoint:
    """The state at the start of ``generation``, before its population is drawn."""

    generation: int
    optimizer: tuple[dict[str, Any], dict[str, np.ndarray]]  # the optimizer's state()
    logbook: list[dict[str, Any]]
    generations: list[GenerationRecord] = field(default_factory=list)


_RECORD_VECTORS = ("centroid", "diag_std", "eigenvalues")
_RECORD_SCALARS = ("sigma", "axis_ratio", "best_loss")
_RECORD_VALIDATION = ("validation_loss", "validated_id", "validated_loss", "training_seed")  # each may be null


def checkpoint_files(checkpoint: Checkpoint, n: int) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """The JSON document and the arrays of a checkpoint (the JSON lacks the arrays' hash)."""
    scalars, opt_arrays = checkpoint.optimizer
    records = checkpoint.generations
    arrays = {f"opt_{k}": v for k, v in opt_arrays.items()}
    for name in _RECORD_VECTORS:
        arrays[f"gen_{name}"] = np.array([getattr(r, name) for r in records], dtype=np.float64).reshape(len(records), n)
    for name in _RECORD_SCALARS:
        arrays[f"gen_{name}"] = np.array([getattr(r, name) for r in records], dtype=np.float64).reshape(len(records))
    document = {
        "format": CHECKPOINT_FORMAT, "version": FORMAT_VERSION, "generation": checkpoint.generation,
        "arrays": arrays_file(checkpoint.generation), "optimizer": scalars,
        "logbook": [{k: v for k, v in line.items() if k != "axis_ratio"} for line in checkpoint.logbook],
        "generations": [{"generation": r.generation, "losses": list(r.losses), "individual_ids": list(r.individual_ids),
                         **{name: getattr(r, name) for name in _RECORD_VALIDATION}}
                        for r in records],
    }
    return document, arrays


def save_checkpoint(run_dir: Path, checkpoint: Checkpoint, n: int) -> None:
    run_dir = Path(run_dir)
    document, arrays = checkpoint_files(checkpoint, n)
    data = npz_bytes(arrays)
    write_bytes_atomic(run_dir / document["arrays"], data)
    document["sha256"] = hashlib.sha256(data).hexdigest()
    write_json_atomic(run_dir / CHECKPOINT_FILE, document)
    for path in run_dir.iterdir():  # the arrays of earlier generations, now unreferenced
        if ARRAYS_NAME.fullmatch(path.name) and path.name != document["arrays"] and not path.is_symlink():
            path.unlink(missing_ok=True)


def load_checkpoint(run_dir: Path, optimizer: Any, n: int, generations: int,
                    folder_of: Callable[[int], Optional[Path]]) -> Checkpoint:
    """Read and check the checkpoint; restore ``optimizer`` (freshly built) from it."""
    path = Path(run_dir) / CHECKPOINT_FILE
    doc = _read_json(path, MAX_CONFIG_BYTES)
    if not isinstance(doc, dict) or doc.get("format") != CHECKPOINT_FORMAT or doc.get("version") != FORMAT_VERSION:
        raise ResumeError(f"{path}: not a version {FORMAT_VERSION} prompt pinning checkpoint")
    g = doc.get("generation")
    if not _is_int(g) or not 0 <= g <= generations + 1:
        raise ResumeError(f"{path}: generation must be a whole number from 0 to {generations + 1}, got {g!r}")
    if doc.get("arrays") != arrays_file(g) or not isinstance(doc.get("sha256"), str):
        raise ResumeError(f"{path}: must name its arrays file {arrays_file(g)} and its sha256")
    scalars = doc.get("optimizer")
    if not isinstance(scalars, dict):
        raise ResumeError(f"{path}: \"optimizer\" must be an object")
    count = max(0, g - 1)
    try:
        shapes = optimizer.array_shapes(scalars)
    except ValueError as error:
        raise ResumeError(f"{path}: optimizer state: {error}") from None
    expected: dict[str, tuple[str, Callable]] = {
        f"opt_{k}": ("u" if k == "rng_key" else "f", lambda s, want=shape: s == want) for k, shape in shapes.items()}
    for name in _RECORD_VECTORS:
        expected[f"gen_{name}"] = ("f", lambda s: s == (count, n))
    for name in _RECORD_SCALARS:
        expected[f"gen_{name}"] = ("f", lambda s: s == (count,))
    arrays_path = Path(run_dir) / arrays_file(g)
    try:
        _check_sha256(arrays_path, doc["sha256"])
        arrays = read_npz(arrays_path, expected)
    except FileFormatError as error:
        raise ResumeError(str(error)) from None
    try:
        optimizer.restore(scalars, {k[4:]: v for k, v in arrays.items() if k.startswith("opt_")})
    except ValueError as error:
        raise ResumeError(f"{path} with {arrays_path.name}: optimizer state: {error}") from None
    records = _generation_records(path, doc.get("generations"), arrays, count, folder_of)
    logbook = _logbook(path, doc.get("logbook"), arrays, count)
    return Checkpoint(g, optimizer.state(), logbook, records)


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
        raise FileFormatError(path, "does not match the checksum in checkpoint.json (truncated or edited?)")


def _generation_records(path, items, arrays, count, folder_of) -> list[GenerationRecord]:
    if not isinstance(items, list) or len(items) != count:
        raise ResumeError(f"{path}: \"generations\" must list {count} generations")
    for name in ("centroid", "diag_std", "eigenvalues", "sigma", "best_loss"):
        if not np.isfinite(arrays[f"gen_{name}"]).all():
            raise ResumeError(f"{path}: generation {name} values must be finite")
    records = []
    for k, item in enumerate(items):
        if not isinstance(item, dict) or item.get("generation") != k + 1:
            raise ResumeError(f"{path}: generations[{k}] must be generation {k + 1}")
        losses, ids = item.get("losses"), item.get("individual_ids")
        if not _number_list(losses, finite=True) or not losses:
            raise ResumeError(f"{path}: generations[{k}].losses must be finite numbers")
        if not isinstance(ids, list) or len(ids) != len(losses) or not all(_is_id(i) for i in ids):
            raise ResumeError(f"{path}: generations[{k}].individual_ids must be {len(losses)} ids")
        validation = {name: item.get(name) for name in _RECORD_VALIDATION}
        if not (all(v is None or _is_finite(v) for v in (validation["validation_loss"], validation["validated_loss"]))
                and (validation["validated_id"] is None or _is_id(validation["validated_id"]))
                and (validation["training_seed"] is None or _is_int(validation["training_seed"]))):
            raise ResumeError(f"{path}: generations[{k}] validation fields must be numbers, an id or null")
        records.append(GenerationRecord(
            generation=k + 1, losses=[float(x) for x in losses], individual_ids=list(ids),
            sigma=float(arrays["gen_sigma"][k]), centroid=arrays["gen_centroid"][k].copy(),
            diag_std=arrays["gen_diag_std"][k].copy(), axis_ratio=float(arrays["gen_axis_ratio"][k]),
            eigenvalues=arrays["gen_eigenvalues"][k].copy(), best_loss=float(arrays["gen_best_loss"][k]),
            folder=folder_of(k + 1), **validation))
    return records


_LOGBOOK_NUMBERS = ("min", "avg", "max", "std", "best", "sigma")
_LOGBOOK_SECONDS = ("render_seconds", "host_prompt_seconds", "loss_seconds", "prompt_seconds")  # optional


def _logbook(path, lines, arrays, count) -> list[dict[str, Any]]:
    if not isinstance(lines, list) or len(lines) != count:
        raise ResumeError(f"{path}: \"logbook\" must have {count} lines")
    out = []
    for k, line in enumerate(lines):
        if (not isinstance(line, dict) or line.get("gen") != k + 1 or not _is_int(line.get("nevals"))
                or not all(_is_finite(line.get(name)) for name in _LOGBOOK_NUMBERS)):
            raise ResumeError(f"{path}: logbook[{k}] must be generation {k + 1} with finite numbers")
        seconds = {name: line[name] for name in _LOGBOOK_SECONDS if name in line}
        if not all(_is_finite(v) and v >= 0 for v in seconds.values()):
            raise ResumeError(f"{path}: logbook[{k}] timings must be finite numbers >= 0")
        if "val" in line:
            if line["val"] is not None and not _is_finite(line["val"]):
                raise ResumeError(f"{path}: logbook[{k}].val must be a finite number or null")
            seconds["val"] = line["val"]
        out.append({"gen": k + 1, "nevals": line["nevals"], **{name: float(line[name]) for name in _LOGBOOK_NUMBERS},
                    "axis_ratio": float(arrays["gen_axis_ratio"][k]),
                    **{n: None if v is None else float(v) for n, v in seconds.items()}})
    return out


# -- the evaluation log -------------------------------------------------------------

def append_evaluation(run_dir: Path, entry: dict[str, Any]) -> None:
    """Append one evaluation as a JSON line and force it to disk."""
    append_json_line(Path(run_dir) / EVALUATIONS_FILE, entry)


def evaluation_entry(record: IndividualRecord, run_dir: Optional[Path]) -> dict[str, Any]:
    """The JSON line that lets a resumed run skip this evaluation."""
    folder = record.folder.relative_to(run_dir).as_posix() if record.folder is not None and run_dir else None
    return {
        "generation": record.generation, "index": record.index, "id": record.individual_id,
        "folder": folder, "offsets": record.offsets.tolist(),
        "positive": record.positive, "negative": record.negative, "seeds": record.seeds,
        "loss": record.loss, "pair_losses": record.pair_losses.tolist(), "size": record.size,
        "render_seconds": record.render_seconds, "loss_seconds": record.loss_seconds,
        "extra": {k: v for k, v in record.extra.items() if k != "infotexts"},
    }


def record_from_entry(entry: dict[str, Any], run_dir: Optional[Path], images: torch.Tensor) -> IndividualRecord:
    """An evaluation read back from the log (checked by ``read_evaluations``), with the caller's images."""
    return IndividualRecord(
        generation=entry["generation"], index=entry["index"], individual_id=entry["id"],
        offsets=np.array(entry["offsets"], dtype=np.float64), positive=entry["positive"],
        negative=entry["negative"], images=images, seeds=list(entry["seeds"]), loss=float(entry["loss"]),
        pair_losses=_float_array(entry["pair_losses"]), size=float(entry["size"]),
        render_seconds=float(entry["render_seconds"]), loss_seconds=float(entry["loss_seconds"]),
        folder=Path(run_dir) / entry["folder"] if run_dir is not None and entry["folder"] else None,
        extra=dict(entry["extra"]))


def drop_torn_tail(run_dir: Path) -> None:
    """Cut a last line left half-written by a crash, so new lines start on a line of their own."""
    path = Path(run_dir) / EVALUATIONS_FILE
    if path.is_symlink() or not path.is_file():
        return
    size = path.stat().st_size
    if size == 0:
        return
    with open(path, "rb+") as f:
        f.seek(max(0, size - (1 << 20)))
        tail = f.read()
        if tail.endswith(b"\n"):
            return
        cut = tail.rfind(b"\n")
        keep = size - len(tail) + cut + 1 if cut >= 0 else (0 if size <= (1 << 20) else None)
        if keep is None:
            raise ResumeError(f"{path}: a last line over 1 MiB without an end; the log is damaged")
        f.truncate(keep)
        f.flush()
        os.fsync(f.fileno())


EntryCheck = Callable[[dict[str, Any]], Optional[str]]


def read_evaluations(run_dir: Path, check: Optional[EntryCheck] = None) -> list[dict[str, Any]]:
    """Every complete line of the log, checked; a torn last line (a crash mid-write) is skipped.

    ``check(entry)`` may add the run's own checks; it returns a problem or None.
    """
    path = Path(run_dir) / EVALUATIONS_FILE
    if not path.exists() and not path.is_symlink():
        return []
    try:
        text = read_text(path)
    except FileFormatError as error:
        raise ResumeError(str(error)) from None
    lines = text.split("\n")[:-1]  # the part after the last newline is torn or empty
    entries, seen = [], set()
    for number, line in enumerate(lines, start=1):
        try:
            entry = read_json_line(line)
            if isinstance(entry, dict) and entry.get("validation") is True:
                problem = _validation_problem(entry)
            else:
                problem = _entry_problem(entry) or (check(entry) if check else None)
        except ValueError as error:
            problem = f"not valid JSON: {error}"
        if problem:
            raise ResumeError(f"{path}, line {number}: {problem}")
        if entry.get("validation") is True:
            key = ("validation", entry["generation"], entry["id"])
        else:
            key = (entry["generation"], entry["index"])
        if key in seen:
            raise ResumeError(f"{path}, line {number}: {key[-2]} {key[-1]} is logged twice")
        seen.add(key)
        entries.append(entry)
    return entries


def read_json_line(line: str) -> Any:
    import json

    def refuse(name: str) -> Any:
        raise ValueError(f"{name} is not a JSON number")

    return json.loads(line, parse_constant=refuse)


_FOLDER = re.compile(r"(\d{8})/([0-9a-f]{%d})(-\d{1,6})?" % ID_LENGTH)


def _entry_problem(e: Any) -> Optional[str]:
    """What is wrong with a log entry's types and values (None when it is fine)."""
    if not isinstance(e, dict):
        return "must be a JSON object"
    required = ("generation", "index", "id", "folder", "offsets", "positive", "negative", "seeds", "loss",
                "pair_losses", "size", "render_seconds", "loss_seconds", "extra")
    missing = [k for k in required if k not in e]
    if missing:
        return f"missing {', '.join(missing)}"
    if not _is_int(e["generation"]) or not 0 <= e["generation"] < 10**8:
        return f"generation must be a whole number >= 0, got {e['generation']!r}"
    if not _is_int(e["index"]) or not 0 <= e["index"] < MAX_LIST:
        return f"index must be a whole number >= 0, got {e['index']!r}"
    if not _number_list(e["offsets"], finite=True) or not e["offsets"]:
        return "offsets must be a list of finite numbers"
    if not _is_id(e["id"]) or e["id"] != individual_id(np.array(e["offsets"], dtype=np.float64)):
        return f"id {e['id']!r} does not belong to the offsets"
    folder = e["folder"]
    if folder is not None:
        match = _FOLDER.fullmatch(folder) if isinstance(folder, str) else None
        if not match or int(match.group(1)) != e["generation"] or match.group(2) != e["id"]:
            return f"folder must be <generation>/<id>, got {folder!r}"
    if not isinstance(e["positive"], str) or not isinstance(e["negative"], str):
        return "positive and negative must be strings"
    if not isinstance(e["seeds"], list) or not e["seeds"] or len(e["seeds"]) > MAX_LIST \
            or not all(_is_int(s) for s in e["seeds"]):
        return "seeds must be a list of whole numbers"
    if not _is_finite(e["loss"]):
        return f"loss must be a finite number, got {e['loss']!r}"
    if not _number_list(e["pair_losses"], finite=False):
        return "pair_losses must be a list of numbers (null for a non-finite value)"
    for name in ("size", "render_seconds", "loss_seconds"):
        if not _is_finite(e[name]) or e[name] < 0:
            return f"{name} must be a finite number >= 0, got {e[name]!r}"
    return _extra_problem(e["extra"])


def _validation_problem(e: dict[str, Any]) -> Optional[str]:
    """What is wrong with a validation line: {validation, generation, id, of, loss, losses}."""
    unknown = set(e) - {"validation", "generation", "id", "of", "loss", "losses"}
    if unknown:
        return f"validation line has unknown keys {sorted(unknown)}"
    if not _is_int(e.get("generation")) or not 0 <= e["generation"] < 10**8:
        return f"generation must be a whole number >= 0, got {e.get('generation')!r}"
    if not _is_id(e.get("id")):
        return f"id must be an individual id, got {e.get('id')!r}"
    of = e.get("of")
    if not isinstance(of, list) or len(of) != 2 or not all(_is_int(v) and 0 <= v < 10**8 for v in of):
        return "of must be [generation, index]"
    if not _is_finite(e.get("loss")):
        return f"loss must be a finite number, got {e.get('loss')!r}"
    losses = e.get("losses")
    if not _number_list(losses, finite=True) or not losses or len(losses) > MAX_LIST:
        return "losses must be a non-empty list of finite numbers"
    return None


def _extra_problem(extra: Any) -> Optional[str]:
    if not isinstance(extra, dict):
        return "extra must be an object"
    if "penalty" in extra and (not _is_finite(extra["penalty"]) or extra["penalty"] < 0):
        return "extra.penalty must be a finite number >= 0"
    if extra.get("fitness") is not None and not _number_list(extra["fitness"], finite=True):
        return "extra.fitness must be a list of finite numbers or null"
    for name in ("image_losses", "level_values"):
        if extra.get(name) is not None and not _number_list(extra[name], finite=False):
            return f"extra.{name} must be a list of numbers or null"
    for name in ("prompt_seconds", "host_prompt_seconds"):
        if extra.get(name) is not None and (not _is_finite(extra[name]) or extra[name] < 0):
            return f"extra.{name} must be a finite number >= 0 or null"
    if "centroid" in extra and extra["centroid"] is not True:
        return "extra.centroid must be true when present"
    unknown = set(extra) - {"penalty", "fitness", "image_losses", "level_values", "prompt_seconds",
                            "host_prompt_seconds", "centroid"}
    if unknown:
        return f"extra has unknown keys {sorted(unknown)}"
    return None


# -- run state ----------------------------------------------------------------------

def write_run_state(run_dir: Path, status: str, **info: Any) -> None:
    write_json_atomic(Path(run_dir) / STATE_FILE, {"stop_reason": status, "time": time.time(), **info})


def read_run_state(run_dir: Path) -> dict[str, Any]:
    path = Path(run_dir) / STATE_FILE
    return read_json(path) if path.is_file() else {}


# -- small checks ---------------------------------------------------------------------

def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _is_id(value: Any) -> bool:
    return isinstance(value, str) and re.fullmatch(r"[0-9a-f]{%d}" % ID_LENGTH, value) is not None


def _number_list(values: Any, finite: bool) -> bool:
    if not isinstance(values, list) or len(values) > MAX_LIST:
        return False
    return all(_is_finite(v) or (not finite and v is None) for v in values)


def _float_array(values: list) -> np.ndarray:
    return np.array([math.nan if v is None else v for v in values], dtype=np.float64)
