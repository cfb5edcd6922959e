"""Where the subject stands, and how much of it a batch keeps: same-seed, per-pixel measures.

A batch-wide statistic can be satisfied while the subject fades: a background
that turns a deeper colour pays for a subject that turns grey. The measures
here look at each seed's own picture, on the pixels where the unmodified
prompt's subject stands.

Working size. Images are area-averaged to at most ``WORK_SIDE`` pixels on their
long side first (the built-in model's 64x64 stay as they are), so that the
subject masks a run journals stay small whatever the generation size.

The reference image of a seed (the unmodified prompt's) gives

    background     the per-channel median of its border (``BORDER`` of the side,
                   at least one pixel);
    subject        its pixels farther than ``SUBJECT_DISTANCE`` (RGB distance)
                   from that colour, within the target mask where there is one;
    separation     the mean RGB distance of the subject's pixels from the
                   median colour of the image's other pixels (within the mask);
    colourfulness  the mean of max - min over the colour channels on the subject.

An image of the same seed is measured on the reference's subject pixels, with
its own background (the median of its pixels outside them), so that a subject
that fades into its background loses separation whatever the background does,
and a red subject that turns mauve loses colourfulness whatever the rest does.
An image whose reference shows no subject (fewer than ``MIN_SUBJECT`` of its
pixels) is left out; colourfulness is only compared where the reference
subject is coloured (at least ``MIN_COLOUR``).

Windows. ``window_stats`` splits an image into ``WINDOWS`` x ``WINDOWS`` cells
and gives each cell's luminance standard deviation and colourfulness, for a
guard that compares each place with the same place of the same seed.
"""
from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any, Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F

WORK_SIDE = 128
BORDER = 1 / 16
SUBJECT_DISTANCE = 0.12
MIN_SUBJECT = 0.005
MIN_COLOUR = 0.15
WINDOWS = 4
MIN_WINDOW = 0.02  # windows flatter than this in the reference have nothing to lose
LUMA = (0.2126, 0.7152, 0.0722)


def work_size(height: int, width: int) -> tuple[int, int]:
    """The working size of (height, width) images: at most WORK_SIDE on the long side."""
    scale = WORK_SIDE / max(height, width)
    if scale >= 1:
        return int(height), int(width)
    return max(1, round(height * scale)), max(1, round(width * scale))


def work_images(images: torch.Tensor) -> torch.Tensor:
    """(B, 3, h, w) float32 on the CPU, clamped to [0, 1], at the working size."""
    images = images.detach().float().clamp(0.0, 1.0).cpu()
    size = work_size(*images.shape[2:])
    if size != tuple(images.shape[2:]):
        images = F.interpolate(images, size=size, mode="area")
    return images


def work_weight(mask: Optional[torch.Tensor], size: Sequence[int]) -> Optional[torch.Tensor]:
    """The target mask (H, W) in [0, 1] at the working size, or None."""
    if mask is None:
        return None
    mask = mask.detach().float().cpu()
    if tuple(mask.shape) != tuple(size):
        mask = F.interpolate(mask[None, None], size=tuple(size), mode="area")[0, 0]
    return mask.clamp(0.0, 1.0)


def border(height: int, width: int) -> torch.Tensor:
    """(h, w) bool: the frame of ``BORDER`` of the short side (at least one pixel)."""
    band = max(1, round(min(height, width) * BORDER))
    frame = torch.ones(height, width, dtype=torch.bool)
    frame[band:height - band, band:width - band] = False
    return frame


def _median(pixels: torch.Tensor) -> torch.Tensor:
    """(3,) per-channel median of (3, n) pixels (zeros when there are none)."""
    return pixels.median(dim=1).values if pixels.shape[1] else torch.zeros(3)


def _colourfulness(image: torch.Tensor) -> torch.Tensor:
    return image.amax(dim=0) - image.amin(dim=0)


def _weighted_mean(values: torch.Tensor, weight: torch.Tensor) -> float:
    total = float(weight.sum())
    return float((values * weight).sum()) / total if total > 0 else 0.0


def separation(image: torch.Tensor, subject: torch.Tensor, weight: torch.Tensor,
               region: Optional[torch.Tensor] = None) -> float:
    """Mean RGB distance (weighted) of the (3, h, w) image's ``subject`` pixels from the median of
    its other pixels within ``region`` (the target mask's pixels; None: all)."""
    others = ~subject if region is None else ~subject & region
    rest = image[:, others]
    if rest.shape[1] == 0:
        rest = image[:, border(*subject.shape)]
    distance = (image - _median(rest)[:, None, None]).norm(dim=0)
    return _weighted_mean(distance, weight)


