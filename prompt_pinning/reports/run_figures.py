"""The run plots as matplotlib Figures (cma_plot, cma_mo_plot, loss_history).

Each function builds and returns a Figure (tests inspect its Axes); ``mpl.save_figure``
writes it. Units are labelled ``number:text`` on a categorical axis of a heatmap, so a
run with 30 units reads as well as one with 3.
"""
from __future__ import annotations

from typing import Any, Optional, Sequence

import numpy as np

from .mpl import new_figure
from .plot_data import GAIN_AXIS, cma_records, gain_note, gain_summary, main_axis_lengths, size_points, stack
from .ticks import nice_ticks, tick_labels

LOSS_AXIS = "loss (LDR-FLIP, lower is better)"
BEST, MEDIAN, SPREAD, BASELINE, VALIDATION, LIMIT = "#1f5fa8", "#7a9cc6", "#c9d7ea", "#555555", "#d9822b", "#c2410c"
LEGEND_OUTSIDE = dict(loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0, fontsize=8, frameon=False)


def _generation_axis(ax: Any, gens: np.ndarray) -> None:
    ax.set_xlabel("generation")
    ax.xaxis.get_major_locator().set_params(integer=True)
    if gens.size:
        ax.set_xlim(gens.min() - 0.5, gens.max() + 0.5)


def _log_axis(ax: Any) -> None:
    """A log y scale ticked by ``ticks.nice_ticks`` with plain-number labels.

    Call it after the data are drawn: the ticks are chosen for the current limits."""
    from matplotlib.ticker import FixedFormatter, FixedLocator, NullLocator

    ax.set_yscale("log")
    axis = ax.yaxis
    low, high = axis.get_view_interval()
    ticks = nice_ticks(float(low), float(high), log=True) if 0 < low < high else []
    if ticks:
        axis.set_major_locator(FixedLocator(ticks))
        axis.set_major_formatter(FixedFormatter(tick_labels(ticks, log=True)))
        axis.set_minor_locator(NullLocator())


def _empty(ax: Any, title: str) -> None:
    ax.set_title(title, fontsize=10)
    ax.text(0.5, 0.5, "nothing to plot yet", ha="center", va="center", transform=ax.transAxes, color="grey")
    ax.set_xticks([])
    ax.set_yticks([])


def _heatmap_height(units: int) -> float:
    return max(2.2, 0.2 * units + 1.0)


def cma_figure(records: Sequence[Any], unit_labels: Sequence[str] = ()) -> Any:
    """Loss, step size, axis ratio and main axes per generation (top); per-unit centroid
    offset and search std as heatmaps with one row per unit (bottom)."""
    records = cma_records(records)
    gens = np.array([r.generation for r in records], dtype=np.float64)
    centroid, stds = stack(records, "centroid"), stack(records, "diag_std")
    units = centroid.shape[1] if centroid is not None else (stds.shape[1] if stds is not None else 0)
    heat = _heatmap_height(units)
    figure = new_figure(13.0, 5.6 + heat)
    figure.suptitle("CMA-ES over the generations", fontsize=13)
    top, bottom = figure.subfigures(2, 1, height_ratios=[5.2, heat])  # each part lays out its own legends
    (loss_ax, step_ax), (ratio_ax, axes_ax) = top.subplots(2, 2)
    centroid_ax, std_ax = bottom.subplots(1, 2)

    _gain_panel(loss_ax, gain_summary(records))
    _trace_panel(step_ax, gens, [r.sigma for r in records], "step size sigma", "sigma (weight offset, log)",
                 "#2e8b57")
    _trace_panel(ratio_ax, gens, [r.axis_ratio for r in records], "axis ratio of the search distribution",
                 "longest / shortest axis (log)", "#d9822b")
    _main_axes_panel(axes_ax, gens, main_axis_lengths(records))
    labels = list(unit_labels) if len(unit_labels) == units else [str(k) for k in range(1, units + 1)]
    _unit_heatmap(bottom, centroid_ax, gens, centroid, labels, "centroid offset per unit",
                  "centroid offset (weight)", diverging=True)
    _unit_heatmap(bottom, std_ax, gens, stds, labels, "search std per unit (small: tight)",
                  "std (weight offset, log)", diverging=False)
    return figure


