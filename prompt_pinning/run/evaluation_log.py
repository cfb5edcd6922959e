"""The evaluation log ``evaluations.jsonl``: one JSON line per finished evaluation.

Lines are appended and fsynced at once, so a crash loses at most the individual
in flight. The log is the run's journal (see ``run_state``): evaluation lines,
validation lines (``"validation": true``: an individual's losses on the
validation seeds), generation ends (``"closed": true``) and the result on the
user's seeds (``"final": true``), the fade guard's reference (statistics and subject) of a seed
block (``"reference": true``), the optimizer's checkpoint and the render fingerprint
(``"fingerprint": true``, written when it first appears or changes; every line from a render
names it by ``"fingerprint": <hash>``; logs written before have neither). On a resume every
line is checked as user input.
"""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np
import torch

from .files import FileFormatError, append_json_line, strict_loads
from .records import IndividualRecord
from .checks import MAX_LIST, ResumeError, float_array, is_finite, is_id, is_int, number_list
from .rundir import ID_LENGTH, individual_id
from ..score.subject import json_problem as subject_json_problem

EVALUATIONS_FILE = "evaluations.jsonl"


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
        pair_losses=float_array(entry["pair_losses"]), size=float(entry["size"]),
        render_seconds=float(entry["render_seconds"]), loss_seconds=float(entry["loss_seconds"]),
        folder=Path(run_dir) / entry["folder"] if run_dir is not None and entry["folder"] else None,
        extra=dict(entry["extra"]))


def drop_torn_tail(run_dir: Path) -> None:
    """Cut a last line left half-written by a crash (of any length), so new lines start on a
    line of their own."""
    path = Path(run_dir) / EVALUATIONS_FILE
    if path.is_symlink() or not path.is_file():
        return
    with open(path, "rb+") as f:
        end = f.seek(0, os.SEEK_END)
        if end == 0:
            return
        f.seek(end - 1)
        if f.read(1) == b"\n":
            return
        keep, position = 0, end
        while position > 0:  # back from the end, a chunk at a time, to the last newline
            start = max(0, position - _CHUNK)
            f.seek(start)
            cut = f.read(position - start).rfind(b"\n")
            if cut >= 0:
                keep = start + cut + 1
                break
            position = start
        f.truncate(keep)
        f.flush()
        os.fsync(f.fileno())


_CHUNK = 1 << 20


EntryCheck = Callable[[dict[str, Any]], Optional[str]]


MAX_LINE_BYTES = 64 * 2**20  # one evaluation: 8 MiB at batch 512 with 64 targets


def read_evaluations(run_dir: Path, check: Optional[EntryCheck] = None,
                     compact: bool = False) -> list[dict[str, Any]]:
    """Every complete line of the log, checked; a torn last line (a crash mid-write) is skipped.

    ``check(entry)`` may add the run's own checks; it returns a problem or None.
    The log is read line by line (no limit on its length, MAX_LINE_BYTES per line).
    With ``compact`` (a resume) each entry's ``pair_losses`` is a float64 array (NaN
    for null), a quarter of the memory of the list of floats it is otherwise.
    """
    path = Path(run_dir) / EVALUATIONS_FILE
    if not path.exists() and not path.is_symlink():
        return []
    entries, seen = [], set()
    for number, line in _lines(path):
        try:
            entry = read_json_line(line)
            special = next((k for k in _SPECIAL if isinstance(entry, dict) and entry.get(k) is True), None)
            if special is not None:
                problem = _SPECIAL[special](entry)
            else:
                problem = _entry_problem(entry) or (check(entry) if check else None)
        except ValueError as error:
            problem = f"not valid JSON: {error}"
        if problem:
            raise ResumeError(f"{path}, line {number}: {problem}")
        if special == "validation":
            key = ("validation", entry["generation"], entry["id"])
        elif special == "reference":
            key = ("reference", "block", entry["block"])
        elif special in ("checkpoint", "fingerprint"):
            key = (special, len(entries))  # a resume may write a generation's again after a crash
        elif special is not None:
            key = (special, entry.get("generation"))
        else:
            key = (entry["generation"], entry["index"])
            if compact:
                entry["pair_losses"] = float_array(entry["pair_losses"])
        if key in seen:
            raise ResumeError(f"{path}, line {number}: {key[-2]} {key[-1]} is logged twice")
        seen.add(key)
        entries.append(entry)
    return entries


