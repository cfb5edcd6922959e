"""start_from: a new run starts at one cluster of an earlier run's map of explored weights."""
from __future__ import annotations

import json

import numpy as np
import pytest

from prompt_pinning.builtin import BuiltinRenderer
from prompt_pinning.config import PinningConfig
from prompt_pinning.search.optimizer import make_optimizer
from prompt_pinning.options import ConfigError
from prompt_pinning.reports import ReportWriter
from prompt_pinning.reports import weight_map as weight_map_module
from prompt_pinning.rendering import GenerationSettings
from prompt_pinning.run import run_pinning
from prompt_pinning.search.start_from import cluster_start, parse_start_from, saved_start

LABELS = ["a", "red", "circle", "green (neg)"]
PROMPT, NEGATIVE = "a red circle", "green"


def small_config(tmp_path, **changes):
    settings = GenerationSettings(seed=5, batch_size=2, steps=4, width=32, height=32)
    return PinningConfig(positive=PROMPT, negative=NEGATIVE, generation=settings, generations=3, lambda_=6,
                         validation_batches=0, outdir=tmp_path, cma_seed=3, **changes)


def fake_run(tmp_path, clusters, labels=LABELS, clustered=True):
    run_dir = tmp_path / "00000007"
    run_dir.mkdir()
    (run_dir / "prompt_pinning_run.json").write_text('{"format": "prompt pinning run", "version": 2}')
    (run_dir / "weight_map.json").write_text(json.dumps(
        {"unit_labels": labels, "clusters": clusters, "clustered": clustered, "points": []}))
    return run_dir


def cluster(number, centre, spread):
    return {"cluster": number, "count": 9, "centre": centre, "spread": spread, "best_loss": 0.4}


def test_parse_start_from_takes_the_last_colon():
    assert parse_start_from("C:/runs/00000003:2") == (parse_start_from("C:/runs/00000003:2")[0], 2)
    assert str(parse_start_from("runs/00000003:12")[0]) == "runs/00000003"
    for bad in ("runs/00000003", "runs/00000003:", "runs/00000003:0", "runs/00000003:x", ":2"):
        with pytest.raises(ConfigError, match="start_from: must be RUN_FOLDER:CLUSTER"):
            parse_start_from(bad)


def test_a_cluster_gives_centre_sigma_and_per_unit_spread(tmp_path):
    run_dir = fake_run(tmp_path, [cluster(1, [0.1, -0.2, 0.0, 0.3], [0.02, 0.04, 0.02, 0.04]),
                                  cluster(2, [0.0] * 4, [0.1] * 4)])
    start = cluster_start(f"{run_dir}:1", LABELS)
    assert start.centroid.tolist() == [0.1, -0.2, 0.0, 0.3]
    assert start.sigma == pytest.approx(np.sqrt(np.mean(np.square([0.02, 0.04, 0.02, 0.04]))))
    assert np.allclose(start.sigma * np.sqrt(np.diag(start.cmatrix)), [0.02, 0.04, 0.02, 0.04])
    assert cluster_start("", LABELS) is None and cluster_start(None, LABELS) is None
    again = saved_start({"start_from": start.resolved()}, 4)
    assert np.allclose(again.centroid, start.centroid) and np.allclose(again.cmatrix, start.cmatrix)


@pytest.mark.parametrize("clusters,labels,number,message", [
    ([], LABELS, 1, "has no clusters"),
    ([cluster(1, [0.0] * 4, [0.1] * 4)], LABELS[:3], 1, "differ from this prompt's"),
    ([cluster(1, [0.0] * 4, [0.1] * 4)], LABELS, 2, "no cluster 2; it has clusters \\[1\\]"),
    ([cluster(1, [0.0] * 3, [0.1] * 4)], LABELS, 1, "centre must be 4 finite numbers"),
    ([cluster(1, [0.0] * 4, [0.1, 0.1, 0.1, 1e9])], LABELS, 1, "spread must be 4 finite numbers"),
    ([cluster(1, [0.0] * 4, [0.1, 0.1, 0.1, -0.1])], LABELS, 1, "negative spread"),
])
def test_bad_maps_are_refused_naming_the_option(tmp_path, clusters, labels, number, message):
    run_dir = fake_run(tmp_path, clusters, labels=labels)
    with pytest.raises(ConfigError, match=f"start_from: .*{message}"):
        cluster_start(f"{run_dir}:{number}", LABELS)