def _gain_panel(ax: Any, summary: dict[str, np.ndarray]) -> None:
    """The generation's best and median improvement over the unmodified prompt on its own seeds."""
    title = "gain of the generation's individuals"
    gens = summary["generation"]
    if not np.isfinite(summary["best"]).any():
        _empty(ax, title)
        ax.text(0.5, 0.3, "unmodified prompt not scored on these seeds", ha="center", transform=ax.transAxes,
                color="grey", fontsize=8)
        return
    percent = lambda key: 100 * summary[key]  # noqa: E731
    ax.axhline(0, color=BASELINE, linestyle="--", linewidth=1, label="unmodified prompt")
    ax.plot(gens, percent("best"), color=BEST, marker="o", markersize=3, label="generation best", zorder=3)
    ax.plot(gens, percent("median"), color=MEDIAN, label="generation median")
    ax.set_ylabel("gain, same seeds (%)", fontsize=9)
    ax.set_title(title, fontsize=10)
    ax.legend(**LEGEND_OUTSIDE)
    ax.grid(alpha=0.3)
    _generation_axis(ax, gens)


def _trace_panel(ax: Any, gens: np.ndarray, values: Sequence[float], title: str, ylabel: str, color: str) -> None:
    """One positive quantity per generation on a log axis."""
    if not gens.size:
        _empty(ax, title)
        return
    ax.plot(gens, values, color=color, marker="o", markersize=3)
    _log_axis(ax)
    ax.set_ylabel(ylabel, fontsize=9)
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    _generation_axis(ax, gens)


def _main_axes_panel(ax: Any, gens: np.ndarray, lengths: Optional[np.ndarray]) -> None:
    """Every main axis of the search distribution; the shortest and the longest stand out."""
    title = "scaling of all main axes (times sigma: weight offset)"
    if lengths is None or not gens.size:
        _empty(ax, title)
        return
    for k in range(1, lengths.shape[1] - 1):
        ax.plot(gens, lengths[:, k], color="#b8b8b8", linewidth=0.8, label="other axes" if k == 1 else None)
    ax.plot(gens, lengths[:, -1], color="#c2410c", label="longest axis")
    ax.plot(gens, lengths[:, 0], color=BEST, label="shortest axis")
    _log_axis(ax)
    ax.set_ylabel("sqrt(eigenvalue of C) (log)", fontsize=9)
    ax.set_title(title, fontsize=10)
    ax.legend(**LEGEND_OUTSIDE)
    ax.grid(alpha=0.3)
    _generation_axis(ax, gens)


def _unit_heatmap(figure: Any, ax: Any, gens: np.ndarray, values: Optional[np.ndarray], labels: list[str],
                  title: str, key: str, diverging: bool) -> None:
    """One row per unit, one column per generation; the colour key names the quantity."""
    if values is None or not gens.size:
        _empty(ax, title)
        return
    from matplotlib.colors import LogNorm, Normalize

    units = values.shape[1]
    edges = np.concatenate([[gens[0] - 0.5], (gens[1:] + gens[:-1]) / 2, [gens[-1] + 0.5]])  # a gap widens a column
    rows = np.arange(units + 1) - 0.5
    shown = np.ma.masked_invalid(values.T)
    if diverging:
        reach = float(np.nanmax(np.abs(values))) if np.isfinite(values).any() else 1.0
        norm, cmap = Normalize(-(reach or 1.0), reach or 1.0), "RdBu_r"
    else:
        positive = values[np.isfinite(values) & (values > 0)]
        low, high = (positive.min(), positive.max()) if positive.size else (1e-3, 1.0)
        norm = LogNorm(low, high) if high > low else LogNorm(low / 2, high * 2)
        cmap = "viridis"
        shown = np.ma.masked_where(~(shown > 0), shown)
    mesh = ax.pcolormesh(edges, rows, shown, cmap=cmap, norm=norm, shading="flat")
    ax.set_yticks(np.arange(units), labels, fontsize=8 if units <= 45 else 6)
    ax.set_ylim(units - 0.5, -0.5)  # unit 1 at the top, as in the units table
    ax.set_ylabel("unit (number:text)", fontsize=9)
    ax.set_title(title, fontsize=10)
    _generation_axis(ax, gens)
    key_bar = figure.colorbar(mesh, ax=ax, label=key, pad=0.01)
    if not diverging:
        ticks = nice_ticks(norm.vmin, norm.vmax, log=True)
        key_bar.set_ticks(ticks, labels=tick_labels(ticks, log=True))
        key_bar.minorticks_off()


