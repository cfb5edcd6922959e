"""The built-in model's LoRAs: conditioning and images move continuously with the strength."""
import numpy as np
import pytest
import torch

from prompt_pinning.builtin import layouts as geo
from prompt_pinning.builtin.conditioning import BG_MEAN, FG_MEAN, GEOMETRY, pair_conditioning
from prompt_pinning.builtin.networks import NETWORKS, network_strengths
from prompt_pinning.builtin.renderer import BuiltinRenderer
from prompt_pinning.config import PinningConfig
from prompt_pinning.prompt.attention import PromptError
from prompt_pinning.rendering import GenerationSettings
from prompt_pinning.run.builders import build_vector


def test_tags_are_removed_and_te_unet_act_with_their_mean():
    text, strengths = network_strengths("a circle <lora:size:0.5:1.5> <lora:palette:0.25> <lora:other:3>")
    assert text == "a circle   "
    assert strengths == {"size": 1.0, "palette": 0.25}
    # A tag's name is no longer read as a word: "red" here is a network name, not a colour.
    assert torch.equal(pair_conditioning("a circle <lora:red:1>")[0], pair_conditioning("a circle")[0])


def _placement(g):
    """What the centre depends on: pull and pull x target per axis (the target alone means nothing at pull 0)."""
    return torch.stack([g[geo.PULL_X], g[geo.PULL_X] * g[geo.TARGET_X], g[geo.PULL_Y], g[geo.PULL_Y] * g[geo.TARGET_Y]])


@pytest.mark.parametrize("name, part", [("palette", FG_MEAN), ("palette", BG_MEAN), ("size", GEOMETRY),
                                        ("placement", GEOMETRY)])
def test_each_network_moves_its_part_of_the_conditioning_continuously(name, part):
    rows = [pair_conditioning(f"a circle <lora:{name}:{s:.3f}>")[0][part] for s in np.linspace(0, 1.5, 16)]
    if name == "placement":
        rows = [_placement(g) for g in rows]
    steps = [float((b - a).abs().max()) for a, b in zip(rows, rows[1:])]
    total = float((rows[-1] - rows[0]).abs().max())
    assert total > 0.05  # the network does something
    assert max(steps) < total / 4  # and no single step of 0.1 does most of it


def test_size_and_placement_move_the_geometry_the_named_way():
    geometry = lambda s, name: pair_conditioning(f"a circle <lora:{name}:{s}>")[0][GEOMETRY]
    assert geometry(1, "size")[geo.LOG_SCALE] > 0 > geometry(-1, "size")[geo.LOG_SCALE]
    assert geometry(1, "placement")[geo.PULL_X] > geometry(0.2, "placement")[geo.PULL_X] > 0


def test_images_change_continuously_with_the_strength():
    settings = GenerationSettings(seed=5, batch_size=2, steps=8, sampler="DPM++ 2M")
    strengths = [0.0, 0.05, 0.1, 0.5, 1.0]
    batches = BuiltinRenderer().render([(f"a red circle <lora:size:{s}>", "") for s in strengths], settings)
    images = [b.images for b in batches]
    change = [float((im - images[0]).abs().mean()) for im in images]
    assert change[1] < change[2] < change[3] < change[4]
    assert change[4] > 0.01  # a visible change at strength 1
    assert change[1] < change[4] / 5  # a small strength makes a small change


def test_a_run_refuses_an_unknown_network_before_rendering():
    renderer = BuiltinRenderer()
    config = PinningConfig("a red circle <lora:pallete:1>", network_units=True)
    with pytest.raises(PromptError, match=r"no LoRA named 'pallete'; it has: palette, placement, size"):
        build_vector(config, renderer)
    with pytest.raises(PromptError, match=r"outside the renderer's range -4 .. 4"):
        build_vector(PinningConfig("a red circle <lora:size:5>", network_units=True), renderer)
    vector = build_vector(PinningConfig("a red circle <lora:size:0.5> <lora:palette:1>", network_units=True),
                          renderer)
    assert [u.kind for u in vector.units] == ["word"] * 3 + ["lora"] * 2
    assert sorted(NETWORKS) == ["palette", "placement", "size"]


def test_an_unreadable_tag_is_ignored_as_the_hosts_do_and_refused_with_network_units():
    settings = GenerationSettings(seed=5, batch_size=1, steps=4, sampler="DPM++ 2M")
    plain, bad, bad_known = BuiltinRenderer().render(
        [("a red circle", ""), ("a red circle <lora:x:abc>", ""), ("a red circle <lora:size:abc>", "")], settings)
    assert torch.equal(bad.images, plain.images) and torch.equal(bad_known.images, plain.images)
    text, strengths = network_strengths("a circle <lora:size:abc> <lora:palette:0.5>")
    assert (text, strengths) == ("a circle  ", {"palette": 0.5})  # the readable tag still acts
    with pytest.raises(PromptError, match=r"<lora:size:abc> at character 13: strength 'abc' is not a number"):
        build_vector(PinningConfig("a red circle <lora:size:abc>", network_units=True), BuiltinRenderer())
    build_vector(PinningConfig("a red circle <lora:size:abc>"), BuiltinRenderer())  # units off: left as written


def test_a_run_with_network_units_resumes_to_where_an_uninterrupted_run_ends(outdir):
    from prompt_pinning.reports import ReportWriter
    from prompt_pinning.run import checkpoint as ckpt
    from prompt_pinning.run import resume_pinning, run_pinning
    from test_resume_cuts import final_result

    settings = GenerationSettings(seed=3, batch_size=2, steps=4, width=32, height=32, cfg_scale=3.0, sampler="Euler")
    renderer = BuiltinRenderer()
    target = renderer.render([("a red circle <lora:size:1.3> <lora:placement:0.8>", "")], settings.with_(seed=40))
    config = lambda folder: PinningConfig(  # noqa: E731
        positive="a red circle <lora:size:0.5> <lora:placement:0.2:0.6>", negative="<lora:palette:0.3>",
        targets=[target[0].images], generation=settings, generations=3, lambda_=4, network_units=True,
        validation_batches=0, cma_logging=False, outdir=folder)
    full = run_pinning(config(outdir / "full"), renderer, sink=ReportWriter(worker="thread"))
    assert full.stop_reason == "completed"
    assert [u.kind for u in full.units][-4:] == ["lora", "lora te", "lora unet", "lora"]
    assert full.best.positive != "a red circle <lora:size:0.5> <lora:placement:0.2:0.6>"  # strengths moved
    evaluated = []
    cut = run_pinning(config(outdir / "cut"), renderer, sink=ReportWriter(worker="thread"),
                      should_stop=lambda: bool(evaluated) and evaluated[-1] >= 7,
                      progress=lambda s, d, t: evaluated.append(d))
    assert cut.stop_reason == "interrupted" and 0 < len(ckpt.read_individuals(cut.run_dir)) < 13
    resumed = resume_pinning(cut.run_dir, renderer, sink=ReportWriter(worker="thread"))
    assert resumed.stop_reason == "completed"
    assert (resumed.best.positive, resumed.best.negative) == (full.best.positive, full.best.negative)
    assert resumed.best.loss == full.best.loss and torch.equal(resumed.best.images, full.best.images)
    assert final_result(cut.run_dir) == final_result(full.run_dir)  # units, strengths, history: all alike
