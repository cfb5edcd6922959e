"""What the report plots draw: the run plots through matplotlib's Figure and Axes, the Pillow
charts through their pixels, and the Pillow fallback where matplotlib is missing."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

from prompt_pinning.reports.charts import Series, diverging_color, heatmap_panel, line_panel
from prompt_pinning.reports.plot_data import RunPlotData, gain_summary, plain_generation, unit_label, unit_labels
from prompt_pinning.reports.quickplot import BARS, CURVE, histogram_counts, histogram_panel, sorted_panel
from prompt_pinning.reports.ticks import nice_ticks, tick_labels

matplotlib = pytest.importorskip("matplotlib")
from matplotlib.collections import PolyCollection, QuadMesh  # noqa: E402

from prompt_pinning.reports.run_figures import cma_figure, cma_mo_figure, loss_history_figure  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
WORDS = ["a", "red", "circle", ",", "on", "a", "blue", "background"]


def records(generations: int = 5, units: int = 4, validation: bool = False, seed: int = 0,
            unscored: tuple[int, ...] = ()) -> list[SimpleNamespace]:
    """Generations whose every quantity differs, so a panel drawing the wrong one is caught; each
    on its own seed block, with the unmodified prompt's loss there (None for ``unscored``)."""
    rng = np.random.default_rng(seed)
    out = []
    for g in range(1, generations + 1):
        out.append(SimpleNamespace(
            generation=g, losses=list(rng.random(6) + 0.5), sigma=0.05 * 0.9**g, axis_ratio=1.0 + 0.1 * g,
            centroid=rng.normal(0, 0.2, units), diag_std=rng.uniform(0.01, 0.05, units),
            eigenvalues=rng.uniform(0.3, 3.0, units), validation_loss=0.7 - 0.01 * g if validation else None,
            block=g, unmodified_loss=None if g in unscored else 1.0 + 0.1 * g,
            unmodified_validation_loss=0.8 if validation else None))
    return out


def gains_of(data, key):
    """Expected improvement (%) of each generation's ``key`` loss over its own block's unmodified prompt."""
    pick = {"best": min, "median": np.median, "worst": max}[key]
    return np.array([np.nan if r.unmodified_loss is None else 100 * (r.unmodified_loss - pick(r.losses))
                     / r.unmodified_loss for r in data])


def line_data(ax, label=None):
    lines = [line for line in ax.get_lines() if label is None or line.get_label() == label]
    assert len(lines) == 1, [line.get_label() for line in ax.get_lines()]
    return np.asarray(lines[0].get_xdata(), dtype=float), np.asarray(lines[0].get_ydata(), dtype=float)


def by_title(figure, start: str):
    found = [ax for ax in figure.get_axes() if ax.get_title().startswith(start)]
    assert len(found) == 1, [ax.get_title() for ax in figure.get_axes()]
    return found[0]


def assert_legend_outside(figure, ax):
    figure.canvas.draw()
    legend = ax.get_legend().get_window_extent()
    assert legend.x0 >= ax.get_window_extent().x1  # right of the data, covering none of it


# ---- unit labels ---------------------------------------------------------------------------
def test_unit_labels_keep_repeats_apart_and_show_punctuation_and_blanks():
    units = [SimpleNamespace(text=t, prompt="positive") for t in WORDS] + [
        SimpleNamespace(text=" ", prompt="positive"), SimpleNamespace(text="green", prompt="negative")]
    labels = unit_labels(units)
    assert labels[:4] == ["1:a", "2:red", "3:circle", "4:,"]
    assert labels[5] == "6:a" and len(set(labels)) == len(labels)
    assert labels[8] == "9:\u2423" and labels[9] == "10:green (neg)"
    assert unit_label(3, "an extremely long phrase of words") == "3:an extremely lo\u2026"


