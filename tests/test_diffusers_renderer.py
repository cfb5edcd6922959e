"""The diffusers SD1.5-layout renderer, on its tiny preset on the CPU (float32)."""
import numpy as np
import pytest
import torch

import diffusers  # noqa: F401  (a test dependency: fail, never skip, without it)

import diffusers_renderer as dr  # noqa: E402
from prompt_pinning.rendering import GenerationSettings, Renderer, RenderInterrupted  # noqa: E402

PROMPTS = [("a (red:1.3) fox in snow", "blurry"), ("a (red:0.7) fox in snow", "(blurry:1.2)"),
           ("a red fox in (snow:1.4)", "blurry")]
SETTINGS = GenerationSettings(seed=11, batch_size=2, steps=3, width=16, height=16)
HYPER = "DPM++ 2M Karras - Hyperbatch"


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny tensors: a second thread only adds synchronisation (badly so on a busy machine)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def renderer():
    return dr.DiffusersRenderer("tiny", device="cpu")


def render_with(renderer, limit, prompts, settings):
    renderer.max_images_per_call = limit
    try:
        return renderer.render(prompts, settings)
    finally:
        renderer.max_images_per_call = None


@pytest.fixture(scope="module")
def per_individual(renderer):
    """One sampler call per individual, for the plain and the hyperbatch sampler."""
    return {sampler: [render_with(renderer, SETTINGS.batch_size, [p], SETTINGS.with_(sampler=sampler))[0]
                      for p in PROMPTS]
            for sampler in ("DPM++ 2M", HYPER)}


@pytest.mark.parametrize("sampler,limit,calls", [("DPM++ 2M", None, [6]), ("DPM++ 2M", 4, [4, 2]),
                                                  (HYPER, None, [6]), (HYPER, 5, [4, 2])])
def test_packing_equals_one_call_per_individual(renderer, per_individual, sampler, limit, calls):
    packed = render_with(renderer, limit, PROMPTS, SETTINGS.with_(sampler=sampler))
    assert renderer.last_call_sizes == calls
    for one, many in zip(per_individual[sampler], packed):
        assert many.images.dtype == torch.float32 and many.images.shape == (2, 3, 16, 16)
        assert torch.allclose(one.images, many.images, atol=1e-5, rtol=0)
        assert many.seeds == SETTINGS.seeds()
        if sampler == HYPER:
            np.testing.assert_array_equal(one.traces, many.traces)
            assert many.traces.shape == (2, 2)
        else:
            assert many.traces is None
    # Individuals differ by prompt weights only, and the result depends on them.
    assert not torch.equal(packed[0].images, packed[1].images)


def test_image_i_uses_seed_plus_i(renderer, per_individual):
    shifted = render_with(renderer, None, PROMPTS[:1], SETTINGS.with_(seed=SETTINGS.seed + 1, batch_size=1))[0]
    assert torch.allclose(shifted.images[0], per_individual["DPM++ 2M"][0].images[1], atol=1e-5, rtol=0)


def test_out_of_memory_halves_the_call_and_keeps_results(renderer, per_individual, monkeypatch):
    real = renderer._sample_and_decode
    tried = []

    def limited(call, *args):
        tried.append(len(call))
        if len(call) > 2:
            raise torch.cuda.OutOfMemoryError("pretend")
        return real(call, *args)

    monkeypatch.setattr(renderer, "_sample_and_decode", limited)
    monkeypatch.setattr(torch.cuda, "empty_cache", lambda: None)
    packed = render_with(renderer, 6, PROMPTS, SETTINGS.with_(sampler=HYPER))
    assert tried == [6, 2, 2, 2] and renderer.last_call_sizes == [2, 2, 2]
    for one, many in zip(per_individual[HYPER], packed):
        assert torch.allclose(one.images, many.images, atol=1e-5, rtol=0)


