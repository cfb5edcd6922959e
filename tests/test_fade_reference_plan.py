"""The fade guard's reference renders are part of the run: planned, journaled, counted and replayed."""
import json
import random

import numpy as np
import pytest

from prompt_pinning.builtin import BuiltinRenderer
from prompt_pinning.config import PinningConfig
from prompt_pinning.rendering import GenerationSettings
from prompt_pinning.reports import ReportWriter
from prompt_pinning.run import checkpoint as ckpt
from prompt_pinning.run import resume_pinning, run_pinning
from prompt_pinning.run.plan import make_plan
from prompt_pinning.score import fade_guard
from prompt_pinning.search.optimizer import make_optimizer
from prompt_pinning.search.seed_blocks import block_settings
from test_run_paired import _comparable

PROMPT = "a purple ring on a white background"
SETTINGS = GenerationSettings(seed=3, batch_size=2, steps=3, width=16, height=16)


def plan_of(schedule, guard, targets=False, generations=5, validation_batches=1):
    config = PinningConfig(positive="x", generations=generations, seed_schedule=schedule, fade_guard=guard,
                           validation_batches=validation_batches).validate()
    return make_plan(config, 4, make_optimizer(config, 4, 0), generations, has_targets=targets)


def planned(plan, **done):
    state = {**dict(baseline=False, baseline_validated=False, next_generation=0, centroid=False,
                    centroid_validated=False, result=False), **done}
    return sum(size * count for size, count in plan.renders_to_come(**state))


@pytest.mark.parametrize("schedule", ["fixed", "rotating"])
def test_the_plan_counts_a_reference_render_for_each_block_the_baseline_is_not_rendered_on(schedule):
    off = plan_of(schedule, 0.0)
    assert plan_of(schedule, 0.5, targets=True) == off  # the targets are the reference: nothing to render
    on = plan_of(schedule, 0.5)
    expected = 5 if schedule == "rotating" else 0  # fixed: block 0, rendered by the baseline
    assert on.reference_renders == expected and on.reference_generations() == list(range(1, expected + 1))
    assert on.total == off.total + expected == planned(on)
    assert "reference_renders" not in off.to_dict()  # the plan of a run without them, as before
    if expected:
        assert on.to_dict()["reference_renders"] == expected and on.to_dict()["total"] == on.total
        (problem,) = on.differences(off.to_dict())
        assert problem.startswith("reference_renders: the run was made before") and "start it again" in problem
    else:
        assert on.to_dict() == off.to_dict()


def test_renders_to_come_interleave_the_references_with_their_generations():
    plan = plan_of("rotating", 1.0, generations=3, validation_batches=0)
    p = plan.population
    calls = plan.renders_to_come(baseline=False, baseline_validated=False, next_generation=0, centroid=False,
                                 centroid_validated=False, result=False)
    first = plan.first_population
    assert calls == [(1, 2), (first, 1), (1, 1), (p, 1), (1, 1), (p, 1), (1, 2)]  # centroid and result last
    # resumed in generation 2 with its reference done: only generation 3's is to come
    later = planned(plan, baseline=True, baseline_validated=True, next_generation=2, references_done=2)
    assert later == 2 * p + 1 + 1 + 1
    assert planned(plan, baseline=True, baseline_validated=True, next_generation=2, references_done=1) == later + 1


class CountingRenderer(BuiltinRenderer):
    """The built-in model, keeping (prompt, first seed) of every finished render."""

    def __init__(self):
        super().__init__()
        self.rendered = []

    def render(self, prompts, settings, progress=None):
        batches = super().render(prompts, settings, progress)
        self.rendered += [(prompt, settings.seed) for prompt in prompts]
        return batches


def guarded_config(outdir, **changes):
    values = dict(positive=PROMPT, generation=SETTINGS, cma_seed=1, generations=3, lambda_=3, cma_logging=False,
                  fade_guard=1.0, validation_batches=1, seed_schedule="rotating", outdir=outdir)
    return PinningConfig(**{**values, **changes})


