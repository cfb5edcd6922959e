"""What a plot costs: the per-individual loss plot with Pillow and with matplotlib, and
the run plots (cma_plot, loss_history) with both.

The per-individual plot is drawn once for every individual, and the built-in model
renders an individual in tens of milliseconds, so its cost matters; the run plots are
drawn at most once per generation, in the low-priority report process. Each figure is
drawn and encoded to PNG in memory; prints the median CPU time and wall time of several
repeats, in ms (CPU time is the cost; wall time grows when other work shares the cores).

    OMP_NUM_THREADS=1 python benchmarks/bench_plots.py [--repeats 15]
"""
from __future__ import annotations

import argparse
import io
import json
import os
import platform
import statistics
import sys
import time
from datetime import date
from pathlib import Path
from types import SimpleNamespace

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from prompt_pinning.reports.mpl import new_figure, png_bytes  # noqa: E402
from prompt_pinning.reports.quickplot import loss_plot  # noqa: E402
from prompt_pinning.reports.run_figures import cma_figure, loss_history_figure  # noqa: E402
from prompt_pinning.reports.run_plots import pillow_cma_plot, pillow_loss_history  # noqa: E402


def pillow_png(image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


def matplotlib_loss_plot(values: np.ndarray, title: str) -> bytes:
    """The per-individual plot as matplotlib would draw it: histogram with its mean, sorted values."""
    figure = new_figure(6.4, 2.6)
    figure.suptitle(title, fontsize=10)
    hist_ax, sorted_ax = figure.subplots(1, 2)
    hist_ax.hist(values, bins=min(24, max(5, int(np.sqrt(values.size)) + 1)))
    hist_ax.axvline(values.mean(), color="C1", linestyle="--", label=f"mean {values.mean():.3g}")
    hist_ax.set_xlabel("pair loss (LDR-FLIP)")
    hist_ax.set_ylabel("pairs")
    hist_ax.legend(fontsize=8)
    sorted_ax.plot(np.arange(1, values.size + 1), np.sort(values), marker="o", markersize=2)
    sorted_ax.set_xlabel("pair, from lowest loss")
    sorted_ax.set_ylabel("pair loss (LDR-FLIP)")
    return png_bytes(figure)


def generations(count: int, units: int, rng: np.random.Generator) -> list[SimpleNamespace]:
    records, sigma = [], 0.05
    for g in range(1, count + 1):
        sigma *= 0.97
        eigen = np.sort(rng.uniform(0.5, 2.0, units))
        records.append(SimpleNamespace(
            generation=g, losses=list(rng.random(10)), sigma=sigma, axis_ratio=float(np.sqrt(eigen[-1] / eigen[0])),
            centroid=rng.normal(0, 0.2, units), diag_std=sigma * rng.uniform(0.5, 1.5, units), eigenvalues=eigen,
            validation_loss=None, block=g, unmodified_loss=0.6))
    return records


def median_ms(draw, repeats: int) -> tuple[float, float]:
    """Median CPU time and median wall time of ``draw()``, in ms (CPU time holds on a busy machine)."""
    draw()  # warm up: imports, fonts
    cpu, wall = [], []
    for _ in range(repeats):
        started, started_cpu = time.perf_counter(), time.process_time()
        draw()
        cpu.append((time.process_time() - started_cpu) * 1000)
        wall.append((time.perf_counter() - started) * 1000)
    return statistics.median(cpu), statistics.median(wall)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    pairs = rng.random(28)  # batch 8: 28 pairs
    title = "generation 3, individual 1 (0123456789abcdef)   loss 0.89753"
    print(f"{platform.machine()}, Python {platform.python_version()}, {date.today()}, "
          f"1-minute load average {os.getloadavg()[0]:.1f}; medians, ms")
    results = {
        "loss_plot.png, Pillow": median_ms(lambda: pillow_png(loss_plot(pairs, title)), args.repeats),
        "loss_plot.png, matplotlib": median_ms(lambda: matplotlib_loss_plot(pairs, title), args.repeats),
    }
    for units in (3, 10, 30):
        records = generations(48, units, rng)
        labels = [f"{k}:word{k}" for k in range(1, units + 1)]
        results[f"cma_plot.png, {units} units, Pillow"] = median_ms(
            lambda: pillow_png(pillow_cma_plot(records, labels)), max(3, args.repeats // 3))
        results[f"cma_plot.png, {units} units, matplotlib"] = median_ms(
            lambda: png_bytes(cma_figure(records, labels)), max(3, args.repeats // 3))
    records = generations(48, 10, rng)
    results["loss_history.png, Pillow"] = median_ms(lambda: pillow_png(pillow_loss_history(records)),
                                                    args.repeats)
    results["loss_history.png, matplotlib"] = median_ms(lambda: png_bytes(loss_history_figure(records)),
                                                        args.repeats)
    print(f"{'':<40} {'CPU':>8} {'wall':>8}")
    for name, (cpu, wall) in results.items():
        print(f"{name:<40} {cpu:8.1f} {wall:8.1f}")
    print(json.dumps({k: {"cpu_ms": round(c, 1), "wall_ms": round(w, 1)} for k, (c, w) in results.items()}))


if __name__ == "__main__":
    main()
