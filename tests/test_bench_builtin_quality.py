"""bench_builtin_quality.py in its quick mode at a tiny size: it measures every target and writes them."""
import importlib
import json

import pytest
import torch


@pytest.fixture(scope="module")
def bench():
    return importlib.import_module("bench_builtin_quality")  # benchmarks/ is on the path (conftest)


@pytest.mark.slow
def test_quick_run_reports_every_target(bench, tmp_path, capsys):
    threads = torch.get_num_threads()
    out = tmp_path / "quality.json"
    bench.main(["--quick", "--size", "16", "--steps", "4", "--json", str(out)])
    torch.set_num_threads(threads)  # the benchmark runs on one thread
    record = json.loads(out.read_text())
    summary = record["summary"]
    for key in ("min_distinct", "max_step_share", "colour_meaning_soft", "colour_meaning_hard", "size_meaning",
                "faithful_all_three", "min_layouts_per_batch", "distinct_losses", "seconds_per_individual",
                "repeat_equal", "packing_equal", "threads_equal"):
        assert key in summary, key
    assert len(record["sweeps"]) == sum(len(bench.split_words(p)) for p in bench.QUICK_PROMPTS)  # every word
    assert all(s["distinct"] <= len(bench.QUICK_SWEEP) for s in record["sweeps"])
    assert summary["repeat_equal"] and summary["packing_equal"]
    printed = capsys.readouterr().out
    assert "continuity" in printed and "pinning" in printed


def test_classifier_reads_shapes_and_colours(bench):
    from prompt_pinning.builtin.layouts import PALETTE, SHAPES
    classify = bench.ShapeClassifier()
    assert bench.classifier_accuracy(classify, count=21) >= 0.8
    image = torch.ones((3, 64, 64)) * torch.tensor(PALETTE["blue"])[:, None, None]
    image[:, 20:44, 20:44] = torch.tensor(PALETTE["red"])[:, None, None]
    seen = bench.read_image(image, classify)
    assert seen["background"] == "blue" and seen["colour"] == "red" and seen["shape"] in SHAPES
    assert seen["area"] == pytest.approx(24 * 24 / 64**2)
    assert bench.prompt_tags("a red circle on a (blue:1.2) background") == {
        "shape": "circle", "colour": "red", "background": "blue"}