def cma_mo_figure(rows: Sequence[dict[str, Any]], size_limit: float) -> Any:
    """Loss against distance from the original weights, and that distance per evaluation;
    one generation colour key for both panels."""
    from matplotlib.colors import Normalize

    gens, losses, sizes = size_points(rows)
    figure = new_figure(13.0, 4.6)
    figure.suptitle("size limiter: distance from the original weights", fontsize=13)
    scatter_ax, order_ax = figure.subplots(1, 2)
    norm = Normalize(0, max(1.0, float(gens.max()) if gens.size else 1.0))
    mesh = None
    if gens.size:
        mesh = scatter_ax.scatter(sizes, losses, c=gens, cmap="viridis", norm=norm, s=14)
        order_ax.scatter(np.arange(1, sizes.size + 1), sizes, c=gens, cmap="viridis", norm=norm, s=14)
    scatter_ax.axvline(size_limit, color=LIMIT, linestyle="--", label=f"size limit {size_limit:g}")
    order_ax.axhline(size_limit, color=LIMIT, linestyle="--", label=f"size limit {size_limit:g}")
    scatter_ax.set_xlabel("size: L2 distance from the original weights (weight)")
    scatter_ax.set_ylabel(LOSS_AXIS, fontsize=9)
    scatter_ax.set_title("loss against size", fontsize=10)
    order_ax.set_xlabel("evaluation (in order)")
    order_ax.set_ylabel("size (weight)", fontsize=9)
    order_ax.set_title("size of each evaluated individual", fontsize=10)
    for ax in (scatter_ax, order_ax):
        ax.grid(alpha=0.3)
    order_ax.legend(**LEGEND_OUTSIDE)
    if mesh is not None:
        figure.colorbar(mesh, ax=[scatter_ax, order_ax], label="generation", pad=0.01, location="bottom",
                        shrink=0.4, aspect=40)
    return figure


def loss_history_figure(records: Sequence[Any]) -> Any:
    """The run's progress, paired: per generation, the improvement over the unmodified prompt on
    that generation's own seeds (range, median, best), and the best validated so far against the
    unmodified prompt on the validation seeds."""
    records = cma_records(records)
    summary = gain_summary(records)
    gens = summary["generation"]
    figure = new_figure(10.0, 4.6)
    ax = figure.add_subplot()
    figure.suptitle("improvement over the unmodified prompt, each on the same seeds", fontsize=12)
    percent = {key: 100 * summary[key] for key in ("best", "median", "worst", "validation")}
    training = np.isfinite(percent["best"]).any()
    validation = np.isfinite(percent["validation"]).any()
    if not training and not validation:
        _empty(ax, "improvement over the unmodified prompt")
        ax.text(0.5, 0.3, gain_note(summary), ha="center", transform=ax.transAxes, color="grey", fontsize=8,
                wrap=True)
        return figure
    ax.axhline(0, color=BASELINE, linestyle="--", linewidth=1, label="unmodified prompt (0)")
    if training:
        ax.fill_between(gens, percent["worst"], percent["best"], color=SPREAD,
                        label="generation worst to best (own seeds)")
        ax.plot(gens, percent["median"], color=MEDIAN, label="generation median (own seeds)")
        ax.plot(gens, percent["best"], color=BEST, marker="o", markersize=3, label="generation best (own seeds)")
    if validation:
        ax.plot(gens, percent["validation"], color=VALIDATION, marker="s", markersize=3, drawstyle="steps-post",
                label="best validated so far (validation seeds)")
    ax.set_ylim(*_gain_limits([percent["best"], percent["median"], percent["validation"]]))
    ax.set_ylabel(GAIN_AXIS)
    ax.grid(alpha=0.3)
    _generation_axis(ax, gens)
    ax.legend(**LEGEND_OUTSIDE)
    ax.set_title(gain_note(summary) + "; the worst individuals may reach below the frame", fontsize=8,
                 color="#555555")
    return figure


def _gain_limits(series: Sequence[np.ndarray]) -> tuple[float, float]:
    """A y range holding 0, the best, the median and validation (the worst may be far below)."""
    values = np.concatenate([np.asarray(s, dtype=np.float64) for s in series] + [np.zeros(1)])
    values = values[np.isfinite(values)]
    low, high = float(values.min()), float(values.max())
    pad = 0.08 * (high - low) or 1.0
    return low - pad, high + pad
