"""Tick positions and tick labels for the Pillow charts (one algorithm for all of them)."""
from __future__ import annotations

import math


def nice_ticks(low: float, high: float, log: bool = False, count: int = 5) -> list[float]:
    """Round values inside [low, high]: about ``count`` steps of 1, 2 or 5 times a power of ten.

    On a log axis: powers of ten, or 1-2-5 multiples of them over a few decades, or linear
    ticks within less than a decade.
    """
    if not (math.isfinite(low) and math.isfinite(high)):
        return []
    if high < low:
        low, high = high, low
    if log:
        if low <= 0:
            raise ValueError(f"nice_ticks: a log axis needs low > 0, got {low!r}")
        if high / low < 10:
            return [t for t in nice_ticks(low, high, False, count) if t > 0]
        first, last = math.floor(math.log10(low)), math.ceil(math.log10(high))
        step = max(1, (last - first) // count)
        ticks = [10.0**e for e in range(first, last + 1, step) if low <= 10.0**e <= high]
        if len(ticks) < 3:  # a narrow range: label 2x and 5x too
            ticks = [m * 10.0**e for e in range(first, last + 1) for m in (1, 2, 5) if low <= m * 10.0**e <= high]
        return ticks or [low, high]
    span = high - low
    if span == 0:
        return [low]
    step = 10 ** math.floor(math.log10(span / count))
    for factor in (1, 2, 5, 10):
        if span / (step * factor) < count + 1:
            step *= factor
            break
    start = math.ceil(low / step - 1e-9) * step
    ticks = [start + k * step for k in range(int((high - start) / step + 1e-9) + 1)]
    return [0.0 if abs(t) < step * 1e-9 else t for t in ticks]


def tick_labels(ticks: list[float], log: bool = False) -> list[str]:
    """Labels for ``ticks``: as many decimals as their step needs (log axes: 3 significant digits)."""
    if log or len(ticks) < 2:
        return [f"{t:.3g}" for t in ticks]
    step = min(b - a for a, b in zip(ticks, ticks[1:]))
    if step < 1e-4 or max(abs(t) for t in ticks) >= 1e5:
        return [f"{t:.3g}" for t in ticks]
    digits = max(0, -math.floor(math.log10(step) + 1e-9))
    return [f"{t:.{digits}f}" for t in ticks]
