"""A1111Renderer against the stand-in process_images: packing, seeds, copies, stops."""
import numpy as np
import pytest
import torch

import webui_stand_in

webui_stand_in.install()

from modules import images as host_images  # noqa: E402
from modules import processing, shared  # noqa: E402

from prompt_pinning.rendering import GenerationSettings, RenderInterrupted  # noqa: E402
from prompt_pinning_webui.renderer import A1111Renderer, auto_images_per_call  # noqa: E402
from prompt_pinning_webui.samplers import register_samplers  # noqa: E402

PAIRS = [("red circle", "blue"), ("green square", ""), ("(red:1.2) circle", "blue"), ("tiny dot", "x")]


@pytest.fixture(autouse=True)
def fresh():
    webui_stand_in.reset()
    register_samplers()
    yield


def base_p(**changes):
    fields = dict(prompt="red circle", negative_prompt="blue", seed=100, subseed=5, batch_size=3, steps=4,
                  width=16, height=16, sampler_name="DPM++ 2M", outpath_samples="unused")
    fields.update(changes)
    return processing.StableDiffusionProcessingTxt2Img(**fields)


def settings(**changes):
    values = dict(seed=100, subseed=5, batch_size=3, steps=4, width=16, height=16)
    values.update(changes)
    return GenerationSettings(**values)


def test_packs_individuals_per_call_and_splits_them_back():
    renderer = A1111Renderer(base_p(), max_images_per_call=6, tokenizer=object())
    batches = renderer.render(PAIRS, settings())
    assert len(processing.calls) == 2 and renderer.calls == 2
    first = processing.calls[0]
    assert first["batch_size"] == 6
    assert first["prompts"] == ["red circle"] * 3 + ["green square"] * 3
    assert first["seeds"] == [100, 101, 102] * 2  # common random numbers
    assert [b.images.shape for b in batches] == [(3, 3, 16, 16)] * 4
    assert all(b.seeds == [100, 101, 102] for b in batches)
    assert batches[2].infotexts[0].startswith("(red:1.2) circle\nNegative prompt: blue")


def test_packed_equals_one_call_per_individual():
    packed = A1111Renderer(base_p(), max_images_per_call=12, tokenizer=object()).render(PAIRS, settings())
    single = A1111Renderer(base_p(), max_images_per_call=1, tokenizer=object()).render(PAIRS, settings())
    for a, b in zip(packed, single):
        assert torch.equal(a.images, b.images)


def test_hyperbatch_traces_come_back_per_individual():
    import hyperbatch

    p = base_p(sampler_name="DPM++ 2M Karras - Hyperbatch", batch_size=4, steps=8)
    batches = A1111Renderer(p, max_images_per_call=8, tokenizer=object()).render(
        PAIRS[:2], settings(batch_size=4, steps=8, sampler="DPM++ 2M Karras - Hyperbatch"))
    for batch in batches:
        np.testing.assert_array_equal(batch.traces, hyperbatch.traces(4, 8))


def test_base_p_is_never_changed_and_nothing_is_saved():
    p = base_p(seed=-1)
    before = dict(vars(p))
    shared.opts.samples_save = True
    A1111Renderer(p, max_images_per_call=6, tokenizer=object()).render(PAIRS[:2], settings())
    assert vars(p) == before
    assert host_images.saved == []  # images came back in memory, not from files


def test_seed_lists_follow_subseed_strength():
    A1111Renderer(base_p(), max_images_per_call=3, tokenizer=object()).render(
        PAIRS[:1], settings(subseed_strength=0.5))
    assert processing.calls[0]["seeds"] == [100, 100, 100]


def test_stop_between_calls_raises_render_interrupted():
    renderer = A1111Renderer(base_p(), max_images_per_call=3, tokenizer=object())

    def interrupt_after_first(p, n):
        if len(processing.calls) == 2:
            shared.state.interrupted = True

    processing.before_batch_hooks.append(interrupt_after_first)
    with pytest.raises(RenderInterrupted):
        renderer.render(PAIRS, settings())
    assert len(processing.calls) == 2


def test_progress_callback_counts_image_steps():
    seen = []
    A1111Renderer(base_p(), max_images_per_call=6, tokenizer=object()).render(
        PAIRS, settings(), progress=lambda done, total: seen.append((done, total)))
    assert seen == [(24, 48), (48, 48)]


