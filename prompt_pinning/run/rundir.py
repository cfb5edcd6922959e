"""Run folder layout: ``<outdir>/prompt_pins/<run>/<generation>/<individual id>/``.

Run and generation numbers are zero-padded to 8 digits. A new run takes the
next free number; ``os.mkdir`` is atomic, so two runs started at the same time
never share a folder (the loser of a race simply takes the next number).
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Collection

import numpy as np

RUNS_FOLDER = "prompt_pins"
NUMBER_DIGITS = 8
ID_LENGTH = 16


def runs_root(outdir: Path | str) -> Path:
    return Path(outdir) / RUNS_FOLDER


def number_name(number: int) -> str:
    return f"{number:0{NUMBER_DIGITS}d}"


def existing_run_numbers(root: Path) -> list[int]:
    if not root.is_dir():
        return []
    return sorted(int(p.name) for p in root.iterdir() if p.is_dir() and p.name.isdigit())


def create_run_dir(outdir: Path | str, max_tries: int = 10_000) -> Path:
    """Create and return the next free numbered run folder."""
    root = runs_root(outdir)
    root.mkdir(parents=True, exist_ok=True)
    numbers = existing_run_numbers(root)
    number = numbers[-1] + 1 if numbers else 0
    for _ in range(max_tries):
        path = root / number_name(number)
        try:
            os.mkdir(path)
            return path
        except FileExistsError:
            number += 1
    raise RuntimeError(f"could not create a run folder under {root} after {max_tries} tries")


def public_run_dir(run_dir: Path | str) -> str:
    """A run folder as the files a WebUI serves name it: relative to the outputs folder
    (``txt2img-images/prompt_pins/00000003``), never the server's absolute path."""
    path = Path(run_dir)
    return path.relative_to(path.parent.parent.parent).as_posix() if path.is_absolute() else path.as_posix()


def generation_dir(run_dir: Path, generation: int) -> Path:
    return Path(run_dir) / number_name(generation)


def individual_id(offsets: np.ndarray) -> str:
    """A stable id from the offsets: the same weights always give the same id."""
    data = np.ascontiguousarray(np.asarray(offsets, dtype="<f8")).tobytes()
    return hashlib.sha256(data).hexdigest()[:ID_LENGTH]


def create_individual_dir(run_dir: Path, generation: int, ident: str, logged: Collection[str] = frozenset()) -> Path:
    """Create the individual's folder; a repeat of the same id gets a suffix. A folder that no
    logged evaluation names (``logged``: relative paths) was left by a crash before its line: reused."""
    parent = generation_dir(run_dir, generation)
    parent.mkdir(parents=True, exist_ok=True)
    name, suffix = ident, 1
    while True:
        path = parent / name
        try:
            os.mkdir(path)
            return path
        except FileExistsError:
            if path.is_dir() and not path.is_symlink() and path.relative_to(run_dir).as_posix() not in logged:
                return path
            suffix += 1
            name = f"{ident}-{suffix}"
