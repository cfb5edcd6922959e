"""The target mask of a run: built at its start, kept in ``mask.npz``, checked on resume.

``mask.npz`` holds one float32 (height, width) array in [0, 1], read without
pickle. ``run_config.json`` records the mask's SHA-256 under "resolved" →
"mask"; a resume refuses a mask file that is missing, extra, damaged or not the
one the run started with.
"""
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch

from .files import FileFormatError, read_npz, write_npz_atomic
from .checks import ResumeError

MASK_FILE = "mask.npz"


def mask_digest(mask: torch.Tensor) -> str:
    return hashlib.sha256(np.ascontiguousarray(mask.detach().cpu().numpy(), dtype=np.float32).tobytes()).hexdigest()


def mask_record(mask: Optional[torch.Tensor]) -> dict[str, Any]:
    """What ``run_config.json`` says about the mask (nothing without one)."""
    if mask is None:
        return {}
    return {"mask": {"file": MASK_FILE, "sha256": mask_digest(mask), "mean": float(mask.float().mean())}}


def new_run_mask(config) -> Optional[torch.Tensor]:
    from ..score.masks import build_mask

    return build_mask(config)


def save_run_mask(store, mask: Optional[torch.Tensor]) -> None:
    """Write ``mask.npz`` into a folder store (a memory store keeps nothing)."""
    if mask is None or getattr(store, "run_dir", None) is None:
        return
    write_npz_atomic(Path(store.run_dir) / MASK_FILE, {"mask": mask.detach().cpu().float().numpy()})


def apply_mask(loss, mask: Optional[torch.Tensor]) -> None:
    if mask is not None:
        loss.set_mask(mask)


def load_run_mask(run_dir: Path, resolved: dict[str, Any], settings) -> Optional[torch.Tensor]:
    """The mask a resumed run continues with, checked against its record; None if it had none."""
    path = Path(run_dir) / MASK_FILE
    info = resolved.get("mask")
    present = path.exists() or path.is_symlink()
    if info is None:
        if present:
            raise ResumeError(f"{path}: the run was started without a target mask (run_config.json records "
                              "none), so this file does not belong to it")
        return None
    if not isinstance(info, dict) or not isinstance(info.get("sha256"), str):
        raise ResumeError(f"{Path(run_dir) / 'run_config.json'}: \"resolved\" → \"mask\" must name the mask's sha256")
    if not present:
        raise ResumeError(f"{path}: missing, but the run was pinned with a target mask; without it the run "
                          "cannot be continued")
    shape = (settings.height, settings.width)
    try:
        arrays = read_npz(path, {"mask": ("f", lambda s: tuple(s) == shape)})
    except FileFormatError as error:
        raise ResumeError(str(error)) from None
    values = arrays["mask"]
    if values.dtype != np.float32 or not np.isfinite(values).all() or values.min() < 0 or values.max() > 1 \
            or values.sum() <= 0:
        raise ResumeError(f"{path}: the mask must be float32 values in [0, 1] with some weight")
    mask = torch.from_numpy(values)
    if mask_digest(mask) != info["sha256"]:
        raise ResumeError(f"{path}: not the mask the run started with (its SHA-256 differs from the one "
                          "in run_config.json)")
    return mask