# ---- matplotlib run plots ------------------------------------------------------------------
def test_cma_figure_draws_each_quantity_in_its_own_panel():
    data = records()
    labels = unit_labels([SimpleNamespace(text=t, prompt="positive") for t in WORDS[:4]])
    figure = cma_figure(data, labels)
    gens = np.arange(1, 6)

    loss_ax = by_title(figure, "gain of the generation")
    x, best = line_data(loss_ax, "generation best")
    assert np.array_equal(x, gens) and np.allclose(best, gains_of(data, "best"))
    assert np.allclose(line_data(loss_ax, "generation median")[1], gains_of(data, "median"))
    assert "same seeds" in loss_ax.get_ylabel() and loss_ax.get_xlabel() == "generation"
    assert_legend_outside(figure, loss_ax)

    sigma_ax = by_title(figure, "step size sigma")
    assert np.allclose(line_data(sigma_ax)[1], [r.sigma for r in data]) and sigma_ax.get_yscale() == "log"
    assert "sigma" in sigma_ax.get_ylabel()
    ratio_ax = by_title(figure, "axis ratio")
    assert np.allclose(line_data(ratio_ax)[1], [r.axis_ratio for r in data])
    assert "axis" in ratio_ax.get_ylabel()
    axes_ax = by_title(figure, "scaling of all main axes")
    eigen = np.array([r.eigenvalues for r in data])
    assert np.allclose(line_data(axes_ax, "shortest axis")[1], np.sqrt(eigen.min(axis=1)))
    assert np.allclose(line_data(axes_ax, "longest axis")[1], np.sqrt(eigen.max(axis=1)))
    assert_legend_outside(figure, axes_ax)

    for title, field in (("centroid offset per unit", "centroid"), ("search std per unit", "diag_std")):
        ax = by_title(figure, title)
        mesh = [c for c in ax.collections if isinstance(c, QuadMesh)]
        assert len(mesh) == 1
        drawn = np.asarray(mesh[0].get_array()).reshape(4, 5)  # one row per unit, one column per generation
        assert np.allclose(drawn, np.array([getattr(r, field) for r in data]).T)
        assert [t.get_text() for t in ax.get_yticklabels()] == ["1:a", "2:red", "3:circle", "4:,"]
        assert ax.get_ylabel() == "unit (number:text)" and ax.get_xlabel() == "generation"
    key = by_title(figure, "centroid offset per unit").collections[0].colorbar
    assert key.ax.get_ylabel() == "centroid offset (weight)"


def test_cma_figure_labels_every_one_of_thirty_units():
    labels = [f"{k}:{WORDS[(k - 1) % len(WORDS)]}" for k in range(1, 31)]
    figure = cma_figure(records(units=30), labels)
    for title in ("centroid offset per unit", "search std per unit"):
        ticks = [t.get_text() for t in by_title(figure, title).get_yticklabels()]
        assert ticks == labels and len(set(ticks)) == 30
    assert not [ax for ax in figure.get_axes() if ax.get_legend() and len(ax.get_legend().texts) > 3]


def test_loss_history_draws_each_generation_against_the_unmodified_prompt_on_its_seeds():
    data = records(unscored=(3,))
    figure = loss_history_figure(data)
    ax = figure.get_axes()[0]
    x, best = line_data(ax, "generation best (own seeds)")
    assert np.array_equal(x, np.arange(1, 6)) and np.allclose(best, gains_of(data, "best"), equal_nan=True)
    assert np.isnan(best[2])  # generation 3: the unmodified prompt was not scored on its seeds
    assert np.allclose(line_data(ax, "generation median (own seeds)")[1], gains_of(data, "median"), equal_nan=True)
    band = [c for c in ax.collections if isinstance(c, PolyCollection)]
    assert len(band) == 1
    corners = {(round(x, 9), round(y, 9)) for path in band[0].get_paths() for x, y in path.vertices}
    for g, low, high in zip(range(1, 6), gains_of(data, "worst"), gains_of(data, "best")):
        if g != 3:
            assert (g, round(low, 9)) in corners and (g, round(high, 9)) in corners
    assert np.allclose(line_data(ax, "unmodified prompt (0)")[1], 0)
    assert not [line for line in ax.get_lines() if "validation" in line.get_label()]
    assert "same seeds" in ax.get_ylabel() and ax.get_xlabel() == "generation"
    assert "1 of 5 generations not shown" in ax.get_title()
    shown = np.concatenate([gains_of(data, "best"), gains_of(data, "median"), [0.0]])
    low, high = np.nanmin(shown), np.nanmax(shown)
    assert ax.get_ylim() == pytest.approx((low - 0.08 * (high - low), high + 0.08 * (high - low)))  # not the worst
    assert_legend_outside(figure, ax)


