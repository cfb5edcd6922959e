"""LDR-FLIP in torch, batched for comparing many images with each other.

LDR-FLIP (Andersson et al., "FLIP: A Difference Evaluator for Alternating
Images", 2020) compares two sRGB images in [0, 1] pixel by pixel:

- colour: sRGB -> linear RGB -> YCxCz; each opponent channel is blurred by a
  contrast sensitivity filter (a Gaussian for Y and Cx, a sum of two Gaussians
  for Cz); back to linear RGB, clamped to [0, 1]; to CIE L*a*b* with the Hunt
  adjustment (a*, b* scaled by L*/100). The HyAB distance between the two
  images, raised to qc, is mapped to [0, 1] piecewise linearly.
- features: the luminance (Y + 16) / 116 is filtered with the first and second
  derivatives of a Gaussian (edges and points); the feature error is the larger
  of the edge and point magnitude differences, scaled by 1/sqrt(2), raised to qf.
- error = colour_error ** (1 - feature_error).

Everything up to the HyAB distance and the magnitudes depends on one image
only, so ``preprocess`` runs once per image and ``pair_means`` compares any
number of pairs of preprocessed images, in chunks bounded by a memory budget.
All filters are separable and use edge-replicate padding, as the reference
implementation does. Work happens on the images' device, in float32.
"""
from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass
from typing import Callable, Iterator, Optional

import numpy as np
import torch

from .flip_filters import csf_kernels, feature_kernels, filter_axis, separable

# Published LDR-FLIP constants.
QC = 0.7  # exponent of the HyAB colour distance
PC = 0.4  # break point of the colour error mapping, as a fraction of cmax
PT = 0.95  # error value at that break point
# Contrast sensitivity functions: (a1, b1, a2, b2) of a1*sqrt(pi/b1)*exp(-pi^2 x^2/b1) + (a2, b2) term.

D65 = np.array([0.950428545, 1.0, 1.088900371])
LINEAR_RGB_TO_XYZ = np.array([
    [10135552 / 24577794, 8788810 / 24577794, 4435075 / 24577794],
    [2613072 / 12288897, 8788810 / 12288897, 887015 / 12288897],
    [1425312 / 73733382, 8788810 / 73733382, 70074185 / 73733382],
])
XYZ_TO_LINEAR_RGB = np.array([  # the published rounded inverse of the matrix above
    [3.241003275, -1.537398934, -0.498615861],
    [-0.969224334, 1.875930071, 0.041554224],
    [0.055639423, -0.204011202, 1.057148933],
])
# Rows of XYZ/D65 -> (Y, Cx, Cz) before the -16 offset on Y (same rows give L*a*b* from f(XYZ/D65)).
_OPPONENT = np.array([[0.0, 116.0, 0.0], [500.0, -500.0, 0.0], [0.0, 200.0, -200.0]])

FEATURE_SCALE = 1.0 / math.sqrt(2.0)  # the feature difference is scaled by 1/sqrt(2)

# Temporaries per pixel (float32 values) used to size chunks.
_PAIR_FLOATS_PER_PIXEL = 24
_PREPROCESS_FLOATS_PER_PIXEL = 40
_CPU_BUDGET_BYTES = 256 * 2**20
_CUDA_BUDGET_CAP_BYTES = 4 * 2**30


def pixels_per_degree(distance_m: float = 0.7, width_px: float = 3840, width_m: float = 0.7) -> float:
    """Pixels per degree of visual angle for a display viewed at ``distance_m``."""
    return distance_m * (width_px / width_m) * math.pi / 180.0


DEFAULT_PPD = pixels_per_degree()  # 0.7 m from a 0.7 m wide 3840-pixel display: about 67.02


@dataclass
class FlipFeatures:
    """Per-image LDR-FLIP data: all that a pairwise comparison needs."""

    lab: torch.Tensor  # (N, 3, H, W) Hunt-adjusted L*a*b* of the filtered image
    features: torch.Tensor  # (N, 2, H, W) edge and point magnitudes, times FEATURE_SCALE

    def __len__(self) -> int:
        return self.lab.shape[0]

    @property
    def device(self) -> torch.device:
        return self.lab.device

    def to(self, device) -> "FlipFeatures":
        return FlipFeatures(self.lab.to(device), self.features.to(device))


def _cmax() -> float:
    """qc-th power of the HyAB distance between pure green and pure blue."""
    green, blue = _hunt_lab_np(np.array([0.0, 1.0, 0.0])), _hunt_lab_np(np.array([0.0, 0.0, 1.0]))
    d = green - blue
    return float((abs(d[0]) + math.hypot(d[1], d[2])) ** QC)