def test_no_clusters_without_hdbscan_says_how_to_get_them(tmp_path):
    run_dir = fake_run(tmp_path, [], clustered=False)
    with pytest.raises(ConfigError, match="HDBSCAN was not installed.*scikit-learn"):
        cluster_start(f"{run_dir}:1", LABELS)


def test_only_run_folders_and_plain_files_are_read(tmp_path):
    plain = tmp_path / "plain"
    plain.mkdir()
    with pytest.raises(ConfigError, match="not a prompt pinning run folder"):
        cluster_start(f"{plain}:1", LABELS)
    run_dir = fake_run(tmp_path, [cluster(1, [0.0] * 4, [0.1] * 4)])
    real = tmp_path / "elsewhere.json"
    (run_dir / "weight_map.json").rename(real)
    (run_dir / "weight_map.json").symlink_to(real)
    with pytest.raises(ConfigError, match="symbolic link"):
        cluster_start(f"{run_dir}:1", LABELS)
    (run_dir / "weight_map.json").unlink()
    with pytest.raises(ConfigError, match="weight_map.json: is missing"):
        cluster_start(f"{run_dir}:1", LABELS)


def test_the_size_limiter_draws_its_first_parents_around_the_cluster(tmp_path):
    run_dir = fake_run(tmp_path, [cluster(1, [0.5, -0.5, 0.25, 0.0], [0.01] * 4)])
    start = cluster_start(f"{run_dir}:1", LABELS)
    config = small_config(tmp_path, size_limit=5.0).validate()
    parents = np.array(make_optimizer(config, 4, 1, start).ask())
    assert np.abs(parents - start.centroid).max() < 0.06  # 6 spreads


def test_a_run_starts_from_a_cluster_of_an_earlier_run(tmp_path, monkeypatch):
    # clusters by the sign of the first offset, standing in for HDBSCAN (not always installed)
    monkeypatch.setattr(weight_map_module, "hdbscan_clusterer",
                        lambda: (lambda x, size: (x[:, 0] > 0).astype(int)))
    first = run_pinning(small_config(tmp_path), BuiltinRenderer(), sink=ReportWriter(worker="thread"))
    data = json.loads((first.run_dir / "weight_map.json").read_text())
    assert data["clustered"] and data["unit_labels"] == LABELS and len(data["clusters"]) == 2
    chosen = data["clusters"][1]
    page = (first.run_dir / "index.html").read_text()
    assert "2 HDBSCAN clusters" in page and "--start-from THIS_RUN_FOLDER:NUMBER" in page
    assert page.count('<figure class="card batch"><figcaption>cluster ') == 2
    second = run_pinning(small_config(tmp_path, start_from=f"{first.run_dir}:2"), BuiltinRenderer())
    resolved = json.loads((second.run_dir / "run_config.json").read_text())["resolved"]
    assert np.allclose(resolved["initial_centroid"], chosen["centre"])
    assert resolved["start_from"]["cluster"] == 2
    assert resolved["sigma"] == pytest.approx(np.sqrt(np.mean(np.square(chosen["spread"]))))
    with pytest.raises(ConfigError, match="differ from this prompt's"):
        run_pinning(PinningConfig(positive="a blue square", generation=small_config(tmp_path).generation,
                                  outdir=tmp_path, start_from=f"{first.run_dir}:1"), BuiltinRenderer())