def test_loss_history_draws_validation_against_the_unmodified_prompt_on_the_validation_seeds():
    data = records(validation=True)
    ax = loss_history_figure(data).get_axes()[0]
    expected = [100 * (0.8 - r.validation_loss) / 0.8 for r in data]
    assert np.allclose(line_data(ax, "best validated so far (validation seeds)")[1], expected)
    summary = gain_summary(data)
    assert np.allclose(summary["validation"] * 100, expected)


def test_loss_history_without_any_paired_number_says_why():
    figure = loss_history_figure(records(unscored=(1, 2, 3, 4, 5)))
    texts = " ".join(t.get_text() for t in figure.get_axes()[0].texts)
    assert "5 of 5 generations not shown" in texts and not figure.get_axes()[0].get_lines()


def test_plain_generation_reads_validation_loss_only_where_the_record_has_it():
    record = SimpleNamespace(generation=2, losses=[0.5], sigma=0.1, axis_ratio=1.0, centroid=[0.0],
                             diag_std=[0.1], eigenvalues=[1.0])
    assert plain_generation(record).validation_loss is None
    record.validation_loss = 0.25
    assert plain_generation(record).validation_loss == 0.25
    record.validation_loss = float("nan")
    assert plain_generation(record).validation_loss is None


def test_size_limiter_figure_plots_each_individual_at_its_size_and_loss():
    rows = [{"g": g, "loss": 0.1 * g + 0.01 * i, "size": 0.2 * i} for g in range(3) for i in range(4)]
    rows.append({"g": 3, "loss": None, "size": 0.5})  # not evaluated yet: left out
    figure = cma_mo_figure(rows, size_limit=0.45)
    scatter_ax = by_title(figure, "loss against size")
    points = scatter_ax.collections[0].get_offsets()
    assert np.allclose(points, [(r["size"], r["loss"]) for r in rows[:-1]])
    assert np.allclose(line_data(scatter_ax)[0], 0.45)  # the limit, vertical
    order_ax = by_title(figure, "size of each evaluated individual")
    assert np.allclose(order_ax.collections[0].get_offsets()[:, 1], [r["size"] for r in rows[:-1]])
    assert np.allclose(line_data(order_ax, "size limit 0.45")[1], 0.45)
    assert "L2 distance" in scatter_ax.get_xlabel() and "loss" in scatter_ax.get_ylabel()
    assert [ax.get_ylabel() for ax in figure.get_axes() if ax.get_label() == "<colorbar>"] == [""]
    assert [ax.get_xlabel() for ax in figure.get_axes() if ax.get_label() == "<colorbar>"] == ["generation"]


def test_figures_with_nothing_to_draw_say_so():
    figure = cma_figure([], [])
    assert all(ax.texts and ax.texts[0].get_text() == "nothing to plot yet" for ax in figure.get_axes())


def test_building_figures_leaves_pyplot_and_the_backend_alone():
    script = textwrap.dedent("""
        import sys
        from types import SimpleNamespace
        import matplotlib
        def settings():  # read without resolving the backend (that would import pyplot)
            return {key: repr(dict.__getitem__(matplotlib.rcParams, key)) for key in matplotlib.rcParams}
        before = settings()
        from prompt_pinning.reports.mpl import png_bytes
        from prompt_pinning.reports.run_figures import cma_figure
        png_bytes(cma_figure([SimpleNamespace(generation=1, losses=[1.0], sigma=0.1, axis_ratio=1.0,
                                              centroid=[0.1], diag_std=[0.1], eigenvalues=[1.0])], ["1:a"]))
        assert "matplotlib.pyplot" not in sys.modules
        assert settings() == before
        print("ok")
    """)
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True,
                          env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    assert done.stdout.strip() == "ok", done.stderr


# ---- Pillow charts: the drawn pixels -------------------------------------------------------
def near(image: Image.Image, x: float, y: float, color: tuple, reach: int = 2) -> bool:
    pixels = np.asarray(image)
    xs = slice(max(0, int(round(x)) - reach), int(round(x)) + reach + 1)
    ys = slice(max(0, int(round(y)) - reach), int(round(y)) + reach + 1)
    return bool((np.abs(pixels[ys, xs].astype(int) - color).sum(axis=-1) <= 12).any())