def _hunt_lab_np(linear_rgb: np.ndarray) -> np.ndarray:
    t = LINEAR_RGB_TO_XYZ @ linear_rgb / D65
    delta = 6.0 / 29.0
    f = np.where(t > delta**3, np.cbrt(t), t / (3 * delta**2) + 4.0 / 29.0)
    lab = _OPPONENT @ f + np.array([-16.0, 0.0, 0.0])
    return np.array([lab[0], lab[0] * lab[1] / 100.0, lab[0] * lab[2] / 100.0])


CMAX = _cmax()


def _apply_matrix(m: np.ndarray, x: torch.Tensor) -> torch.Tensor:
    return torch.einsum("ij,njhw->nihw", torch.as_tensor(m, dtype=x.dtype, device=x.device), x)


# ---------------------------------------------------------------- per image

def check_images(images: torch.Tensor, name: str = "images") -> torch.Tensor:
    """Validate a (N, 3, H, W) batch and return it as float32."""
    if not isinstance(images, torch.Tensor):
        raise TypeError(f"{name}: expected a torch.Tensor of shape (N, 3, H, W), got {type(images).__name__}")
    if images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"{name}: expected shape (N, 3, H, W) with 3 RGB channels, got {tuple(images.shape)}")
    if not images.is_floating_point():
        raise ValueError(f"{name}: expected float sRGB values in [0, 1], got dtype {images.dtype} (divide 8-bit values by 255)")
    return images.float()


def check_ppd(ppd) -> float:
    if isinstance(ppd, bool) or not isinstance(ppd, (int, float)) or not math.isfinite(ppd) or ppd <= 0:
        raise ValueError(f"ppd (pixels per degree): must be a finite number > 0, got {ppd!r}")
    return float(ppd)


def srgb_to_ycxcz(images: torch.Tensor) -> torch.Tensor:
    s = images.clamp(0.0, 1.0)
    linear = torch.where(s <= 0.04045, s / 12.92, ((s + 0.055) / 1.055) ** 2.4)
    m = _OPPONENT @ (LINEAR_RGB_TO_XYZ / D65[:, None])
    out = _apply_matrix(m, linear)
    out[:, 0] -= 16.0
    return out


def _ycxcz_to_hunt_lab(ycxcz: torch.Tensor) -> torch.Tensor:
    """Filtered YCxCz -> linear RGB clamped to [0, 1] -> Hunt-adjusted L*a*b*."""
    y = (ycxcz[:, 0] + 16.0) / 116.0
    xyz = torch.stack([y + ycxcz[:, 1] / 500.0, y, y - ycxcz[:, 2] / 200.0], dim=1)
    linear = _apply_matrix(XYZ_TO_LINEAR_RGB * D65[None, :], xyz).clamp_(0.0, 1.0)
    t = _apply_matrix(LINEAR_RGB_TO_XYZ / D65[:, None], linear)
    delta = 6.0 / 29.0
    f = torch.where(t > delta**3, t.clamp(min=delta**3) ** (1.0 / 3.0), t / (3 * delta**2) + 4.0 / 29.0)
    lab = _apply_matrix(_OPPONENT, f)
    lab[:, 0] -= 16.0
    lab[:, 1:] *= lab[:, :1] / 100.0
    return lab


def _preprocess_chunk(images: torch.Tensor, colour_k: torch.Tensor, feature_k: torch.Tensor) -> FlipFeatures:
    ycxcz = srgb_to_ycxcz(images)
    opponent = torch.cat([ycxcz, ycxcz[:, 2:3]], dim=1)  # Cz twice: two Gaussians
    filtered = separable(opponent, colour_k, colour_k)
    filtered = torch.cat([filtered[:, :2], filtered[:, 2:3] + filtered[:, 3:4]], dim=1)
    lab = _ycxcz_to_hunt_lab(filtered)

    grey = (ycxcz[:, :1] + 16.0) / 116.0
    gauss, first, second = feature_k
    rows = filter_axis(grey, feature_k, 3)  # along x: g, g', g'' (broadcast over one channel)
    # Along y: x-derivatives get the Gaussian, the x-Gaussian gets both y-derivatives.
    cols = filter_axis(torch.cat([rows[:, 1:3], rows[:, :1], rows[:, :1]], dim=1),
                        torch.stack([gauss, gauss, first, second]), 2)
    edges = torch.hypot(cols[:, 0], cols[:, 2])
    points = torch.hypot(cols[:, 1], cols[:, 3])
    return FlipFeatures(lab, torch.stack([edges, points], dim=1).mul_(FEATURE_SCALE))


