"""Pinning runs on the built-in model, with the real prompt weights, loss and reports."""
import numpy as np
import pytest
import torch

from prompt_pinning.run import checkpoint as ckpt
from prompt_pinning.builtin.renderer import BuiltinRenderer
from prompt_pinning.config import PinningConfig
from prompt_pinning.rendering import GenerationSettings
from prompt_pinning.run import resume_pinning, run_pinning

SETTINGS = GenerationSettings(seed=11, batch_size=4, steps=6, width=32, height=32, cfg_scale=3.0, sampler="Euler")
# Shape and colour are left open (three shapes, two colours): a target of red
# circles can be pinned by moving weight between the words.
LOOSE_PROMPT = "circle square triangle red blue"


@pytest.fixture(scope="module")
def renderer():
    return BuiltinRenderer()


@pytest.fixture(scope="module")
def target(renderer):
    return renderer.render([("red circle", "")], SETTINGS.with_(seed=3))[0].images


def evaluations(run_dir):
    """Evaluation lines of the log (validation lines aside)."""
    return ckpt.read_individuals(run_dir)


def config(outdir, **kw):
    return PinningConfig(positive=LOOSE_PROMPT, outdir=outdir, generation=SETTINGS, cma_logging=False, **kw)


@pytest.mark.slow
def test_default_settings_pin_a_loose_prompt_below_its_baseline(outdir, renderer, target):
    result = run_pinning(config(outdir, targets=[target]), renderer)
    assert result.stop_reason == "completed"
    assert result.config["resolved"]["generations"] == 16  # int(16 * floor(log 5))
    assert result.best_loss < result.baseline_loss
    assert result.best.generation > 0
    assert len(result.units) == 5
    assert all(u.tightness is not None and u.tightness > 0 for u in result.units)
    assert [u.offset for u in result.units] == list(result.best.offsets)


@pytest.mark.slow
def test_same_seed_twice_and_resume_give_the_same_best_bit_for_bit(outdir, renderer):
    first = run_pinning(config(outdir, generations=3), renderer)
    second = run_pinning(config(outdir, generations=3), renderer)
    assert np.array_equal(first.best.offsets, second.best.offsets) and first.best.loss == second.best.loss
    assert first.best.generation > 0, "the check below needs a best found by the search"
    evaluated = []
    cut = run_pinning(config(outdir, generations=3), renderer,
                      should_stop=lambda: bool(evaluated) and evaluated[-1] >= 9,
                      progress=lambda s, d, t: evaluated.append(d))
    assert cut.stop_reason == "interrupted" and len(evaluations(cut.run_dir)) == 9 - 2
    # (+ the baseline's validation and, with the default fade guard, the reference render of block 1)
    resumed = resume_pinning(cut.run_dir, renderer)
    assert resumed.stop_reason == "completed"
    assert resumed.best.individual_id == first.best.individual_id
    assert np.array_equal(resumed.best.offsets, first.best.offsets) and resumed.best.loss == first.best.loss
    assert resumed.best.positive == first.best.positive
    assert torch.equal(resumed.best.images, first.best.images)
    assert resumed.best.validation_loss == first.best.validation_loss is not None
    assert [(e.get("id"), e.get("loss")) for e in ckpt.read_evaluations(resumed.run_dir)] == \
        [(e.get("id"), e.get("loss")) for e in ckpt.read_evaluations(first.run_dir)]


def test_interrupt_with_reports_leaves_k_complete_folders(outdir, renderer):
    from prompt_pinning.reports import ReportWriter

    k, evaluated = 4, []
    result = run_pinning(config(outdir, generations=2), renderer, sink=ReportWriter(),
                         should_stop=lambda: bool(evaluated) and evaluated[-1] >= k,
                         progress=lambda s, d, t: evaluated.append(d))
    assert result.stop_reason == "interrupted" and result.best is not None
    folders = sorted(p for p in result.run_dir.glob("[0-9]*/*") if p.is_dir())  # generations' individuals
    # k renders: the baseline, its validation batch, the fade guard's reference for block 1, one individual
    assert len(folders) == k - 2 == len(evaluations(result.run_dir))
    for folder in folders:
        assert (folder / "batch_stats.json").is_file()
        assert len(list(folder.glob("*.png"))) >= SETTINGS.batch_size
    assert (result.run_dir / "index.html").is_file()
    assert ckpt.read_run_state(result.run_dir)["stop_reason"] == "interrupted"
    baseline = result.baseline.individual_id  # and the baseline on the first validation batch, for the page
    assert len(list((result.run_dir / "validation" / baseline).glob("*.png"))) == SETTINGS.batch_size


def test_host_embeddings_stay_whole_units():
    from prompt_pinning.builtin import WordTokenizer
    from prompt_pinning.run.builders import build_vector

    class HostLikeTokenizer(WordTokenizer):
        def embeddings(self):
            return {"my emb": 2}  # a textual-inversion name with a space, two vectors

    class Host:
        tokenizer = HostLikeTokenizer()

    vector = build_vector(PinningConfig("a portrait of my emb, red"), Host())
    assert [u.text for u in vector.units] == ["a", "portrait", "of", "my emb", ",", "red"]


@pytest.mark.slow
def test_packing_changes_no_result_with_validation_and_rotating_seeds(outdir):
    results = []
    for max_images in (SETTINGS.batch_size, 64):  # one individual per call, or a generation per call
        results.append(run_pinning(config(outdir, generations=2, seed_schedule="rotating", validation_batches=2,
                                          max_images_per_call=max_images),
                                   BuiltinRenderer(max_images_per_call=max_images)))
    one_by_one, packed = results
    assert [(e.get("id"), e.get("loss")) for e in ckpt.read_evaluations(one_by_one.run_dir)] == \
        [(e.get("id"), e.get("loss")) for e in ckpt.read_evaluations(packed.run_dir)]
    assert packed.best.individual_id == one_by_one.best.individual_id
    assert packed.best.validation_loss == one_by_one.best.validation_loss is not None
    assert torch.equal(packed.best.images, one_by_one.best.images)
