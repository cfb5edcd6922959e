"""Influence maps and the map of the explored weights (reports/influence.py, weight_map.py, maps_job.py)."""
from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from prompt_pinning.run.files import read_npz
from prompt_pinning.reports import maps_job
from prompt_pinning.reports.influence import OPPONENT, InfluenceAccumulator, Member, map_size, rgb_coefficients
from prompt_pinning.reports.weight_map import cluster_summaries, hdbscan_clusterer, pca, weight_map

SIDE = 16
UNITS = 3


def linear_generation(folder, generation, rng, population=8, batch=2):
    """Individuals whose images answer their offsets: unit 0 brightens the left half,
    unit 1 reddens the bottom-right quarter, unit 2 does nothing. The picture under
    them differs per generation (its own seeds)."""
    base = rng.uniform(0.3, 0.5, (batch, SIDE, SIDE, 3))
    seeds = [100 * generation + k for k in range(batch)]
    members = []
    for i in range(population):
        offsets = rng.normal(0.0, 0.2, UNITS)
        images = base.copy()
        images[:, :, : SIDE // 2, :] += 0.5 * offsets[0]
        images[:, SIDE // 2:, SIDE // 2:, 0] += 0.5 * offsets[1]
        target = folder / f"{generation:08d}" / f"ind{i}"
        target.mkdir(parents=True)
        names = []
        for k, image in enumerate(images):
            names.append(f"{k:02d}-{seeds[k]}.png")
            Image.fromarray((np.clip(image, 0, 1) * 255 + 0.5).astype(np.uint8)).save(target / names[-1])
        members.append(Member(generation, i, offsets.tolist(), seeds, str(target), names, float(i),
                              f"g{generation}i{i}"))
    return members


def test_map_size_keeps_the_aspect_and_the_cap():
    assert map_size(64, 64) == (64, 64)
    assert map_size(512, 768) == (42, 64)
    assert map_size(20, 10) == (20, 10)


def test_influence_finds_where_each_unit_acts(tmp_path):
    rng = np.random.default_rng(0)
    acc = InfluenceAccumulator(UNITS)
    for g in range(1, 6):
        acc.add_generation(g, linear_generation(tmp_path, g, rng))
    maps = acc.solve()
    assert maps is not None and maps.individuals == 40 and maps.groups == 5 and not maps.aligned
    rgb = rgb_coefficients(maps)  # (units, slots, 3, h, w)
    left, right = np.s_[:, :, :, : SIDE // 2], np.s_[:, :, :, SIDE // 2:]
    # unit 0: +0.5 in every channel on the left half, nothing on the right
    assert np.allclose(rgb[0][left], 0.5, atol=0.05)
    assert np.abs(rgb[0][right]).max() < 0.05
    # unit 1: +0.5 red on the bottom-right quarter only
    quarter = rgb[1][:, 0, SIDE // 2:, SIDE // 2:]
    assert np.allclose(quarter, 0.5, atol=0.05)
    assert np.abs(rgb[1][:, 1:]).max() < 0.05 and np.abs(rgb[1][:, 0, : SIDE // 2]).max() < 0.05
    strength = [u["strength"] for u in maps.unit_summary()]
    assert strength[2] < 0.05 * min(strength[:2])
    summary = maps.unit_summary()
    assert summary[0]["luminance"] > summary[0]["colour"]  # a grey change is luminance
    assert summary[1]["colour"] > summary[1]["luminance"]  # a red change is mostly colour


def test_a_generation_is_added_once_and_single_individuals_are_skipped(tmp_path):
    rng = np.random.default_rng(1)
    acc = InfluenceAccumulator(UNITS)
    members = linear_generation(tmp_path, 1, rng)
    acc.add_generation(1, members)
    acc.add_generation(1, members)
    assert acc.individuals == 8
    lonely = InfluenceAccumulator(UNITS)
    lonely.add_generation(2, members[:1])
    assert lonely.solve() is None
    with pytest.raises(ValueError, match="3 units"):
        InfluenceAccumulator(UNITS).add_generation(3, [Member(3, 0, [0.0], [1], "x", ["a.png"])])


def test_opponent_channels_invert():
    rgb = np.array([0.2, 0.5, 0.9])
    assert np.allclose(np.linalg.inv(OPPONENT.astype(np.float64)) @ (OPPONENT @ rgb), rgb, atol=1e-6)


def test_write_maps_files_page_and_a_resume_from_disk(tmp_path):
    rng = np.random.default_rng(2)
    run_dir = tmp_path / "run"
    labels = ["bright", "<b>red</b>", "filler (neg)"]
    generations = {g: linear_generation(run_dir, g, rng) for g in range(1, 4)}
    for g, members in generations.items():
        maps_job.add_generation(run_dir, UNITS, g, members)
        for m in members:  # what the run writes beside the images
            stats = {"generation": m.generation, "index": m.index, "individual_id": m.individual_id,
                     "offsets": m.offsets, "seeds": m.seeds, "images": m.images, "loss": m.loss}
            (tmp_path / "run" / f"{g:08d}" / f"ind{m.index}" / "batch_stats.json").write_text(json.dumps(stats))
    page = maps_job.write_maps(run_dir, labels, None, final=True)
    arrays = read_npz(run_dir / maps_job.INFLUENCE_NPZ, {
        "coefficients": ("f", lambda s: s == (UNITS, 2, 3, SIDE, SIDE)), "mean_images": ("f", lambda s: len(s) == 4),
        "unit_labels": ("U", lambda s: s == (UNITS,)), "channels": ("U", lambda s: s == (3,))})
    assert list(arrays["unit_labels"]) == labels
    info = json.loads((run_dir / maps_job.INFLUENCE_JSON).read_text())
    assert info["individuals"] == 24 and [u["label"] for u in info["units"]] == labels
    assert page["influence"]["png"] == maps_job.INFLUENCE_PNG and (run_dir / maps_job.INFLUENCE_PNG).is_file()
    points = json.loads((run_dir / maps_job.WEIGHT_MAP_JSON).read_text())["points"]
    assert len(points) == 24 and (run_dir / maps_job.WEIGHT_MAP_PNG).is_file()

    # a report process that saw none of it (a resumed run) reads the same from disk
    again = maps_job.write_maps(run_dir, labels, None, final=True)
    fresh = read_npz(run_dir / maps_job.INFLUENCE_NPZ, {
        "coefficients": ("f", lambda s: True), "mean_images": ("f", lambda s: True),
        "unit_labels": ("U", lambda s: True), "channels": ("U", lambda s: True)})
    assert again["influence"]["individuals"] == 24
    assert np.allclose(fresh["coefficients"], arrays["coefficients"], atol=1e-5)


def test_member_from_stats_refuses_bad_values(tmp_path):
    good = {"generation": 1, "index": 0, "offsets": [0.1, 0.2], "seeds": [1, 2], "images": ["00-1.png"], "loss": 0.3}
    member = maps_job.member_from_stats(good, tmp_path, 2)
    assert member.offsets == [0.1, 0.2] and member.loss == 0.3
    for key, value, message in [("offsets", [0.1], "2 finite numbers"), ("offsets", [0.1, True], "finite"),
                                ("images", ["../x.png"], "plain file names"), ("seeds", [1.5], "whole")]:
        with pytest.raises(ValueError, match=message):
            maps_job.member_from_stats({**good, key: value}, tmp_path, 2)


def test_pca_follows_the_widest_direction():
    rng = np.random.default_rng(3)
    t = rng.normal(size=200)
    points = np.outer(t, [3.0, 0.0, 4.0]) + rng.normal(scale=0.01, size=(200, 3))
    xy = pca(points)
    assert abs(np.corrcoef(xy[:, 0], t)[0, 1]) > 0.999
    assert xy[:, 1].std() < 0.05 * xy[:, 0].std()


def two_blobs(rng):
    a = rng.normal(0.0, 0.02, (40, 4)) + [0.5, 0, 0, 0]
    b = rng.normal(0.0, 0.02, (30, 4)) - [0.5, 0, 0, 0]
    losses = np.concatenate([rng.uniform(0.5, 0.6, 40), rng.uniform(0.2, 0.3, 30)])
    return np.vstack([a, b]), losses


def test_clusters_are_numbered_by_paired_standing_with_centre_and_spread():
    rng = np.random.default_rng(4)
    offsets, losses = two_blobs(rng)
    labels = np.where(offsets[:, 0] > 0, 7, 3)
    labels[0] = -1  # noise
    places = np.where(labels == 3, 0.1, 0.8)
    places[45] = 0.0
    clusters = cluster_summaries(offsets, losses, labels, places)
    assert [c["cluster"] for c in clusters] == [1, 2] and [c["label"] for c in clusters] == [3, 7]
    assert clusters[0]["count"] == 30 and clusters[1]["count"] == 39
    assert np.allclose(clusters[0]["centre"], offsets[labels == 3].mean(axis=0))
    assert np.allclose(clusters[0]["spread"], offsets[labels == 3].std(axis=0))
    assert clusters[0]["best"] == 45 and clusters[0]["best_loss"] == losses[45]
    assert clusters[0]["standing"] == pytest.approx(0.1)
    result = weight_map(offsets, losses, places, clusterer=lambda x, size: np.where(x[:, 0] > 0, 0, 1))
    assert result["clustered"] and set(result["cluster_of"]) == {1, 2}
    assert result["cluster_of"][-1] == 1  # the second blob stands better in its generations


def test_a_cluster_with_the_lowest_loss_on_easy_seeds_does_not_rank_first():
    """Cluster A trains on easy seeds (low losses) and loses there; cluster B wins on hard seeds."""
    from prompt_pinning.run.paired import SeedLoss, standing

    #            A     noise  A     noise  B     noise  B     noise
    losses = np.array([0.12, 0.10, 0.13, 0.11, 0.55, 0.60, 0.56, 0.61])
    blocks = [1, 1, 2, 2, 3, 3, 4, 4]
    labels = np.array([0, -1, 0, -1, 1, -1, 1, -1])
    offsets = np.array([[1.0, 0], [0, 0], [1.1, 0], [0, 0.1], [-1.0, 0], [0, 0.2], [-1.1, 0], [0, 0.3]])
    places = np.array(standing(list(range(8)), lambda k: SeedLoss(float(losses[k]), blocks[k])))
    assert places.tolist() == [1, 0, 1, 0, 0, 1, 0, 1]
    clusters = cluster_summaries(offsets, losses, labels, places)
    assert [c["label"] for c in clusters] == [1, 0]  # B first, though A holds the lowest raw losses
    assert clusters[0]["best"] == 6 and clusters[0]["best_loss"] == 0.56  # the latest among equals


def test_without_hdbscan_the_map_says_how_to_get_clusters(monkeypatch):
    import builtins

    real = builtins.__import__

    def refuse(name, *args, **kwargs):
        if name.startswith(("sklearn", "hdbscan", "umap")):
            raise ImportError(name)
        return real(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", refuse)
    rng = np.random.default_rng(5)
    offsets, losses = two_blobs(rng)
    result = weight_map(offsets, losses, np.zeros(len(losses)))
    assert result["method"] == "pca" and not result["clustered"] and result["clusters"] == []
    assert (result["cluster_of"] == 0).all()


@pytest.mark.skipif(hdbscan_clusterer() is None, reason="HDBSCAN (scikit-learn >= 1.3 or hdbscan) not installed")
def test_hdbscan_finds_two_separate_groups():
    rng = np.random.default_rng(6)
    offsets, losses = two_blobs(rng)
    result = weight_map(offsets, losses, np.zeros(len(losses)), method="pca")
    assert len(result["clusters"]) == 2
    assert sorted(c["count"] for c in result["clusters"]) == [30, 40]


def test_a_run_report_shows_the_maps_with_unit_text_escaped(tmp_path):
    from synthetic_run import synthetic_run

    from prompt_pinning.run.records import UnitRow
    from prompt_pinning.reports import ReportWriter

    units = [UnitRow("<img src=x>", "positive", 1.0), UnitRow("red", "positive", 1.0),
             UnitRow("blurry", "negative", 1.0)]
    run_dir = tmp_path / "run"
    writer = ReportWriter(worker="thread")
    synthetic_run(run_dir, writer, generations=3, population=5, batch=2, side=16, units=units)
    assert writer.errors == []
    page = (run_dir / "index.html").read_text()
    assert "Where each unit acts" in page and 'src="influence_maps.png"' in page
    assert "Map of the explored weights" in page and 'src="weight_map.png"' in page
    assert "<img src=x>" not in page and "&lt;img src=x&gt;" in page
    info = json.loads((run_dir / maps_job.INFLUENCE_JSON).read_text())
    assert [u["label"] for u in info["units"]] == ["<img src=x>", "red", "blurry (neg)"]
    assert info["individuals"] == 15
    points = json.loads((run_dir / maps_job.WEIGHT_MAP_JSON).read_text())["points"]
    assert len(points) == 16  # the baseline and every individual


def test_install_adds_the_map_packages_only_when_enabled(monkeypatch):
    import importlib.util
    from pathlib import Path

    spec = importlib.util.spec_from_file_location("install_under_test", Path(__file__).parents[1] / "install.py")
    install = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(install)
    monkeypatch.setattr(install, "installed_version",
                        lambda name: None if name in install.OPTIONAL_MAPS else install.EXACT.get(name, "9"))
    assert install.missing_requirements({}) == []
    assert install.missing_requirements({"PROMPT_PINNING_MAPS": "0"}) == []
    assert install.missing_requirements({"PROMPT_PINNING_MAPS": "1"}) == []  # the required ones are there
    assert install.missing_requirements({"PROMPT_PINNING_MAPS": "1"}, optional=True) == ["scikit-learn>=1.3",
                                                                                         "umap-learn"]
    assert install.missing_requirements({"PROMPT_PINNING_MAPS": "0"}, optional=True) == []


def test_umap_lays_out_separate_groups_apart_when_installed():
    pytest.importorskip("umap")
    rng = np.random.default_rng(7)
    offsets, losses = two_blobs(rng)
    result = weight_map(offsets, losses, np.zeros(len(losses)))
    assert result["method"] == "umap"
    xy = result["xy"]
    a, b = xy[:40], xy[40:]
    gap = np.linalg.norm(a.mean(axis=0) - b.mean(axis=0))
    assert gap > 3 * max(a.std(axis=0).max(), b.std(axis=0).max())
