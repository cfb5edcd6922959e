"""LDR-FLIP's filters: 1-D kernels for its separable contrast-sensitivity and
feature filters, and filtering along one axis with edge-replicate padding."""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

# Contrast sensitivity functions (a1, b1, a2, b2) of the Y, Cx and Cz channels.
CSF_ACHROMATIC = (1.0, 0.0047, 0.0, 1e-5)
CSF_RED_GREEN = (1.0, 0.0053, 0.0, 1e-5)
CSF_BLUE_YELLOW = (34.1, 0.04, 13.5, 0.025)
FEATURE_WIDTH_DEG = 0.082  # peak-to-trough width (2 std) of the edge detector, degrees


def _csf_term(x2: np.ndarray, a: float, b: float) -> np.ndarray:
    return a * np.sqrt(np.pi / b) * np.exp(-np.pi**2 * x2 / b)


def csf_radius(ppd: float) -> int:
    largest_b = max(b for csf in (CSF_ACHROMATIC, CSF_RED_GREEN, CSF_BLUE_YELLOW) for b in (csf[1], csf[3]))
    return int(math.ceil(3.0 * math.sqrt(largest_b / (2.0 * math.pi**2)) * ppd))


def csf_kernels(ppd: float) -> np.ndarray:
    """1-D colour filters (4, 2r+1) for the channels (Y, Cx, Cz part 1, Cz part 2).

    Y and Cx use one Gaussian each, normalised to sum 1. The blue-yellow filter
    is a sum of two 2-D Gaussians: each is the outer product of a 1-D factor
    sqrt(a sqrt(pi/b)) exp(-pi^2 x^2 / b) with itself, so Cz is filtered twice
    and the results added; both factors are scaled so the 2-D sum is 1.
    """
    r = csf_radius(ppd)
    x2 = (np.arange(-r, r + 1) / ppd) ** 2
    y = _csf_term(x2, *CSF_ACHROMATIC[:2])
    cx = _csf_term(x2, *CSF_RED_GREEN[:2])
    a1, b1, a2, b2 = CSF_BLUE_YELLOW
    cz1 = np.sqrt(a1 * np.sqrt(np.pi / b1)) * np.exp(-np.pi**2 * x2 / b1)
    cz2 = np.sqrt(a2 * np.sqrt(np.pi / b2)) * np.exp(-np.pi**2 * x2 / b2)
    cz_norm = math.hypot(cz1.sum(), cz2.sum())
    return np.stack([y / y.sum(), cx / cx.sum(), cz1 / cz_norm, cz2 / cz_norm])


def feature_kernels(ppd: float) -> np.ndarray:
    """1-D feature filters (3, 2r+1): Gaussian, 1st and 2nd derivative.

    The Gaussian sums to 1; the positive and negative weights of each
    derivative sum to +1 and -1.
    """
    sd = 0.5 * FEATURE_WIDTH_DEG * ppd
    r = int(math.ceil(3.0 * sd))
    x = np.arange(-r, r + 1, dtype=np.float64)
    g = np.exp(-(x * x) / (2.0 * sd * sd))
    first = _balance(-x * g)
    second = _balance((x * x / (sd * sd) - 1.0) * g)
    return np.stack([g / g.sum(), first, second])


def _balance(k: np.ndarray) -> np.ndarray:
    return np.where(k > 0, k / k[k > 0].sum(), k / -k[k < 0].sum())


def filter_axis(x: torch.Tensor, kernels: torch.Tensor, dim: int) -> torch.Tensor:
    """Correlate each channel of (N, C, H, W) with its own 1-D kernel along dim (2 or 3).

    With one input channel (C = 1) every kernel is applied to it.
    """
    c, k = kernels.shape
    r = k // 2
    padded = F.pad(x, (r, r, 0, 0) if dim == 3 else (0, 0, r, r), mode="replicate")
    if _prefers_conv(x.device):
        shape = (c, 1, 1, k) if dim == 3 else (c, 1, k, 1)
        return F.conv2d(padded, kernels.reshape(shape), groups=x.shape[1])
    size = x.shape[dim]
    weights = kernels.t().reshape(k, 1, c, 1, 1)
    out = padded.narrow(dim, 0, size) * weights[0]
    for i in range(1, k):
        out.addcmul_(padded.narrow(dim, i, size), weights[i])
    return out


def _prefers_conv(device: torch.device) -> bool:
    """Depthwise conv2d on CUDA; on the CPU a sum of shifted slices is about 2x faster."""
    return device.type == "cuda"


def separable(x: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
    return filter_axis(filter_axis(x, rows, 3), cols, 2)