def is_evaluation(entry: dict[str, Any]) -> bool:
    """An individual's evaluation line (not a validation, generation end or result line)."""
    return not any(entry.get(kind) is True for kind in _SPECIAL)


def read_individuals(run_dir: Path) -> list[dict[str, Any]]:
    """The evaluation lines of a run folder's log, checked, in order."""
    return [entry for entry in read_evaluations(run_dir) if is_evaluation(entry)]


def _lines(path: Path):
    """(number, text) of each complete line; the part after the last newline is torn or empty."""
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_BINARY", 0)
    try:
        if path.is_symlink() or not path.is_file():
            raise FileFormatError(path, "is a symbolic link or not a file; a run folder holds only its own files")
        handle = os.fdopen(os.open(path, flags), "rb")
    except OSError as error:
        raise ResumeError(f"{path}: cannot be read: {error.strerror or error}") from None
    except FileFormatError as error:
        raise ResumeError(str(error)) from None
    with handle:
        number = 0
        while True:
            raw = handle.readline(MAX_LINE_BYTES + 1)
            number += 1
            if not raw.endswith(b"\n"):
                if len(raw) > MAX_LINE_BYTES:
                    raise ResumeError(f"{path}, line {number}: longer than {MAX_LINE_BYTES} bytes")
                return  # end of the file, or a torn last line
            try:
                yield number, raw[:-1].decode("utf-8")
            except UnicodeDecodeError as error:
                raise ResumeError(f"{path}, line {number}: not UTF-8 text: {error}") from None


def read_json_line(line: str) -> Any:
    return strict_loads(line)


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
    if not is_int(e["generation"]) or not 0 <= e["generation"] < 10**8:
        return f"generation must be a whole number >= 0, got {e['generation']!r}"
    if not is_int(e["index"]) or not 0 <= e["index"] < MAX_LIST:
        return f"index must be a whole number >= 0, got {e['index']!r}"
    if not number_list(e["offsets"], finite=True) or not e["offsets"]:
        return "offsets must be a list of finite numbers"
    if not is_id(e["id"]) or e["id"] != individual_id(np.array(e["offsets"], dtype=np.float64)):
        return f"id {e['id']!r} does not belong to the offsets"
    folder = e["folder"]
    if folder is not None:
        match = _FOLDER.fullmatch(folder) if isinstance(folder, str) else None
        if not match or int(match.group(1)) != e["generation"] or match.group(2) != e["id"]:
            return f"folder must be <generation>/<id>, got {folder!r}"
    if not isinstance(e["positive"], str) or not isinstance(e["negative"], str):
        return "positive and negative must be strings"
    if not isinstance(e["seeds"], list) or not e["seeds"] or len(e["seeds"]) > MAX_LIST \
            or not all(is_int(s) for s in e["seeds"]):
        return "seeds must be a list of whole numbers"
    if not is_finite(e["loss"]):
        return f"loss must be a finite number, got {e['loss']!r}"
    if not number_list(e["pair_losses"], finite=False):
        return "pair_losses must be a list of numbers (null for a non-finite value)"
    for name in ("size", "render_seconds", "loss_seconds"):
        if not is_finite(e[name]) or e[name] < 0:
            return f"{name} must be a finite number >= 0, got {e[name]!r}"
    return _named_fingerprint_problem(e) or _extra_problem(e["extra"])


def _named_fingerprint_problem(e: dict[str, Any]) -> Optional[str]:
    if "fingerprint" in e and not (isinstance(e["fingerprint"], str) and _HASH.fullmatch(e["fingerprint"])):
        return f"fingerprint must name a fingerprint line by its 16 hexadecimal digits, got {e['fingerprint']!r}"
    return None


_HASH = re.compile(r"[0-9a-f]{16}")


