"""bench_quality.py in its quick mode at a tiny size: it runs, counts and writes its JSON."""
import importlib
import json
import sys

import numpy as np
import pytest
import torch


@pytest.fixture(scope="module")
def bench():
    return importlib.import_module("bench_quality")  # benchmarks/ is on the path (conftest)


@pytest.mark.slow
def test_quick_mode_at_a_tiny_size_writes_runs_and_summaries(bench, tmp_path, capsys):
    threads = torch.get_num_threads()
    out = tmp_path / "quality.json"
    record = bench.main(["--quick", "--prompts", "1", "--generations", "2", "--size", "16", "--batch-size", "2",
                         "--steps", "3", "--configs", "fixed:1:union,rotating:0:target", "--json", str(out)])
    torch.set_num_threads(threads)
    assert json.loads(out.read_text())["summaries"].keys() == record["summaries"].keys() == {
        "fixed:1:union", "rotating:0:target"}
    runs = record["runs"]
    assert len(runs) == 2 and all(len(r["heldout_result"]) == 2 for r in runs)  # quick: 2 held-out batches
    validated, plain = runs
    # every render is counted in the run's progress total, validation included
    assert validated["validation_renders"] > 0 and plain["validation_renders"] == 0
    assert all(r["training_renders"] + r["validation_renders"] + r["result_renders"] + r["reference_renders"]
               == r["progress_total"] for r in runs)
    assert validated["reference_renders"] == 0 and plain["reference_renders"] == 2  # guard on: rotating blocks 1, 2
    summary = record["summaries"]["fixed:1:union"]
    assert summary["validation_cost"] == pytest.approx(validated["validation_renders"] / validated["training_renders"])
    gain = (validated["own_seeds_baseline"] - validated["own_seeds_result"]) / validated["own_seeds_baseline"]
    assert summary["mean_own_seeds_improvement"] == pytest.approx(gain)
    assert set(summary["targets_met"]) == {"heldout_over_own_seeds", "prompts_significant", "beats_random",
                                           "validation_cost", "heldout_improvement", "subject_kept"}
    assert np.isfinite(validated["heldout_baseline"]).all()
    assert record["self_comparison"]["kept"]["n"] == 3  # at least 3 batches, each the target once
    # held-out image measures, per seed, beside the loss
    assert len(validated["heldout_subject_kept"]) == len(validated["heldout_contrast_result"]) == 2 * 2
    assert summary["prompts_faded"] in (0, 1) and set(summary["per_prompt_images"]) == {runs[0]["prompt"]}
    # the subject's own pixels: one share per held-out image (None where the unmodified image has no subject)
    assert len(validated["heldout_subject_separation"]) == len(validated["heldout_subject_colour"]) == 2 * 2
    assert summary["prompts_losing_subject"] in (0, 1)
    printed = capsys.readouterr().out
    assert "CMA beats random" in printed and "subject kept" in printed and "subject colour kept" in printed


def test_quick_mode_keeps_explicit_sizes(bench):
    args = bench.parse_args(["--quick", "--prompts", "3"])
    assert (args.prompts, args.cma_seeds, args.heldout_batches, args.generations) == (3, 1, 2, 3)
    with pytest.raises(SystemExit):
        bench.parse_args(["--prompts", "9"])


def test_tied_share_counts_equal_losses_within_a_generation_only(bench):
    entries = [{"generation": 1, "loss": 0.5}, {"generation": 1, "loss": 0.5}, {"generation": 1, "loss": 0.4},
               {"generation": 2, "loss": 0.4}]
    assert bench.tied_share(entries) == 2 / 4


def test_configs_take_a_fade_guard_weight(bench):
    plain, guarded = bench.parse_configs("rotating:1:union,fixed:0:target:kept:guard=0.5")
    assert plain.fade_guard is None and guarded.fade_guard == 0.5 and guarded.same_seed_pairs == "kept"
    assert guarded.name == "fixed:0:target:kept:guard=0.5"
    for bad in ("rotating:1:union:guard=-1", "rotating:1:union:guard=x", "rotating:1:union:other"):
        with pytest.raises(SystemExit):
            bench.parse_configs(bad)


def test_subject_kept_is_the_share_of_each_seeds_picture_left():
    import subject_measures

    baseline = torch.rand(3, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    mean = baseline.mean(dim=(2, 3), keepdim=True)
    faded = mean + torch.tensor([1.0, 0.5, 0.0]).view(3, 1, 1, 1) * (baseline - mean)
    np.testing.assert_allclose(subject_measures.subject_kept(faded, baseline), [1.0, 0.5, 0.0], atol=1e-6)
    other = torch.rand(3, 3, 8, 8, generator=torch.Generator().manual_seed(1))
    assert np.all(np.abs(subject_measures.subject_kept(other, baseline)) < 0.5)  # an unrelated picture


def test_fading_summary_flags_prompts_that_lose_more_than_a_tenth(bench):
    import subject_measures

    def run(prompt, contrast_after, colour_after):
        return {"prompt": prompt, "negative": "", "heldout_baseline": [1.0], "heldout_result": [0.9],
                "heldout_contrast_baseline": [0.2], "heldout_contrast_result": [contrast_after],
                "heldout_colour_baseline": [0.5], "heldout_colour_result": [colour_after],
                "heldout_subject_kept": [0.8]}

    fading = subject_measures.summary([run("a", 0.19, 0.5), run("b", 0.2, 0.4), run("c", 0.3, 0.6)])
    assert fading["prompts_faded"] == 1  # "b" lost 20% of its colourfulness; "a" only 5% of contrast
    assert fading["worst_contrast_change"] == pytest.approx(-0.05)
    assert fading["worst_colour_change"] == pytest.approx(-0.2)
    assert fading["per_prompt_images"]["a"]["loss_change"] == pytest.approx(-0.1)


def test_seed_stats_measures_each_prompts_spread_across_seed_blocks(capsys):
    seed_stats = importlib.import_module("bench_seed_stats")
    threads = torch.get_num_threads()
    spread = seed_stats.main(["--blocks", "3", "--size", "16", "--steps", "3", "--batch-size", "2"])
    torch.set_num_threads(threads)
    assert len(spread) == 8 and all(len(cv) == 2 and min(cv) >= 0 for cv in spread.values())
    assert any(max(cv) > 0 for cv in spread.values())  # different seeds, different pictures
    assert "CV across blocks" in capsys.readouterr().out
