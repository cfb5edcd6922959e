"""What a run shows is paired: the result on the user's seeds, no choice across seed blocks,
variation seeds, weights kept in bounds, and resume as a replay of the journal."""
import json
import random
import re

import numpy as np
import pytest
import torch

from prompt_pinning.run import checkpoint as ckpt
from prompt_pinning.run.builders import Builders, build_loss
from prompt_pinning.run.plan import RunPlan
from prompt_pinning.rendering import RenderedBatch
from prompt_pinning.search.seed_blocks import block_settings, noise_keys
from test_run import (TARGET, FakeLoss, FakeRenderer, FakeVector, fake_builders, make_config, resume_pinning,
                      run_pinning, validation_entries)


def test_the_result_is_shown_on_the_users_seeds_next_to_the_baseline(outdir):
    from prompt_pinning.reports import ReportWriter

    renderer = FakeRenderer()
    result = run_pinning(make_config(outdir, validation_batches=1, seed_schedule="rotating", targets=["t.png"],
                                     initial_std=0.2), renderer, sink=ReportWriter())
    assert result.best.generation > 0
    assert result.best.seeds == result.baseline.seeds == [5, 6]
    (again,) = FakeRenderer().render([(result.best.positive, result.best.negative)],
                                     make_config(outdir).generation)
    assert torch.equal(result.best.images, again.images)  # the result's prompt on the user's seeds
    assert renderer.first_seeds[-1] == 5
    folder = result.run_dir / "result"
    assert sorted(p.name for p in folder.glob("*.png")) == ["00-5.png", "01-6.png"]
    page = (result.run_dir / "index.html").read_text()
    validation = f"seeds {result.validation_seeds[0]}-{result.validation_seeds[-1]}"
    assert "seeds 5–6" in page and f"on the validation seeds ({validation}; held out" in page
    assert "on your seeds (seeds 5-6): unmodified" in page
    for record in (result.baseline, result.best):  # both on the same validation seeds, side by side
        names = sorted(p.name for p in (result.run_dir / "validation" / record.individual_id).glob("*.png"))
        assert names == [f"0{k}-{seed}.png" for k, seed in enumerate(result.validation_seeds)]
        assert f'src="validation/{record.individual_id}/{names[0]}"' in page
    final = json.loads((result.run_dir / "final_result.json").read_text())
    assert final["best"]["seeds"] == [5, 6] and final["best"]["folder"] == "result"


def test_every_headline_number_is_paired(outdir):
    result = run_pinning(make_config(outdir, validation_batches=2), FakeRenderer())
    validated = {e["id"]: e for e in validation_entries(result)}
    baseline, best = validated[result.baseline.individual_id], validated[result.best.individual_id]
    assert result.paired.basis == "validation seeds"
    assert (result.paired.baseline, result.paired.result) == (baseline["loss"], best["loss"])
    assert result.paired.improvement == pytest.approx((baseline["loss"] - best["loss"]) / baseline["loss"])
    final = [e for e in ckpt.read_evaluations(result.run_dir) if e.get("final")][0]
    assert result.user_seeds == type(result.user_seeds)("your seeds", result.baseline.loss, final["loss"])
    assert list(result.user_seeds.seeds) == final["seeds"] and list(result.paired.seeds) == result.validation_seeds
    off = run_pinning(make_config(outdir, validation_batches=0), FakeRenderer())
    assert off.paired is off.user_seeds and off.paired.basis == "your seeds"


class LuckyBlockLoss(FakeLoss):
    """Any image on generation 2's seeds scores (almost) zero: a lucky seed block."""

    def evaluate_many(self, images_list, traces_list, seeds_list=None):
        results = super().evaluate_many(images_list, traces_list, seeds_list)
        for result, seeds in zip(results, seeds_list):
            if seeds and seeds[0] == 5 + 2 * 2:
                result.value = 1e-9 * result.value
        return results


@pytest.mark.parametrize("validation", [0, 1])
def test_no_candidate_wins_by_its_lucky_seed_block(outdir, validation):
    result = run_pinning(make_config(outdir, validation_batches=validation, seed_schedule="rotating"),
                         FakeRenderer(), builders=fake_builders(loss=LuckyBlockLoss))
    lucky = {r.individual_id for r in result.hall_of_fame if r.generation == 2}
    if validation:
        assert result.best.validation_loss == min(v["loss"] for v in validation_entries(result))
        # each point validates the leader of its own block only
        points = {e["generation"]: e for e in validation_entries(result)}
        for record in result.generations:
            if record.validated_id is not None:
                assert points[record.generation]["of"][0] == record.generation
    else:  # the latest block's leader is the one tried on the user's seeds; it is kept only if it wins there
        final = [e for e in ckpt.read_evaluations(result.run_dir) if e.get("final")][0]
        assert final["of"][0] == 4 and not lucky
        assert result.best.generation == (4 if final["loss"] < result.baseline.loss else 0)
    assert result.best.generation != 2 or validation
    assert all(line["best"] == line["min"] for line in result.logbook)  # rotating: no best across blocks