def _fingerprint_problem(e: dict[str, Any]) -> Optional[str]:
    """What is wrong with a fingerprint line: {fingerprint, hash, parts}."""
    from .fingerprint import fingerprint_hash

    unknown = set(e) - {"fingerprint", "hash", "parts"}
    if unknown:
        return f"fingerprint line has unknown keys {sorted(unknown)}"
    if not isinstance(e.get("parts"), dict) or not isinstance(e.get("parts").get("renderer"), str):
        return "parts must be an object naming its renderer"
    if e.get("hash") != fingerprint_hash(e["parts"]):
        return f"hash {e.get('hash')!r} is not the hash of its parts"
    return None


def _validation_problem(e: dict[str, Any]) -> Optional[str]:
    """What is wrong with a validation line: {validation, generation, id, of, loss, losses}."""
    unknown = set(e) - {"validation", "generation", "id", "of", "loss", "losses", "fingerprint"}
    if unknown:
        return f"validation line has unknown keys {sorted(unknown)}"
    if _named_fingerprint_problem(e):
        return _named_fingerprint_problem(e)
    if not is_int(e.get("generation")) or not 0 <= e["generation"] < 10**8:
        return f"generation must be a whole number >= 0, got {e.get('generation')!r}"
    if not is_id(e.get("id")):
        return f"id must be an individual id, got {e.get('id')!r}"
    of = e.get("of")
    if not isinstance(of, list) or len(of) != 2 or not all(is_int(v) and 0 <= v < 10**8 for v in of):
        return "of must be [generation, index]"
    if not is_finite(e.get("loss")):
        return f"loss must be a finite number, got {e.get('loss')!r}"
    losses = e.get("losses")
    if not number_list(losses, finite=True) or not losses or len(losses) > MAX_LIST:
        return "losses must be a non-empty list of finite numbers"
    return None


_VECTORS = ("centroid", "diag_std", "eigenvalues")


def _closed_problem(e: dict[str, Any]) -> Optional[str]:
    """What is wrong with a generation's end: {closed, generation, sigma, axis_ratio, centroid, diag_std, eigenvalues}."""
    unknown = set(e) - {"closed", "generation", "sigma", "axis_ratio", *_VECTORS}
    if unknown:
        return f"generation end has unknown keys {sorted(unknown)}"
    if not is_int(e.get("generation")) or not 1 <= e["generation"] < 10**8:
        return f"generation must be a whole number >= 1, got {e.get('generation')!r}"
    for name in ("sigma", "axis_ratio"):
        if not is_finite(e.get(name)):
            return f"{name} must be a finite number, got {e.get(name)!r}"
    sizes = set()
    for name in _VECTORS:
        if not number_list(e.get(name), finite=True) or not e[name] or len(e[name]) > MAX_LIST:
            return f"{name} must be a non-empty list of finite numbers"
        sizes.add(len(e[name]))
    return None if len(sizes) == 1 else "centroid, diag_std and eigenvalues must have one length"


def _final_problem(e: dict[str, Any]) -> Optional[str]:
    """What is wrong with the result's line: {final, generation, id, of, seeds, loss}."""
    unknown = set(e) - {"final", "generation", "id", "of", "seeds", "loss", "fingerprint"}
    if unknown:
        return f"result line has unknown keys {sorted(unknown)}"
    if _named_fingerprint_problem(e):
        return _named_fingerprint_problem(e)
    if e.get("generation") is not None:
        return "generation must be null on the result line"
    if not is_id(e.get("id")):
        return f"id must be an individual id, got {e.get('id')!r}"
    of = e.get("of")
    if not isinstance(of, list) or len(of) != 2 or not all(is_int(v) and 0 <= v < 10**8 for v in of):
        return "of must be [generation, index]"
    if not isinstance(e.get("seeds"), list) or not e["seeds"] or len(e["seeds"]) > MAX_LIST \
            or not all(is_int(s) for s in e["seeds"]):
        return "seeds must be a list of whole numbers"
    if not is_finite(e.get("loss")):
        return f"loss must be a finite number, got {e.get('loss')!r}"
    return None


REFERENCE_SOURCES = ("baseline", "validation", "reference")