def test_histogram_bars_reach_their_counts():
    values = np.array([0.1] * 6 + [0.5] * 2 + [0.9] * 4)
    image = Image.new("RGB", (400, 300), "white")
    axes = histogram_panel(image, (60, 60, 380, 260), values, "pair losses", "pair loss", "pairs")
    counts, edges = histogram_counts(values)
    pixels = np.asarray(image)
    for count, low, high in zip(counts, edges[:-1], edges[1:]):
        column = int(round(float(axes.to_x((low + high) / 2))))
        bar = np.where((pixels[:, column] == BARS).all(axis=1))[0]
        if count:
            assert abs(bar.min() - float(axes.to_y(count))) <= 1.5, (count, bar.min())
        else:
            assert bar.size == 0


def test_sorted_curve_passes_through_each_sorted_value():
    values = np.array([0.9, 0.2, 0.5, 0.3])
    image = Image.new("RGB", (400, 300), "white")
    axes = sorted_panel(image, (60, 60, 380, 260), values, "sorted", "pair, from lowest loss", "pair loss")
    for rank, value in enumerate(np.sort(values), start=1):
        assert near(image, float(axes.to_x(rank)), float(axes.to_y(value)), CURVE)
    assert not near(image, float(axes.to_x(1)), float(axes.to_y(0.9)), CURVE)  # not the unsorted order


def test_line_panel_draws_each_series_at_its_values():
    image = Image.new("RGB", (500, 300), "white")
    up, down = Series(np.arange(1, 5), np.array([1.0, 2.0, 3.0, 4.0]), "up", (200, 0, 0)), \
        Series(np.arange(1, 5), np.array([4.0, 3.0, 2.0, 1.0]), "down", (0, 0, 200))
    axes = line_panel(image, (60, 40, 380, 260), [up, down], "t", "generation", "value", legend_at=(390, 40))
    for s in (up, down):
        for x, y in zip(s.xs, s.ys):
            assert near(image, float(axes.to_x(x)), float(axes.to_y(y)), s.color)
    assert not near(image, float(axes.to_x(1)), float(axes.to_y(1.0)), (0, 0, 200))


def test_heatmap_cells_take_their_values_colour():
    values = np.array([[0.2, -0.4], [0.0, 0.4]])  # (generations, units)
    image = Image.new("RGB", (400, 300), "white")
    heatmap_panel(image, (100, 40, 300, 200), np.array([1.0, 2.0]), values, ["1:a", "2:,"], "t", "offset", True)
    for g in range(2):
        for u in range(2):
            x, y = 100 + (g + 0.5) * 100, 40 + (u + 0.5) * 80
            assert image.getpixel((int(x), int(y))) == diverging_color(values[g, u] / 0.4)


def test_one_tick_algorithm_gives_round_steps_inside_the_range():
    assert nice_ticks(0.0, 24.0) == [0, 5, 10, 15, 20]
    assert tick_labels(nice_ticks(-0.3, 0.13)) == ["-0.3", "-0.2", "-0.1", "0.0", "0.1"]
    assert nice_ticks(0.04, 1.3, log=True) == [0.05, 0.1, 0.2, 0.5, 1.0]
    assert tick_labels(nice_ticks(1.6, 2.1, log=True), log=True)[0] == "1.6"  # within a decade: linear steps
    for low, high in [(0.628, 0.97), (-3.5, 96.5), (1e-6, 3e-6)]:
        ticks = nice_ticks(low, high)
        assert 3 <= len(ticks) <= 6 and low <= ticks[0] and ticks[-1] <= high


# ---- without matplotlib --------------------------------------------------------------------
BLOCK_MATPLOTLIB = """
import importlib.abc, sys
class NoMatplotlib(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "matplotlib" or name.startswith("matplotlib."):
            raise ImportError("No module named " + repr(name))
sys.meta_path.insert(0, NoMatplotlib())
"""


