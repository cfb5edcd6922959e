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
    assert all(r["training_renders"] + r["validation_renders"] + r["result_renders"] == r["progress_total"]
               for r in runs)
    summary = record["summaries"]["fixed:1:union"]
    assert summary["validation_cost"] == pytest.approx(validated["validation_renders"] / validated["training_renders"])
    gain = (validated["training_baseline"] - validated["training_result"]) / validated["training_baseline"]
    assert summary["mean_training_improvement"] == pytest.approx(gain)
    assert set(summary["targets_met"]) == {"heldout_over_training", "prompts_significant", "beats_random",
                                           "validation_cost"}
    assert np.isfinite(validated["heldout_baseline"]).all()
    assert record["self_comparison"]["kept"]["n"] == 3  # at least 3 batches, each the target once
    assert "CMA beats random" in capsys.readouterr().out


def test_quick_mode_keeps_explicit_sizes(bench):
    args = bench.parse_args(["--quick", "--prompts", "3"])
    assert (args.prompts, args.cma_seeds, args.heldout_batches, args.generations) == (3, 1, 2, 3)
    with pytest.raises(SystemExit):
        bench.parse_args(["--prompts", "9"])


def test_tied_share_counts_equal_losses_within_a_generation_only(bench):
    entries = [{"generation": 1, "loss": 0.5}, {"generation": 1, "loss": 0.5}, {"generation": 1, "loss": 0.4},
               {"generation": 2, "loss": 0.4}]
    assert bench.tied_share(entries) == 2 / 4