def _reference_problem(e: dict[str, Any]) -> Optional[str]:
    """What is wrong with a reference line: {reference, generation, block, source, stats}."""
    unknown = set(e) - {"reference", "generation", "block", "source", "stats", "subject", "loss", "fingerprint"}
    if unknown:
        return f"reference line has unknown keys {sorted(unknown)}"
    if _named_fingerprint_problem(e):
        return _named_fingerprint_problem(e)
    for name in ("generation", "block"):
        if not is_int(e.get(name)) or not 0 <= e[name] < 10**8:
            return f"{name} must be a whole number >= 0, got {e.get(name)!r}"
    if e.get("source") not in REFERENCE_SOURCES:
        return f"source must be one of {', '.join(REFERENCE_SOURCES)}, got {e.get('source')!r}"
    stats = e.get("stats")
    if not number_list(stats, finite=True) or len(stats) != 2 or min(stats) < 0:
        return "stats must be two finite numbers >= 0 (contrast, colourfulness)"
    if "loss" in e and (e["source"] != "reference" or not number_list([e["loss"]], finite=True)):
        return f"loss must be a finite number on a reference render's line, got {e.get('loss')!r}"
    if "subject" in e:
        return subject_json_problem(e["subject"])
    return None


def _checkpoint_problem(e: dict[str, Any]) -> Optional[str]:
    """What is wrong with a checkpoint line: {checkpoint, generation, arrays, sha256, optimizer}."""
    unknown = set(e) - {"checkpoint", "generation", "arrays", "sha256", "optimizer"}
    if unknown:
        return f"checkpoint line has unknown keys {sorted(unknown)}"
    if not is_int(e.get("generation")) or not 0 <= e["generation"] < 10**8:
        return f"generation must be a whole number >= 0, got {e.get('generation')!r}"
    if e.get("arrays") != f"checkpoint-{e['generation']:08d}.npz":
        return "arrays must name the generation's checkpoint-<generation>.npz"
    if not isinstance(e.get("sha256"), str) or not re.fullmatch(r"[0-9a-f]{64}", e["sha256"]):
        return "sha256 must be 64 hexadecimal digits"
    if not isinstance(e.get("optimizer"), dict):
        return "optimizer must be an object"
    return None


_SPECIAL = {"validation": _validation_problem, "closed": _closed_problem, "final": _final_problem,
            "reference": _reference_problem, "checkpoint": _checkpoint_problem,
            "fingerprint": _fingerprint_problem}


def _extra_problem(extra: Any) -> Optional[str]:
    if not isinstance(extra, dict):
        return "extra must be an object"
    if "penalty" in extra and (not is_finite(extra["penalty"]) or extra["penalty"] < 0):
        return "extra.penalty must be a finite number >= 0"
    if extra.get("fitness") is not None and not number_list(extra["fitness"], finite=True):
        return "extra.fitness must be a list of finite numbers or null"
    for name in ("image_losses", "level_values"):
        if extra.get(name) is not None and not number_list(extra[name], finite=False):
            return f"extra.{name} must be a list of numbers or null"
    for name in ("prompt_seconds", "host_prompt_seconds"):
        if extra.get(name) is not None and (not is_finite(extra[name]) or extra[name] < 0):
            return f"extra.{name} must be a finite number >= 0 or null"
    if "fade_penalty" in extra and (not is_finite(extra["fade_penalty"]) or extra["fade_penalty"] <= 0):
        return "extra.fade_penalty must be a finite number > 0 when present"
    if "centroid" in extra and extra["centroid"] is not True:
        return "extra.centroid must be true when present"
    from ..score.tags import TAG_EXTRA_KEYS, tag_extra_problem

    problem = tag_extra_problem(extra)
    if problem:
        return problem
    unknown = set(extra) - set(TAG_EXTRA_KEYS) - {"penalty", "fitness", "image_losses", "level_values",
                                                  "prompt_seconds", "host_prompt_seconds", "centroid",
                                                  "fade_penalty"}
    if unknown:
        return f"extra has unknown keys {sorted(unknown)}"
    return None