@contextlib.contextmanager
def _full_float32(device: torch.device) -> Iterator[None]:
    """Turn TF32 off on CUDA (hosts often enable it; it costs FLIP about 1e-3)."""
    if device.type != "cuda":
        yield
        return
    matmul, cudnn = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = matmul, cudnn


def preprocess(images: torch.Tensor, ppd: Optional[float] = None, budget_bytes: Optional[int] = None,
               between_chunks: Optional[Callable[[], None]] = None) -> FlipFeatures:
    """Per-image LDR-FLIP work for a (N, 3, H, W) sRGB batch in [0, 1].

    ``between_chunks`` is called before every chunk after the first (it may raise to stop).
    """
    images = check_images(images)
    with _full_float32(images.device):
        return _preprocess(images, ppd, budget_bytes, between_chunks)


def _preprocess(images: torch.Tensor, ppd: Optional[float], budget_bytes: Optional[int],
                between_chunks: Optional[Callable[[], None]] = None) -> FlipFeatures:
    ppd = check_ppd(DEFAULT_PPD if ppd is None else ppd)
    n, _, h, w = images.shape
    colour_k = torch.as_tensor(csf_kernels(ppd), dtype=torch.float32, device=images.device)
    feature_k = torch.as_tensor(feature_kernels(ppd), dtype=torch.float32, device=images.device)
    step = preprocess_chunk_size(images.device, h, w, budget_bytes)
    parts = []
    for i in range(0, max(n, 1), step):
        if i and between_chunks is not None:
            between_chunks()
        parts.append(_preprocess_chunk(images[i:i + step], colour_k, feature_k))
    if len(parts) == 1:
        return parts[0]
    return FlipFeatures(torch.cat([p.lab for p in parts]), torch.cat([p.features for p in parts]))