def test_progress_counts_image_steps_and_stop_interrupts(renderer):
    seen = []
    settings = SETTINGS.with_(sampler=HYPER)
    renderer.max_images_per_call = 2  # one individual per call
    try:
        renderer.render(PROMPTS[:2], settings, progress=lambda done, total: seen.append((done, total)))
    finally:
        renderer.max_images_per_call = None
    per_individual = 1 + 2 + 2  # B=2, S=3: sizes 1, 2, 2
    assert seen[-1] == (2 * per_individual, 2 * per_individual)
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)
    stopping = dr.DiffusersRenderer.__new__(dr.DiffusersRenderer)
    stopping.__dict__.update(renderer.__dict__, should_stop=lambda: True)
    with pytest.raises(RenderInterrupted):
        stopping.render(PROMPTS[:1], settings)


def test_weights_scale_tokens_and_keep_the_chunk_mean(renderer):
    plain = renderer.encode(["a red fox"])[0].float()
    weighted = renderer.encode(["a (red:1.5) fox"])[0].float()
    assert plain.shape == weighted.shape == (77, 32)
    assert torch.allclose(plain.mean(), weighted.mean(), atol=1e-5)
    # A1111's rule: the weighted token is multiplied by 1.5, then all by one factor (keeping the mean).
    ratio = weighted / plain
    factor = ratio[3].median()
    assert torch.allclose(ratio[2], 1.5 * factor, rtol=1e-3)  # start token, "a", "red"
    others = torch.cat([ratio[:2], ratio[3:]])
    assert torch.allclose(others, factor.expand_as(others), rtol=1e-3)
    two_chunks = renderer.encode(["fox " * 80])
    assert two_chunks.shape == (1, 154, 32)
    with pytest.raises(ValueError, match="same number of 75-token chunks"):
        renderer.encode(["fox", "fox " * 80])


def test_noise_schedule_and_timesteps_are_sd15s(renderer):
    sigmas = dr.vp_sigmas()
    assert sigmas[0].item() == pytest.approx(0.0292, abs=1e-4)
    assert sigmas[-1].item() == pytest.approx(14.6146, abs=1e-3)
    steps = renderer.model.timesteps(torch.stack([sigmas[0], sigmas[500], sigmas[-1]]))
    assert torch.allclose(steps, torch.tensor([0.0, 500.0, 999.0]), atol=1e-3)


def test_is_a_renderer_and_rejects_bad_input(renderer):
    assert isinstance(renderer, Renderer)
    with pytest.raises(ValueError, match="preset"):
        dr.build_models("xl", torch.device("cpu"), torch.float32)
    with pytest.raises(ValueError, match="max_images_per_call"):
        dr.DiffusersRenderer("tiny", max_images_per_call=0)
    with pytest.raises(ValueError, match="width must be a multiple of 2"):
        renderer.render(PROMPTS[:1], SETTINGS.with_(width=33))
    with pytest.raises(ValueError, match="denoising_strength"):
        renderer.render(PROMPTS[:1], SETTINGS.with_(denoising_strength=0.5))
    with pytest.raises(ValueError, match=r"prompts\[0\]"):
        renderer.render(["just a string"], SETTINGS)
    assert renderer.render([], SETTINGS) == []


def test_call_sizes_and_memory_default():
    assert dr.images_per_call(20, 8, whole_individuals=True) == 16
    assert dr.images_per_call(5, 8, whole_individuals=True) == 8
    assert dr.images_per_call(20, 8, whole_individuals=False) == 20
    assert dr.default_max_images_per_call(torch.device("cpu"), 320, 4096, 4) == dr.CPU_MAX_IMAGES


def test_bench_hyperbatch_factory_runs_the_unet_with_cfg():
    denoiser, shape = dr.hyperbatch_denoiser("cpu")
    assert shape == (4, 16, 16)
    x = torch.randn(3, *shape)
    out = denoiser(x, torch.full((3,), 2.0))
    assert out.shape == x.shape and torch.isfinite(out).all()