def test_without_matplotlib_run_plots_fall_back_to_pillow_with_one_log_line(tmp_path):
    script = BLOCK_MATPLOTLIB + textwrap.dedent(f"""
        import logging
        from pathlib import Path
        from types import SimpleNamespace
        logging.basicConfig(level=logging.WARNING, format="%(name)s: %(message)s")
        from prompt_pinning.reports.run_plots import write_cma_mo_plot, write_cma_plot, write_loss_history_plot
        out = Path({str(tmp_path)!r})
        gens = [SimpleNamespace(generation=g, losses=[1.0 / g, 2.0], sigma=0.1, axis_ratio=1.0 + g,
                                centroid=[0.1 * g, -0.1], diag_std=[0.1, 0.05], eigenvalues=[1.0, 2.0],
                                validation_loss=None) for g in (1, 2, 3)]
        write_cma_plot(out / "cma_plot.png", gens, ["1:a", "2:,"])
        write_loss_history_plot(out / "loss_history.png", gens)
        write_cma_mo_plot(out / "cma_mo_plot.png", [dict(g=1, loss=0.5, size=0.2)], 0.3)
        assert "matplotlib" not in sys.modules
    """)
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True,
                          env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    assert done.returncode == 0, done.stderr
    assert done.stderr.count("matplotlib is not available") == 1, done.stderr
    for name in ("cma_plot.png", "loss_history.png", "cma_mo_plot.png"):
        with Image.open(tmp_path / name) as image:
            assert image.format == "PNG" and len(image.convert("RGB").getcolors(1 << 16) or []) > 20


def test_a_whole_report_without_matplotlib(tmp_path):
    script = BLOCK_MATPLOTLIB + textwrap.dedent(f"""
        from pathlib import Path
        from prompt_pinning.reports import ReportWriter
        from synthetic_run import synthetic_run
        writer = ReportWriter(worker="thread")
        synthetic_run(Path({str(tmp_path)!r}) / "run", writer, generations=2, population=3, batch=2, side=8,
                      size_limit=0.5)
        assert writer.errors == [], writer.errors
    """)
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True,
                          env={"PYTHONPATH": f"{ROOT}{os.pathsep}{ROOT / 'benchmarks'}", "PATH": "/usr/bin:/bin"})
    assert done.returncode == 0, done.stderr
    for name in ("cma_plot.png", "loss_history.png", "cma_mo_plot.png", "index.html"):
        assert (tmp_path / "run" / name).is_file()


def test_run_plot_data_pickles_without_torch_types():
    import pickle

    data = RunPlotData(generations=[plain_generation(r) for r in records()], unit_labels=["1:a"])
    assert pickle.loads(pickle.dumps(data)).generations[0].sigma == data.generations[0].sigma


def test_heatmap_columns_sit_at_their_generation_numbers_when_some_are_missing():
    data = [r for r in records(generations=5) if r.generation in (1, 2, 5)]
    ax = by_title(cma_figure(data, ["1:a", "2:b", "3:c", "4:d"]), "centroid offset per unit")
    mesh = [c for c in ax.collections if isinstance(c, QuadMesh)][0]
    left_edges = mesh.get_coordinates()[0, :, 0]
    assert np.allclose(left_edges, [0.5, 1.5, 3.5, 5.5])  # generation 5's column is centred on 5


def test_run_plots_are_drawn_again_only_when_their_data_change(tmp_path, monkeypatch):
    from prompt_pinning.reports import jobs

    drawn = []
    monkeypatch.setattr(jobs, "write_cma_plot", lambda path, *args: drawn.append(path.name))
    monkeypatch.setattr(jobs, "write_loss_history_plot", lambda path, *args: drawn.append(path.name))
    monkeypatch.setattr(jobs, "render_index", lambda page: "<!DOCTYPE html>")
    generations = [plain_generation(r) for r in records()]
    jobs.write_run_reports(tmp_path, RunPlotData(generations=generations[:4]), {}, final=False)
    jobs.write_run_reports(tmp_path, RunPlotData(generations=generations), {}, final=False)
    jobs.write_run_reports(tmp_path, RunPlotData(generations=generations), {}, final=True)  # as drawn: kept
    assert drawn == ["loss_history.png", "cma_plot.png"] * 2
    jobs.write_run_reports(tmp_path, RunPlotData(generations=generations), {}, final=True)
    assert drawn == ["loss_history.png", "cma_plot.png"] * 3
    assert (tmp_path / "index.html").read_text() == "<!DOCTYPE html>"
