"""The report reads at a glance: colour keys, frames, signs and labels (pixels and HTML checked)."""
import numpy as np
import pytest
import torch

from prompt_pinning.reports import html, html_maps
from prompt_pinning.reports.map_drawing import BAR_WIDTH, HEAT_STOPS, LOSS_STOPS, influence_grid, ramp, \
    ring_colour, scatter_map


def test_influence_grid_has_a_colour_bar_from_zero_to_its_scale():
    strength = np.random.default_rng(0).uniform(0, 0.3, (2, 3, 8, 8))
    picture = np.asarray(influence_grid(strength, ["1:a", "2:b"], ["", ""], [None] * 3, "maps"))
    bar = picture[39, 30:30 + BAR_WIDTH].astype(int)
    expected = ramp(np.linspace(0, 1, BAR_WIDTH), HEAT_STOPS).astype(int)
    assert np.abs(bar - expected).max() <= 1
    assert (bar[0] == HEAT_STOPS[0]).all() and (bar[-1] == HEAT_STOPS[-1]).all()


def test_each_cluster_ring_has_its_own_colour_and_points_use_viridis():
    xy = np.array([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0], [10.0, 10.0]])
    places = np.array([0.0, 1.0, 0.0, 1.0])
    clusters = np.array([0, 0, 1, -1])
    picture = np.asarray(scatter_map(xy, places, clusters, [], "t", "n", side=200))
    pix = (xy - 0) / 10 * 160 + [20, 40]

    def around(j, radius):  # the colours on a circle of ``radius`` around point j
        x, y = pix[j]
        angles = np.linspace(0, 2 * np.pi, 48, endpoint=False)
        return {tuple(picture[int(round(y + radius * np.sin(a))), int(round(x + radius * np.cos(a)))])
                for a in angles}

    assert ring_colour(0) in around(0, 6) and ring_colour(0) in around(1, 6)
    assert ring_colour(1) in around(2, 6) and ring_colour(0) not in around(2, 6)
    assert ring_colour(0) != ring_colour(1)
    assert not ({ring_colour(0), ring_colour(1)} & around(3, 6))  # not in a cluster: no ring
    assert tuple(picture[int(pix[0][1]), int(pix[0][0])]) == tuple(LOSS_STOPS[0].astype(np.uint8))  # best: dark purple


def test_the_maps_text_names_the_colour_map_and_the_cluster_ranking_without_doubled_parentheses():
    entry = {"png": "weight_map.png", "method": "pca", "clustered": True, "clusters": [], "hint": None}
    text = html_maps._weights(entry)
    assert "viridis" in text and "blue" not in text
    assert "))" not in text and "PCA; install umap-learn" in text
    influence = {"png": "i.png", "json": "i.json", "npz": "i.npz", "aligned": True, "individuals": 9,
                 "units": [], "slots": 12, "shown": 8, "width": 900, "height": 300}
    shown = html_maps._influence(influence)
    assert "Only the first 8 of the 12 image slots" in shown
    assert 'width="900" height="300"' in shown and 'class="plot native"' in shown


def test_signed_numbers_never_read_minus_zero_and_status_is_said_once():
    assert html._signed(-0.0004, 3) == "0.000" and html._signed(-0.0006, 3) == "-0.001"
    assert html._percent(-0.0001) == "0.0%" and html._percent(0.047) == "+4.7%"
    tags = html._tags([{"tag": "red", "role": "wanted", "weight": 1.0, "base": 0.5, "best": 0.4999}])
    assert "-0.000" not in tags and ">0.000<" in tags
    run = {"status": "interrupted", "stop_reason": "interrupted", "generations": 2, "individuals": 9,
           "updated": "now"}
    summary = html._summary({"run": run})
    assert summary.count("interrupted") == 1 and "Stop reason" not in summary
    run.update(status="failed", stop_reason="error: out of memory")
    assert "failed: error: out of memory" in html._summary({"run": run})


def test_the_mask_strip_frames_each_tile(tmp_path):
    from prompt_pinning.reports.mask_view import FRAME_GREY, write_mask_view
    from prompt_pinning.run.files import write_npz_atomic

    mask = np.ones((6, 5), dtype=np.float32)
    write_npz_atomic(tmp_path / "mask.npz", {"mask": mask})
    write_npz_atomic(tmp_path / "baseline.npz", {"images": np.ones((2, 3, 6, 5), dtype=np.float32)})
    name = write_mask_view(tmp_path)
    from PIL import Image

    strip = np.asarray(Image.open(tmp_path / name))
    assert strip.shape[0] == 6 + 2
    assert (strip[0, :7] == FRAME_GREY).all() and (strip[:, 0] == FRAME_GREY).all()  # the white mask, framed
    assert (strip[1:7, 1:6] == 255).all()


def test_the_influence_title_is_never_cut():
    from PIL import ImageFont

    title = "influence maps from 320 individuals; rotating seeds: each column pools its slot's seeds; " * 2
    picture = influence_grid(np.zeros((1, 2, 8, 8)), ["1:a"], [""], [None] * 2, title)
    assert picture.width >= ImageFont.load_default().getlength(title) + 8


def test_a_seed_caption_never_spans_seeds_that_were_not_used():
    from prompt_pinning.reports.html import _seed_span

    assert _seed_span([5, 6]) == "seeds 5–6"
    assert _seed_span([17, 1, 2, 3, 18]) == "seeds 1–3, 17–18"  # two validation blocks, not 1–18
    assert _seed_span([7]) == "seed 7" and _seed_span([]) == "no seeds"
