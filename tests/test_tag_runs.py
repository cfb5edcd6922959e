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
    renderer = BuiltinRenderer()
    result = run_pinning(config(outdir), renderer, sink=ReportWriter(worker="thread"))
    assert result.stop_reason == "completed"
    before = held_out_red(renderer, (PROMPT, ""))
    after = held_out_red(renderer, (result.best.positive, result.best.negative))
    assert after > before + 0.1, (before, after, result.best.positive)
    assert result.best.extra["tags"]["red"] > result.baseline.extra["tags"]["red"]
    assert 'id="tags-title"' in (result.run_dir / "index.html").read_text()


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
