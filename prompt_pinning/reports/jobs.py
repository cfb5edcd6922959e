"""Run-level report jobs, written to run in the worker (thread or process) from plain data."""
from __future__ import annotations

import hashlib
import pickle
import time
from pathlib import Path
from typing import Any, Optional

from .files import atomic_write_text
from .html import render_index
from .maps_job import write_maps
from .plot_data import RunPlotData
from .run_plots import CMA_MO_PLOT, CMA_PLOT, LOSS_HISTORY_PLOT, write_cma_mo_plot, write_cma_plot
from .run_plots import write_loss_history_plot

INDEX_HTML = "index.html"
# While a run goes on, run plots take at most this share of the worker's time.
RUN_PLOT_SHARE = 0.1
_last_run_plots: dict[str, tuple[float, float]] = {}  # run folder -> (finished at, seconds it took)
_drawn: dict[str, bytes] = {}  # run folder -> digest of the plot data its plots show
_maps_page: dict[str, dict[str, Any]] = {}  # run folder -> the maps the page shows


def write_run_reports(
    run_dir: Path,
    plots: RunPlotData,
    page: dict[str, Any],
    final: bool,
    maps: Optional[tuple[list[str], Any]] = None,
) -> None:
    """loss_history.png, cma_plot.png, cma_mo_plot.png (size limiter on) and index.html, in that order.

    Plots already drawn from the same data are not drawn again. Before the end of a run
    the plots are skipped when the last ones are too recent (see RUN_PLOT_SHARE); the
    page is always written, and is written even if a plot fails. ``maps`` (unit labels,
    the unmodified prompt's ``influence.Member``) asks for the maps (``maps_job``) with the plots.
    """
    key = str(run_dir)
    failed: Optional[Exception] = None
    digest = hashlib.sha256(pickle.dumps(plots, protocol=pickle.HIGHEST_PROTOCOL)).digest()
    try:
        if _drawn.get(key) != digest and (final or _plots_due(key)):
            _drawn.pop(key, None)
            started = time.perf_counter()
            if plots.generations:
                write_loss_history_plot(Path(run_dir) / LOSS_HISTORY_PLOT, plots.generations)
                write_cma_plot(Path(run_dir) / CMA_PLOT, plots.generations, plots.unit_labels)
            if plots.size_limit > 0 and plots.rows is not None:
                write_cma_mo_plot(Path(run_dir) / CMA_MO_PLOT, plots.rows, plots.size_limit)
            if maps is not None:
                failed = _draw_maps(Path(run_dir), maps, final)
            _last_run_plots[key] = (time.monotonic(), time.perf_counter() - started)
            _drawn[key] = digest
        elif final and maps is not None:
            failed = _draw_maps(Path(run_dir), maps, final)
    finally:
        atomic_write_text(Path(run_dir) / INDEX_HTML, render_index({**page, "maps": _maps_page.get(key)}))
    if final:
        _last_run_plots.pop(key, None)
        _drawn.pop(key, None)
        _maps_page.pop(key, None)
    if failed is not None:  # reported as this job's error, after the page is written
        raise failed


def _draw_maps(run_dir: Path, maps: tuple[list[str], Any], final: bool) -> Optional[Exception]:
    """Write the maps; an error is returned, so that the plots and the page still get done."""
    try:
        _maps_page[str(run_dir)] = write_maps(run_dir, maps[0], maps[1], final)
    except Exception as error:
        return error
    return None


def _plots_due(key: str) -> bool:
    if key not in _last_run_plots:
        return True
    finished_at, seconds = _last_run_plots[key]
    return time.monotonic() - finished_at >= seconds / RUN_PLOT_SHARE