def test_variation_seeds_name_each_images_noise_and_shift_by_block(outdir):
    settings = make_config(outdir).generation.with_(subseed=40, subseed_strength=0.5)
    assert noise_keys(settings) == [(5, 40, 0.5), (6, 41, 0.5)]
    shifted = block_settings(settings, 3)
    assert (shifted.seed, shifted.subseed) == (11, 46)
    assert not set(noise_keys(shifted)) & set(noise_keys(settings))


class HostLikeRenderer(FakeRenderer):
    """Reports a variation batch's seeds as A1111 does: one seed for every image."""

    def render(self, prompts, settings, progress=None):
        batches = super().render(prompts, settings, progress)
        return [RenderedBatch(images=b.images, seeds=[settings.seed] * len(b.seeds)) for b in batches]


def test_a_run_with_variation_seeds_keeps_its_pairs_and_pairs_its_result(outdir):
    config = make_config(outdir, validation_batches=1, generations=2)
    config.generation = config.generation.with_(subseed=40, subseed_strength=0.5)
    builders = Builders(vector=lambda c, r: FakeVector(c.positive, c.negative), targets=lambda c: None,
                        loss=build_loss)  # the real loss, with its same-noise rule
    result = run_pinning(config, HostLikeRenderer(), builders=builders)
    assert result.stop_reason == "completed"
    entries = ckpt.read_individuals(result.run_dir)
    # the baseline (the target's own noise) leaves its B same-noise pairs out; no other block loses any
    counts = {len(e["pair_losses"]) for e in entries[1:]}
    assert len(counts) == 1 and len(entries[0]["pair_losses"]) == counts.pop() - 2
    assert result.paired.basis == "validation seeds" and result.user_seeds is not None


class BoundedVector(FakeVector):
    def render(self, offsets):
        from prompt_pinning.run import driver as run_module

        weights = np.abs(self.base_weights + offsets)
        if not np.all(weights <= run_module.MAX_PROMPT_WEIGHT + 1e-9):
            raise ValueError(f"weight {weights.max()} beyond the bound")
        return super().render(offsets)


def test_a_sample_beyond_the_weight_bound_is_clipped_and_penalised_not_fatal(outdir, monkeypatch):
    from prompt_pinning.run import driver as run_module

    monkeypatch.setattr(run_module, "MAX_PROMPT_WEIGHT", 1.5)  # a bound that samples of std 1 cross often
    result = run_pinning(make_config(outdir, initial_std=1.0, generations=2, validation_batches=0),
                         FakeRenderer(), builders=fake_builders(vector=BoundedVector))
    assert result.stop_reason == "completed"
    entries = ckpt.read_individuals(result.run_dir)
    assert all(np.all(np.abs(1 + np.array(e["offsets"])) <= 1.5 + 1e-9) for e in entries)
    assert any(e["extra"]["penalty"] > 0 for e in entries)
    assert all(e["extra"]["fitness"][0] >= e["loss"] for e in entries if e["extra"]["fitness"])


class HostRenderer(FakeRenderer):
    def __init__(self, model="abc123", **kw):
        super().__init__(**kw)
        self.model = model

    def host_settings(self):
        return {"model": self.model, "clip_skip": 1, "mode": "txt2img"}


def test_resume_refuses_another_model_or_plan_naming_it(outdir):
    stopped = run_pinning(make_config(outdir), HostRenderer(), should_stop=lambda: True)
    with pytest.raises(ckpt.ResumeError, match=r"model: the run used 'abc123', this renderer has 'fff000'"):
        resume_pinning(stopped.run_dir, HostRenderer(model="fff000"))
    path = stopped.run_dir / ckpt.CONFIG_FILE
    saved = json.loads(path.read_text())
    saved["resolved"]["plan"]["validation_points"] = [1]
    path.write_text(json.dumps(saved))
    with pytest.raises(ckpt.ResumeError, match="plan.*validation_points"):
        resume_pinning(stopped.run_dir, HostRenderer())


def test_an_interrupted_resume_still_returns_the_selected_images_and_counts_match(outdir):
    done = []
    cut = run_pinning(make_config(outdir, validation_batches=1), FakeRenderer(),
                      should_stop=lambda: bool(done) and done[-1] >= 12, progress=lambda s, d, t: done.append(d))
    again = []
    renderer = FakeRenderer()
    resumed = resume_pinning(cut.run_dir, renderer, should_stop=lambda: bool(again) and again[-1] >= 20,
                             progress=lambda s, d, t: again.append(d))
    assert resumed.stop_reason == "interrupted" and resumed.best is not None
    assert resumed.best.images.numel() > 0  # the selection so far, from its saved batch
    assert again[0] == done[-1]  # a resume counts from what its journal holds
    stages, renderer = [], FakeRenderer()
    final = resume_pinning(cut.run_dir, renderer, progress=lambda s, d, t: stages.append((s, d, t)))
    total = final.config["resolved"]["total_evaluations"]
    assert stages[-1][1] == stages[-1][2] == total
    assert sum(renderer.calls) == total - stages[0][1] - (final.best.generation == 0)  # what it counts, it renders
    for stage, _, _ in stages:  # no "validation 33/32"
        for done_, total in re.findall(r"(\d+)/(\d+)", stage):
            assert int(done_) <= int(total)