def references(run_dir):
    return {e["block"]: e for e in ckpt.read_evaluations(run_dir) if e.get("reference") is True}


def baseline_blocks(renderer, result):
    unmodified = (result.baseline.positive, result.baseline.negative)
    return [(seed - SETTINGS.seed) // SETTINGS.batch_size for prompt, seed in renderer.rendered if prompt == unmodified]


def test_a_guarded_run_renders_the_baseline_once_per_block_journals_it_and_counts_it(outdir):
    renderer, progress = CountingRenderer(), []
    result = run_pinning(guarded_config(outdir), renderer, progress=lambda *a: progress.append(a))
    assert result.stop_reason == "completed"
    plan = result.config["resolved"]["plan"]
    assert plan["reference_renders"] == 3
    # block 0 (the baseline), the generations' blocks 1-3 (references), block 4 (validation): once each
    assert sorted(baseline_blocks(renderer, result)) == [0, 1, 2, 3, 4]
    logged = references(result.run_dir)
    assert {k: e["source"] for k, e in logged.items()} == {
        0: "baseline", 4: "validation", 1: "reference", 2: "reference", 3: "reference"}
    assert [logged[g]["generation"] for g in (1, 2, 3)] == [1, 2, 3]
    fresh = BuiltinRenderer()
    for block, entry in logged.items():
        (batch,) = fresh.render([(result.baseline.positive, result.baseline.negative)],
                                block_settings(SETTINGS, block))
        assert entry["stats"] == fade_guard.batch_stats(batch.images).tolist()
    total = result.config["resolved"]["total_evaluations"]
    assert progress[-1][1] == progress[-1][2] == total == plan["total"]
    assert len(renderer.rendered) == total - (result.best.generation == 0)
    stages = [s for s, _, _ in progress if s.startswith("reference")]
    assert stages == [f"reference (generation {g})" for g in (1, 2, 3)]


def test_with_target_images_or_the_guard_off_nothing_is_journaled_or_rendered_for_it(outdir, crops):
    from PIL import Image

    target = outdir.parent / "t.png"
    Image.fromarray((crops[0, :, :16, :16].permute(1, 2, 0).numpy() * 255).astype(np.uint8)).save(target)
    for changes in (dict(fade_guard=0.0), dict(targets=[str(target)])):
        renderer = CountingRenderer()
        result = run_pinning(guarded_config(outdir, **changes), renderer)
        assert "reference_renders" not in result.config["resolved"]["plan"]
        assert not references(result.run_dir)
        assert len(renderer.rendered) == result.config["resolved"]["total_evaluations"] - (result.best.generation == 0)


@pytest.mark.parametrize("cut", ["after the first reference", "random 0", "random 1"])
def test_a_guarded_run_stopped_anywhere_resumes_without_rendering_a_reference_again(outdir, cut):
    full = run_pinning(guarded_config(outdir / "full"), BuiltinRenderer(), sink=ReportWriter())
    total = full.config["resolved"]["total_evaluations"]
    # baseline (1), its validation (2), the first reference (3)
    cut_at = 3 if cut == "after the first reference" else random.Random(int(cut[-1])).randrange(1, total)
    done = []
    stopped = run_pinning(guarded_config(outdir / "cut"), BuiltinRenderer(), sink=ReportWriter(),
                          should_stop=lambda: bool(done) and done[-1] >= cut_at,
                          progress=lambda s, d, t: done.append(d))
    assert stopped.stop_reason == "interrupted"
    known = set(references(stopped.run_dir))
    renderer, progress = CountingRenderer(), []
    resumed = resume_pinning(stopped.run_dir, renderer, sink=ReportWriter(),
                             progress=lambda *a: progress.append(a))
    assert resumed.stop_reason == "completed"
    assert known and not set(baseline_blocks(renderer, resumed)) & known  # no block's reference twice
    assert set(references(resumed.run_dir)) == {0, 1, 2, 3, 4}
    assert progress[-1][1] == progress[-1][2] == total
    read = lambda r: json.loads((r.run_dir / "final_result.json").read_text())
    assert _comparable(read(resumed)) == _comparable(read(full))


@pytest.mark.parametrize("schedule", ["fixed", "rotating"])
def test_a_guarded_folder_from_before_the_journaled_references_is_refused_by_name(outdir, schedule):
    done = []
    stopped = run_pinning(guarded_config(outdir, seed_schedule=schedule, generations=2), BuiltinRenderer(),
                          should_stop=lambda: bool(done) and done[-1] >= 3, progress=lambda s, d, t: done.append(d))
    log = stopped.run_dir / ckpt.EVALUATIONS_FILE
    kept = [line for line in log.read_text().splitlines(keepends=True) if '"reference": true' not in line]
    log.write_text("".join(kept))  # the log as the guard wrote it before: no reference lines
    config = stopped.run_dir / ckpt.CONFIG_FILE
    saved = json.loads(config.read_text())
    saved["resolved"]["plan"].pop("reference_renders", None)
    config.write_text(json.dumps(saved))
    with pytest.raises(ckpt.ResumeError) as info:
        resume_pinning(stopped.run_dir, BuiltinRenderer())
    expected = {"fixed": "written before they were journaled", "rotating": "made before the fade guard's reference"}
    assert expected[schedule] in str(info.value) and "start it again" in str(info.value)
    assert str(stopped.run_dir) in str(info.value)


def test_a_reference_line_that_does_not_fit_the_plan_is_refused(outdir):
    done = []
    stopped = run_pinning(guarded_config(outdir), BuiltinRenderer(),
                          should_stop=lambda: bool(done) and done[-1] >= 3, progress=lambda s, d, t: done.append(d))
    log = stopped.run_dir / ckpt.EVALUATIONS_FILE
    log.write_text(log.read_text().replace('"generation": 1, "block": 1', '"generation": 1, "block": 2'))
    with pytest.raises(ckpt.ResumeError, match="reference of seed block 2 does not fit the run's plan"):
        resume_pinning(stopped.run_dir, BuiltinRenderer())


def test_a_guarded_run_with_variation_seeds_finds_each_blocks_reference(outdir):
    settings = SETTINGS.with_(subseed=40, subseed_strength=0.5)
    renderer = CountingRenderer()
    result = run_pinning(guarded_config(outdir, generation=settings, generations=2), renderer)
    assert result.stop_reason == "completed"
    assert sorted(references(result.run_dir)) == [0, 1, 2, 3]  # blocks 1-2 train, block 3 validates
    assert sorted(baseline_blocks(renderer, result)) == [0, 1, 2, 3]


def test_each_evaluation_records_what_the_guard_charged_it(outdir):
    # generation 1 samples the same individuals whatever the loss: guarded minus plain is the charge
    guarded = run_pinning(guarded_config(outdir / "on", fade_tolerance=0.0), BuiltinRenderer())
    plain = run_pinning(guarded_config(outdir / "off", fade_guard=0.0), BuiltinRenderer())
    first = {e["id"]: e for e in ckpt.read_individuals(plain.run_dir) if e["generation"] == 1}
    charged = 0
    for entry in (e for e in ckpt.read_individuals(guarded.run_dir) if e["generation"] == 1):
        penalty = entry["extra"].get("fade_penalty", 0.0)
        assert entry["loss"] - first[entry["id"]]["loss"] == pytest.approx(penalty, abs=1e-9)
        charged += penalty > 0
    assert charged > 0  # with no tolerance, some of generation 1 lost contrast or colour
    assert "fade_penalty" not in ckpt.read_individuals(guarded.run_dir)[0]["extra"]  # the baseline never pays
    assert all("fade_penalty" not in e["extra"] for e in ckpt.read_individuals(plain.run_dir))