def preprocess_chunk_size(device: torch.device, height: int, width: int, budget_bytes: Optional[int] = None) -> int:
    """Images of height x width that one preprocessing chunk handles within the memory budget."""
    per_image = height * width * 4 * _PREPROCESS_FLOATS_PER_PIXEL
    return max(1, memory_budget(device, budget_bytes) // per_image)


# ---------------------------------------------------------------- pairs

def _pair_maps(lab_a: torch.Tensor, lab_b: torch.Tensor, feat_a: torch.Tensor, feat_b: torch.Tensor) -> torch.Tensor:
    """Error maps (P, H, W) from broadcastable (P or 1, C, H, W) per-image data."""
    d = lab_a - lab_b
    power = d[:, 0].abs_().add_(torch.hypot(d[:, 1], d[:, 2])).pow_(QC)  # HyAB ** qc
    # The colour mapping is concave and piecewise linear: the smaller of its two lines.
    pc_cmax = PC * CMAX
    low = power * (PT / pc_cmax)
    colour = torch.minimum(low, power.sub_(pc_cmax).mul_((1.0 - PT) / (CMAX - pc_cmax)).add_(PT), out=low)
    # Features are stored divided by sqrt(2); the feature exponent qf = 0.5 is a square root.
    feature = (feat_a - feat_b).abs_().amax(dim=1).sqrt_()
    return colour.pow_(feature.neg_().add_(1.0))


def _gathered(a: FlipFeatures, b: FlipFeatures, ia: torch.Tensor, ib: torch.Tensor) -> torch.Tensor:
    return _pair_maps(a.lab.index_select(0, ia), b.lab.index_select(0, ib),
                      a.features.index_select(0, ia), b.features.index_select(0, ib))


def _sliced(a: FlipFeatures, b: FlipFeatures, i: int, j0: int, j1: int) -> torch.Tensor:
    return _pair_maps(a.lab[i:i + 1], b.lab[j0:j1], a.features[i:i + 1], b.features[j0:j1])


def error_maps(a: FlipFeatures, b: FlipFeatures, ia, ib) -> torch.Tensor:
    """Error maps (P, H, W) of the pairs (a[ia[k]] as reference, b[ib[k]] as test)."""
    ia, ib = _indices(ia, a.device), _indices(ib, a.device)
    return _gathered(a, b, ia, ib)


def pair_means(a: FlipFeatures, b: FlipFeatures, ia, ib, max_pairs_per_chunk: Optional[int] = None,
               budget_bytes: Optional[int] = None, gather: Optional[bool] = None,
               between_chunks: Optional[Callable[[], None]] = None,
               weight: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Mean LDR-FLIP (float64, on the CPU) of the pairs (a[ia[k]], b[ib[k]]).

    ``weight``: an optional (H, W) mask on the images' device; each pair's value
    is then ``sum(weight * error) / sum(weight)`` (``weighted_means``).

    Pairs run in chunks that fit the memory budget (and max_pairs_per_chunk);
    on a CUDA out-of-memory error the chunk is halved and retried. On CUDA
    (``gather``) each chunk gathers its images into one batch; on the CPU,
    where gathering costs as much as comparing, runs of pairs (i, j..j+n)
    compare one image with a slice of the other set without copies.
    ``between_chunks`` is called before every chunk after the first (it may raise to stop).
    """
    ia, ib = _indices(ia, a.device), _indices(ib, a.device)
    if ia.shape != ib.shape:
        raise ValueError(f"pair indices differ in length: {tuple(ia.shape)} vs {tuple(ib.shape)}")
    if a.lab.shape[1:] != b.lab.shape[1:]:
        raise ValueError(f"images differ in size: {tuple(a.lab.shape[2:])} vs {tuple(b.lab.shape[2:])}")
    h, w = a.lab.shape[2:]
    step = max(1, memory_budget(a.device, budget_bytes) // (h * w * 4 * _PAIR_FLOATS_PER_PIXEL))
    if max_pairs_per_chunk is not None:
        step = max(1, min(step, int(max_pairs_per_chunk)))
    if gather is None:
        gather = a.device.type == "cuda"
    out = []
    for start, length, i, j0 in _runs(ia.cpu().numpy(), ib.cpu().numpy(), gather):
        done = 0
        while done < length:
            n = min(step, length - done)
            if out and between_chunks is not None:
                between_chunks()
            try:
                if gather:
                    maps = _gathered(a, b, ia[start + done:start + done + n], ib[start + done:start + done + n])
                else:
                    maps = _sliced(a, b, i, j0 + done, j0 + done + n)
            except torch.cuda.OutOfMemoryError:
                if n == 1:
                    raise
                step = max(1, n // 2)
                continue
            out.append((maps.sum(dim=(1, 2), dtype=torch.float64).div_(h * w) if weight is None
                        else weighted_means(maps, weight)).cpu())
            done += n
    return torch.cat(out) if out else torch.zeros(0, dtype=torch.float64)


def weighted_means(maps: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """(P,) float64 means of (P, H, W) error maps weighted by a (H, W) mask with a positive sum."""
    return (maps * weight).sum(dim=(1, 2), dtype=torch.float64).div_(weight.sum(dtype=torch.float64))


def _runs(ia: np.ndarray, ib: np.ndarray, whole: bool) -> list[tuple[int, int, int, int]]:
    """(start, length, i, first j) of runs where ia is constant and ib counts up by one.

    With ``whole`` all pairs form one run (the caller gathers them).
    """
    if ia.size == 0:
        return []
    if whole:
        return [(0, int(ia.size), -1, -1)]
    breaks = np.flatnonzero((ia[1:] != ia[:-1]) | (ib[1:] != ib[:-1] + 1)) + 1
    starts = np.concatenate([[0], breaks])
    ends = np.concatenate([breaks, [ia.size]])
    return [(int(s), int(e - s), int(ia[s]), int(ib[s])) for s, e in zip(starts, ends)]


def all_pairs(n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Indices (i, j), i < j, of all unordered pairs of n items, in itertools.combinations order."""
    ij = torch.triu_indices(n, n, offset=1)
    return ij[0], ij[1]


def flip_error_map(reference: torch.Tensor, test: torch.Tensor, ppd: Optional[float] = None) -> torch.Tensor:
    """Error maps (N, H, W) of aligned (N, 3, H, W) batches, each pair compared once."""
    reference, test = check_images(reference, "reference"), check_images(test, "test")
    if reference.shape != test.shape:
        raise ValueError(f"reference and test differ in shape: {tuple(reference.shape)} vs {tuple(test.shape)}")
    a, b = preprocess(reference, ppd), preprocess(test, ppd)
    idx = torch.arange(len(a))
    return error_maps(a, b, idx, idx)


def memory_budget(device: torch.device, budget_bytes: Optional[int] = None) -> int:
    """Bytes of temporaries a chunk may use on device."""
    if budget_bytes is not None:
        return int(budget_bytes)
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(min(free // 2, _CUDA_BUDGET_CAP_BYTES))
    return _CPU_BUDGET_BYTES


def _indices(idx, device: torch.device) -> torch.Tensor:
    return torch.as_tensor(idx, dtype=torch.long).reshape(-1).to(device)