@dataclass(frozen=True)
class SubjectProfile:
    """The unmodified prompt's subject on each seed of a block (see the module docstring)."""

    masks: np.ndarray  # (B, h, w) bool: the subject's pixels at the working size
    separation: np.ndarray  # (B,)
    colourfulness: np.ndarray  # (B,)
    window_contrast: np.ndarray  # (B, WINDOWS * WINDOWS)
    window_colour: np.ndarray  # (B, WINDOWS * WINDOWS)

    @property
    def has_subject(self) -> np.ndarray:
        """(B,) bool: the seeds whose reference shows a subject."""
        size = self.masks.shape[1] * self.masks.shape[2]
        return self.masks.reshape(len(self.masks), -1).sum(axis=1) >= max(1.0, MIN_SUBJECT * size)

    def to_json(self) -> dict[str, Any]:
        return {"size": list(self.masks.shape[1:]),
                "masks": [base64.b64encode(np.packbits(m.reshape(-1)).tobytes()).decode("ascii") for m in self.masks],
                "separation": [float(x) for x in self.separation],
                "colourfulness": [float(x) for x in self.colourfulness],
                "window_contrast": [[float(x) for x in row] for row in self.window_contrast],
                "window_colour": [[float(x) for x in row] for row in self.window_colour]}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "SubjectProfile":
        """Read back ``to_json``'s output; raises ValueError on anything else."""
        problem = json_problem(data)
        if problem:
            raise ValueError(problem)
        height, width = data["size"]
        masks = np.stack([np.unpackbits(np.frombuffer(base64.b64decode(m), dtype=np.uint8))[:height * width]
                          .reshape(height, width).astype(bool) for m in data["masks"]])
        return cls(masks, np.array(data["separation"], dtype=np.float64),
                   np.array(data["colourfulness"], dtype=np.float64),
                   np.array(data["window_contrast"], dtype=np.float64),
                   np.array(data["window_colour"], dtype=np.float64))


def _numbers(values: Any, length: int) -> bool:
    return isinstance(values, list) and len(values) == length and all(
        isinstance(v, (int, float)) and not isinstance(v, bool) and np.isfinite(v) and v >= 0 for v in values)


def json_problem(data: Any) -> Optional[str]:
    """What is wrong with a journaled subject profile (None when it reads back)."""
    if not isinstance(data, dict) or set(data) != {"size", "masks", "separation", "colourfulness",
                                                   "window_contrast", "window_colour"}:
        return "subject must be an object with size, masks, separation, colourfulness and window statistics"
    size = data["size"]
    if not isinstance(size, list) or len(size) != 2 or not all(
            isinstance(s, int) and not isinstance(s, bool) and 1 <= s <= WORK_SIDE for s in size):
        return f"subject.size must be two whole numbers from 1 to {WORK_SIDE}"
    masks, n = data["masks"], (size[0] * size[1] + 7) // 8
    if not isinstance(masks, list) or not 1 <= len(masks) <= 1024:
        return "subject.masks must be a list of 1 to 1024 masks"
    for mask in masks:
        try:
            if not isinstance(mask, str) or len(base64.b64decode(mask, validate=True)) != n:
                return f"subject.masks must be base64 strings of {n} bytes"
        except ValueError:
            return "subject.masks must be base64 strings"
    b = len(masks)
    if not _numbers(data["separation"], b) or not _numbers(data["colourfulness"], b):
        return f"subject.separation and subject.colourfulness must be {b} finite numbers >= 0"
    for name in ("window_contrast", "window_colour"):
        rows = data[name]
        if not isinstance(rows, list) or len(rows) != b or not all(_numbers(r, WINDOWS * WINDOWS) for r in rows):
            return f"subject.{name} must be {b} lists of {WINDOWS * WINDOWS} finite numbers >= 0"
    return None


def window_stats(images: torch.Tensor, weight: Optional[torch.Tensor] = None) -> tuple[np.ndarray, np.ndarray]:
    """(B, WINDOWS^2) luminance std and colourfulness per cell of working-size images (mask-weighted)."""
    b, _, h, w = images.shape
    luma = (images * torch.tensor(LUMA).view(1, 3, 1, 1)).sum(dim=1)
    colour = images.amax(dim=1) - images.amin(dim=1)
    weight = torch.ones(h, w) if weight is None else weight
    rows = np.linspace(0, h, WINDOWS + 1).round().astype(int)
    cols = np.linspace(0, w, WINDOWS + 1).round().astype(int)
    contrast, colourful = np.zeros((b, WINDOWS * WINDOWS)), np.zeros((b, WINDOWS * WINDOWS))
    for r in range(WINDOWS):
        for c in range(WINDOWS):
            cell = (slice(rows[r], max(rows[r + 1], rows[r] + 1)), slice(cols[c], max(cols[c + 1], cols[c] + 1)))
            wgt = weight[cell]
            total = float(wgt.sum())
            if total <= 0:
                continue
            lum = luma[(slice(None), *cell)]
            mean = (lum * wgt).flatten(1).sum(dim=1) / total
            var = (((lum - mean[:, None, None]) ** 2) * wgt).flatten(1).sum(dim=1) / total
            contrast[:, r * WINDOWS + c] = var.clamp_min(0).sqrt().numpy()
            colourful[:, r * WINDOWS + c] = ((colour[(slice(None), *cell)] * wgt).flatten(1).sum(dim=1) / total).numpy()
    return contrast, colourful