def test_img2img_init_images_are_repeated_for_packed_individuals():
    from PIL import Image

    inits = [Image.new("RGB", (16, 16), (i * 80, 0, 0)) for i in range(3)]
    p = processing.StableDiffusionProcessingImg2Img(
        init_images=inits, denoising_strength=0.5, prompt="red", negative_prompt="", seed=1, subseed=1,
        batch_size=3, steps=6, width=16, height=16, sampler_name="DPM++ 2M")
    batches = A1111Renderer(p, max_images_per_call=6, tokenizer=object()).render(
        PAIRS[:2], settings(seed=1, subseed=1, steps=6, denoising_strength=0.5))
    assert processing.calls[0]["batch_size"] == 6 and p.init_images == inits
    assert [b.images.shape[0] for b in batches] == [3, 3]


def capture_p():
    """Record the settings each process_images call actually used."""
    used = []
    processing.before_batch_hooks.append(lambda p, n: used.append(
        {k: getattr(p, k) for k in ("steps", "width", "height", "cfg_scale", "sampler_name", "scheduler",
                                    "denoising_strength")}))
    return used


def test_renders_with_the_runs_settings_not_the_ui_s_current_ones():
    """A resumed run keeps its own settings whatever the UI holds now."""
    ui_now = base_p(steps=2, width=32, height=24, cfg_scale=11.0, sampler_name="Euler", scheduler="Automatic")
    used = capture_p()
    run = settings(steps=5, width=16, height=8, cfg_scale=3.5, sampler="DPM++ 2M", scheduler="karras")
    batches = A1111Renderer(ui_now, max_images_per_call=3, tokenizer=object()).render(PAIRS[:1], run)
    assert used == [dict(steps=5, width=16, height=8, cfg_scale=3.5, sampler_name="DPM++ 2M",
                         scheduler="karras", denoising_strength=None)]
    assert batches[0].images.shape == (3, 3, 8, 16)
    assert (ui_now.steps, ui_now.width, ui_now.sampler_name) == (2, 32, "Euler")  # base untouched


def test_img2img_resume_uses_the_runs_denoising_strength():
    from PIL import Image

    ui_now = processing.StableDiffusionProcessingImg2Img(
        init_images=[Image.new("RGB", (16, 16), (90, 0, 0))], denoising_strength=0.9, prompt="red",
        negative_prompt="", seed=1, subseed=1, batch_size=3, steps=2, width=16, height=16, sampler_name="Euler")
    used = capture_p()
    A1111Renderer(ui_now, max_images_per_call=3, tokenizer=object()).render(
        PAIRS[:1], settings(seed=1, subseed=1, steps=6, denoising_strength=0.4))
    assert [(u["denoising_strength"], u["steps"], u["sampler_name"]) for u in used] == [(0.4, 6, "DPM++ 2M")]
    assert ui_now.denoising_strength == 0.9


def test_auto_budget():
    assert auto_images_per_call(512, 512, None) == 1
    assert auto_images_per_call(512, 512, 8 * 2**30) == 6
    assert auto_images_per_call(64, 64, 80 * 2**30) == 64


def test_device_is_the_hosts_model_device(monkeypatch):
    """The run scores FLIP where A1111 runs its model (--use-cpu, CUDA or MPS)."""
    from modules import devices

    from prompt_pinning.run.evaluator import loss_device

    renderer = A1111Renderer(base_p(), tokenizer=object())
    assert loss_device(renderer) == torch.device("cpu")
    monkeypatch.setattr(devices, "device", torch.device("meta"))  # read when asked, never at import
    assert loss_device(renderer) == torch.device("meta")
    assert A1111Renderer(base_p(), tokenizer=object(), device=torch.device("cpu")).device == torch.device("cpu")


def test_the_hosts_prompt_handling_time_is_measured_per_individual(monkeypatch):
    import time

    original = processing.StableDiffusionProcessing.setup_conds

    def slow_setup_conds(p):
        time.sleep(0.04)  # the host parsing and encoding a long prompt batch
        return original(p)

    monkeypatch.setattr(processing.StableDiffusionProcessing, "setup_conds", slow_setup_conds)
    base = base_p()
    renderer = A1111Renderer(base, max_images_per_call=6, tokenizer=object())  # 2 individuals per call
    batches = renderer.render(PAIRS, settings())
    assert all(0.02 <= b.prompt_seconds < 0.5 for b in batches)  # each call's time, shared by its two
    assert "setup_conds" not in vars(base)  # only the per-call copies were timed
