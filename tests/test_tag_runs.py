"""Tag-target runs on the built-in model: pinned to "red" over "blue", held-out seeds agree; resume works."""
import numpy as np
import pytest

from prompt_pinning.builtin import BuiltinRenderer
from prompt_pinning.config import PinningConfig
from prompt_pinning.rendering import GenerationSettings
from prompt_pinning.reports import ReportWriter
from prompt_pinning.run import resume_pinning, run_pinning

SETTINGS = GenerationSettings(seed=21, batch_size=4, steps=8, width=32, height=32, cfg_scale=3.0, sampler="Euler")
PROMPT = "a (red:1.4) or blue circle, on a white background"  # red is rare here: p(red) about 0.05


def config(outdir, **kw):
    options = dict(wanted_tags="red", unwanted_tags="blue", cma_logging=False, generations=5, lambda_=6, cma_seed=3)
    return PinningConfig(PROMPT, outdir=outdir, generation=SETTINGS, **{**options, **kw})


def held_out_red(renderer, prompt):
    batches = renderer.render([prompt], SETTINGS.with_(seed=90_000, batch_size=16))
    return float(batches[0].tag_probabilities["red"].mean())


@pytest.mark.slow
def test_pinning_red_over_blue_raises_red_on_held_out_seeds(outdir):
    """A run's path rides on the BLAS kernel, the thread count and what else the process loaded: one
    5-generation run picked the unmodified prompt under OPENBLAS_CORETYPE=SkylakeX, and a run whose
    validation keeps the unmodified prompt is a sound outcome. So: three CMA seeds of 10 generations
    with the tag loss weighted 2, judged together on seeds that no run trained or validated on."""
    renderer = BuiltinRenderer()
    gains = []
    for k, cma_seed in enumerate((3, 4, 5)):
        sink = ReportWriter(worker="thread") if k == 0 else None
        result = run_pinning(config(outdir, generations=10, tag_loss_weight=2.0, cma_seed=cma_seed), renderer,
                             sink=sink)
        assert result.stop_reason == "completed"
        before = held_out_red(renderer, (PROMPT, ""))
        after = held_out_red(renderer, (result.best.positive, result.best.negative))
        gains.append(round(after - before, 4))
        if sink is not None:
            assert 'id="tags-title"' in (result.run_dir / "index.html").read_text()
    # p(red) starts near 0.02; measured gains 0.43 to 0.94 per run on SkylakeX, Haswell and Zen kernels
    assert sum(gain > 0.1 for gain in gains) >= 2 and np.mean(gains) > 0.25 and min(gains) > -0.05, gains


def test_a_tag_run_resumes_to_the_same_result(outdir):
    renderer = BuiltinRenderer()
    whole = run_pinning(config(outdir, generations=2), renderer)
    done = []
    cut = run_pinning(config(outdir, generations=2), renderer, should_stop=lambda: bool(done) and done[-1] >= 5,
                      progress=lambda s, d, t: done.append(d))
    assert cut.stop_reason == "interrupted"
    resumed = resume_pinning(cut.run_dir, BuiltinRenderer())
    assert resumed.best.individual_id == whole.best.individual_id and resumed.best.loss == whole.best.loss
    assert np.isclose(resumed.best.extra["tags"]["red"], whole.best.extra["tags"]["red"])
