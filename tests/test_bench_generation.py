"""bench_generation.py at tiny sizes on the CPU: it runs the loop and writes the JSON the docs describe."""
import importlib
import json

import pytest
import torch

import diffusers  # noqa: F401  (a test dependency: fail, never skip, without it)


@pytest.fixture(scope="module")
def bench():
    return importlib.import_module("bench_generation")  # benchmarks/ is on the path (conftest)


@pytest.mark.slow
def test_tiny_run_writes_every_field(bench, tmp_path, capsys):
    threads = torch.get_num_threads()
    out = tmp_path / "bench.json"
    bench.main(["--tiny", "--modes", "a", "d", "--batch", "2", "--steps", "3", "--lambda", "2",
                "--json", str(out)])
    torch.set_num_threads(threads)  # --tiny runs on one thread
    record = json.loads(out.read_text())
    assert "(d) population batched, hyperbatch" in capsys.readouterr().out
    assert record["tiny"] and record["card"].startswith("CPU") and record["date"][:4].isdigit()
    assert record["settings"] == {"size": 32, "batch": 2, "steps": 3, "lambda_": 2, "generations": 1}
    a, d = record["modes"]["a"], record["modes"]["d"]
    assert record["d_over_a"] == pytest.approx(d["sampling_s"] / a["sampling_s"])
    assert record["d_over_a_generation_wall"] == pytest.approx(d["generation_wall_s"] / a["generation_wall_s"])
    assert set(record["meets_targets"]) == {"d_over_a", "outside_unet_vae_share_d"}
    # (a) renders each of the 2 individuals in its own call; (d) packs both into one.
    assert a["images_per_sampler_call"] == [2, 2] and d["images_per_sampler_call"] == [4]
    for mode in (a, d):
        stages = mode["stages_s"]
        assert set(stages) == {"sampler", "vae", "flip", "optimizer", "reports"}
        assert all(v > 0 for v in stages.values())
        assert mode["generation_wall_s"] == pytest.approx(sum(stages.values()) + mode["other_s"])
        assert 0 < mode["outside_unet_vae_share"] < 1
        assert [g["generation"] for g in mode["generations"]] == [1]
        assert {"text", "setup"} <= set(mode["generations"][0]["other_parts_s"])


def test_generation_rows_take_differences_between_marks(bench):
    marks = [(0, 10.0, {"sampler": 1.0, "text": 0.1}),
             (1, 14.0, {"sampler": 3.0, "vae": 0.5, "flip": 0.5, "text": 0.2}),
             (2, 20.0, {"sampler": 6.0, "vae": 1.0, "flip": 1.0, "optimizer": 0.1, "text": 0.3})]
    rows = bench.generation_rows(marks)
    assert [r["generation"] for r in rows] == [1, 2]
    first = rows[0]
    assert first["wall_s"] == 4.0 and first["stages_s"]["sampler"] == 2.0
    assert first["other_s"] == pytest.approx(4.0 - 2.0 - 0.5 - 0.5)
    assert first["other_parts_s"]["text"] == pytest.approx(0.1)
    assert first["outside_unet_vae_share"] == pytest.approx((4.0 - 2.5) / 4.0)
    summary = bench.summarise(rows)
    assert summary["sampling_s"] == pytest.approx((2.0 + 3.0) / 2)


def test_timed_optimizer_counts_time_and_hands_out_the_optimizer_state(bench):
    from diffusers_renderer import StageClock

    from prompt_pinning.config import PinningConfig
    from prompt_pinning.search.optimizer import CmaOptimizer

    clock = StageClock("cpu", enabled=True)
    timed = bench.TimedOptimizer([3, 1, 2], clock)
    timed.sort()
    assert timed.inner == [1, 2, 3] and clock.seconds["optimizer"] > 0
    optimizer = CmaOptimizer(PinningConfig("a red circle"), 3, cma_seed=1)
    scalars, arrays = bench.TimedOptimizer(optimizer, clock).state()
    assert scalars["sigma"] == optimizer.strategy.sigma and arrays["C"] is optimizer.strategy.C
