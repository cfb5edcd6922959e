"""``target_mask.png``: the run's target mask shown over its targets.

Drawn once per report writer, as soon as the run folder holds ``mask.npz`` and
the targets (``targets.npz``, or ``baseline.npz`` when the unmodified prompt's
batch is the target): the mask alone, then each target (at most
``MAX_TILES``) with the ignored pixels dimmed and tinted.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Optional

import numpy as np
import torch
from PIL import Image

from ..run.files import FileFormatError, read_npz
from ..score.masks import overlay
from ..run.mask import MASK_FILE

log = logging.getLogger(__name__)

MASK_VIEW = "target_mask.png"
MAX_TILES = 8
GAP = 4
FRAME, FRAME_GREY = 1, 150


def write_mask_view(run_dir: Path) -> Optional[str]:
    """Write the view if the run has a mask and its targets are on disk; its file name, or None."""
    run_dir = Path(run_dir)
    if not (run_dir / MASK_FILE).is_file():
        return None
    source = next((run_dir / name for name in ("targets.npz", "baseline.npz") if (run_dir / name).is_file()), None)
    if source is None:
        return None
    try:
        mask = read_npz(run_dir / MASK_FILE, {"mask": ("f", lambda s: len(s) == 2)})["mask"]
        images = read_npz(source, {"images": ("f", lambda s: len(s) == 4 and s[1] == 3 and s[2:] == mask.shape)})["images"]
    except FileFormatError as error:
        log.warning("target mask view not drawn: %s", error)
        return None
    shown = overlay(torch.from_numpy(images[:MAX_TILES]), torch.from_numpy(mask)).clamp(0, 1).numpy()
    tiles = [np.repeat(mask[None], 3, axis=0)] + list(shown)
    h, w = mask.shape
    # each tile framed in grey (FRAME px), so the mask's white reads as a tile on a white page
    step = w + 2 * FRAME + GAP
    canvas = np.full((h + 2 * FRAME, len(tiles) * step - GAP, 3), 255, dtype=np.uint8)
    for k, tile in enumerate(tiles):
        left = k * step
        canvas[:, left:left + w + 2 * FRAME] = FRAME_GREY
        canvas[FRAME:FRAME + h, left + FRAME:left + FRAME + w] = np.round(np.moveaxis(tile, 0, -1) * 255).astype(np.uint8)
    Image.fromarray(canvas).save(run_dir / MASK_VIEW)
    return MASK_VIEW