def profile(images: torch.Tensor, mask: Optional[torch.Tensor] = None) -> SubjectProfile:
    """The subject of each (B, 3, H, W) reference image (the unmodified prompt's), within ``mask``."""
    images = work_images(images)
    b, _, h, w = images.shape
    weight = work_weight(mask, (h, w))
    frame = border(h, w)
    masks, seps, cols = np.zeros((b, h, w), dtype=bool), np.zeros(b), np.zeros(b)
    for i, image in enumerate(images):
        background = _median(image[:, frame])
        subject = (image - background[:, None, None]).norm(dim=0) > SUBJECT_DISTANCE
        if weight is not None:
            subject &= weight > 0
        masks[i] = subject.numpy()
        on = subject.float() * (1.0 if weight is None else weight)
        seps[i] = separation(image, subject, on, None if weight is None else weight > 0)
        cols[i] = _weighted_mean(_colourfulness(image), on)
    contrast, colourful = window_stats(images, weight)
    return SubjectProfile(masks, seps, cols, contrast, colourful)


def measure(images: torch.Tensor, reference: SubjectProfile,
            mask: Optional[torch.Tensor] = None) -> tuple[np.ndarray, np.ndarray]:
    """(B,) separation and colourfulness of each image on its seed's reference subject pixels."""
    images = work_images(images)
    if tuple(images.shape[2:]) != tuple(reference.masks.shape[1:]) or images.shape[0] != len(reference.masks):
        raise ValueError(f"images: {images.shape[0]} at working size {tuple(images.shape[2:])} do not match the "
                         f"reference's {len(reference.masks)} at {tuple(reference.masks.shape[1:])}")
    weight = work_weight(mask, images.shape[2:])
    seps, cols = np.zeros(len(images)), np.zeros(len(images))
    for i, image in enumerate(images):
        subject = torch.from_numpy(reference.masks[i])
        on = subject.float() * (1.0 if weight is None else weight)
        seps[i] = separation(image, subject, on, None if weight is None else weight > 0)
        cols[i] = _weighted_mean(_colourfulness(image), on)
    return seps, cols


def kept(images: torch.Tensor, reference: SubjectProfile,
         mask: Optional[torch.Tensor] = None) -> tuple[np.ndarray, np.ndarray]:
    """(B,) shares of the reference's separation and colourfulness each image keeps; NaN where the
    reference has no subject (separation) or no coloured subject (colourfulness)."""
    seps, cols = measure(images, reference, mask)
    present = reference.has_subject & (reference.separation > 0)
    coloured = present & (reference.colourfulness >= MIN_COLOUR)
    sep_kept = np.where(present, seps / np.where(present, reference.separation, 1.0), np.nan)
    col_kept = np.where(coloured, cols / np.where(coloured, reference.colourfulness, 1.0), np.nan)
    return sep_kept, col_kept


def shortfall(shares: np.ndarray, tolerance: float) -> float:
    """Mean over the images that count (not NaN) of max(0, 1 - share - tolerance); 0 with none."""
    shares = shares[~np.isnan(shares)]
    return float(np.maximum(0.0, 1.0 - shares - tolerance).mean()) if shares.size else 0.0


def subject_penalty(images: torch.Tensor, reference: SubjectProfile, weight: float, tolerance: float,
                    mask: Optional[torch.Tensor] = None) -> float:
    """``weight`` times the mean per-image shortfall of separation plus that of colourfulness."""
    sep_kept, col_kept = kept(images, reference, mask)
    return float(weight * (shortfall(sep_kept, tolerance) + shortfall(col_kept, tolerance)))


def window_penalty(images: torch.Tensor, reference: SubjectProfile, weight: float, tolerance: float,
                   mask: Optional[torch.Tensor] = None) -> float:
    """``weight`` times the mean shortfall, over the windows the reference fills, of each window's
    contrast and colourfulness against the same window of the same seed."""
    images = work_images(images)
    contrast, colour = window_stats(images, work_weight(mask, images.shape[2:]))
    total = 0.0
    for now, before in ((contrast, reference.window_contrast), (colour, reference.window_colour)):
        counted = before >= MIN_WINDOW
        shares = np.where(counted, now / np.where(counted, before, 1.0), np.nan)
        total += shortfall(shares.reshape(-1), tolerance)
    return float(weight * total)


def content_kept(images: torch.Tensor, reference: SubjectProfile, tolerance: float,
                 mask: Optional[torch.Tensor] = None) -> float:
    """The share of its subject the batch still carries, in (0, 1]: the mean over images of
    min(1, separation kept + tolerance), times the same of colourfulness kept."""
    sep_kept, col_kept = kept(images, reference, mask)
    share = 1.0
    for shares in (sep_kept, col_kept):
        shares = shares[~np.isnan(shares)]
        if shares.size:
            share *= float(np.minimum(1.0, shares + tolerance).mean())
    return max(share, 0.05)