def test_the_plan_counts_every_render_before_the_first():
    plan = RunPlan(units=3, generations=4, schedule="rotating", first_population=5, population=6,
                   validation_batches=2, validation_blocks=(5, 6), validation_points=(2, 4), with_centroid=True)
    calls = plan.renders_to_come(baseline=False, baseline_validated=False, next_generation=0, centroid=False,
                                 centroid_validated=False, result=False)
    assert sum(size * count for size, count in calls) == plan.total == 1 + 5 + 18 + 1 + (1 + 2 + 1) * 2 + 1
    later = plan.renders_to_come(baseline=True, baseline_validated=True, next_generation=3, centroid=False,
                                 centroid_validated=False, result=False)
    assert sum(size * count for size, count in later) == 6 * 2 + 2 + 1 + 2 + 1


def _comparable(final: dict) -> dict:
    """final_result.json without what differs between two folders (names, paths, timings)."""
    def strip(value):
        if isinstance(value, dict):
            return {k: strip(v) for k, v in value.items()
                    if k not in ("run", "run_dir", "outdir", "folder", "dir", "images", "errors")
                    and "seconds" not in k}
        if isinstance(value, list):
            return [strip(v) for v in value]
        return value
    return strip(final)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_run_stopped_at_a_random_event_resumes_to_the_same_final_result(outdir, seed):
    from prompt_pinning.reports import ReportWriter

    cfg = dict(validation_batches=1, generations=3, seed_schedule="rotating")
    full = run_pinning(make_config(outdir / "full", **cfg), FakeRenderer(), sink=ReportWriter())
    total = full.config["resolved"]["total_evaluations"]
    cut_at = random.Random(seed).randrange(1, total)
    done = []
    stopped = run_pinning(make_config(outdir / "cut", **cfg), FakeRenderer(), sink=ReportWriter(),
                          should_stop=lambda: bool(done) and done[-1] >= cut_at,
                          progress=lambda s, d, t: done.append(d))
    assert stopped.stop_reason == "interrupted"
    resumed = resume_pinning(stopped.run_dir, FakeRenderer(), sink=ReportWriter())
    read = lambda r: json.loads((r.run_dir / "final_result.json").read_text())
    assert _comparable(read(resumed)) == _comparable(read(full))
    assert torch.equal(resumed.best.images, full.best.images)


def test_target_images_stay_the_target_through_a_resume(outdir):
    result = run_pinning(make_config(outdir, targets=["t.png"], generations=2), FakeRenderer())
    assert torch.equal(ckpt.load_images(result.run_dir / ckpt.TARGETS_FILE, make_config(outdir).generation)[0],
                       TARGET)


class UsersSeedsFavourTheirPromptLoss(FakeLoss):
    """On the user's seeds (block 0) any image other than the unmodified prompt's scores badly."""

    def evaluate_many(self, images_list, traces_list, seeds_list=None):
        results = super().evaluate_many(images_list, traces_list, seeds_list)
        for result, images, seeds in zip(results, images_list, seeds_list or [None] * len(results)):
            if seeds and seeds[0] == 5 and not torch.equal(images, self.targets):
                result.value += 1.0
        return results


def test_without_validation_a_pick_that_loses_on_the_users_seeds_keeps_their_prompt(outdir):
    from prompt_pinning_webui.result_line import NO_IMPROVEMENT, result_line

    from prompt_pinning.reports import ReportWriter

    result = run_pinning(make_config(outdir, validation_batches=0, seed_schedule="rotating", generations=3),
                         FakeRenderer(), builders=fake_builders(loss=UsersSeedsFavourTheirPromptLoss),
                         sink=ReportWriter())
    final_lines = [e for e in ckpt.read_evaluations(result.run_dir) if e.get("final")]
    assert len(final_lines) == 1 and final_lines[0]["id"] != result.baseline.individual_id
    assert final_lines[0]["loss"] > result.baseline.loss  # the search's pick, rendered on the user's seeds
    assert result.best.individual_id == result.baseline.individual_id
    assert not np.any(result.best.offsets)
    assert result_line(result) == NO_IMPROVEMENT
    assert result.user_seeds.improvement == 0.0
    saved = json.loads((result.run_dir / "final_result.json").read_text())
    assert saved["best"]["id"] == result.baseline.individual_id
    again = resume_pinning(result.run_dir, FakeRenderer(), builders=fake_builders(loss=UsersSeedsFavourTheirPromptLoss))
    assert again.best.individual_id == result.baseline.individual_id  # a replay keeps the same choice
