"""BuiltinRenderer: seeded, packed across individuals, prompt-driven."""
import functools

import numpy as np
import pytest
import torch

import hyperbatch
from prompt_pinning.builtin.layouts import PALETTE
from hyperbatch.noise import BrownianNoise
from prompt_pinning.builtin.renderer import (
    SDE_TOL_SHARE, BuiltinRenderer, default_max_images_per_call, plan_calls, sde_tol, truncated_sigmas,
)
from prompt_pinning.rendering import GenerationSettings, RenderInterrupted, Renderer

PROMPTS = [("a red circle", ""), ("a blue square", "red"), ("(large:1.3) green ring", "small"),
           ("yellow triangle on a black background", "")]
PLAIN = ["Euler", "DPM++ 2M"]
HYPER = ["DPM++ 2M Karras - Hyperbatch"]


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """These renders are small: one thread avoids threading overhead on a busy machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@functools.lru_cache(maxsize=None)
def render_alone(pair, s):
    """One individual per call, the reference for packed renders."""
    return BuiltinRenderer(max_images_per_call=s.batch_size).render([pair], s)[0]


def settings(**changes):
    base = GenerationSettings(seed=11, batch_size=4, steps=8, sampler="DPM++ 2M")
    return base.with_(**changes)


def test_is_a_renderer():
    renderer = BuiltinRenderer()
    assert isinstance(renderer, Renderer)
    [batch] = renderer.render([("red", "")], settings())
    assert batch.images.shape == (4, 3, 64, 64) and batch.images.dtype == torch.float32
    assert 0.0 <= float(batch.images.min()) and float(batch.images.max()) <= 1.0
    assert batch.seeds == [11, 12, 13, 14] and batch.traces is None and len(batch.infotexts) == 4


@pytest.mark.parametrize("sampler", PLAIN + HYPER)
def test_same_seed_same_images_other_seed_other_images(sampler):
    renderer = BuiltinRenderer()
    first = renderer.render(PROMPTS[:1], settings(sampler=sampler))[0].images
    again = BuiltinRenderer().render(PROMPTS[:1], settings(sampler=sampler))[0].images
    other = renderer.render(PROMPTS[:1], settings(sampler=sampler, seed=99))[0].images
    assert torch.equal(first, again)
    assert float((first - other).abs().mean()) > 0.01


@pytest.mark.parametrize("sampler, max_images", [("Euler", 3), ("DPM++ 2M", 6), ("DPM++ 2M", 64),
                                                 (HYPER[0], 5), (HYPER[0], 64)])
def test_packing_equals_one_call_per_individual(sampler, max_images):
    s = settings(sampler=sampler)
    packed = BuiltinRenderer(max_images_per_call=max_images).render(PROMPTS, s)
    for pair, batch in zip(PROMPTS, packed):
        alone = render_alone(pair, s)
        assert torch.equal(batch.images, alone.images)  # bit for bit
        assert batch.seeds == alone.seeds
        if sampler in HYPER:
            assert np.array_equal(batch.traces, alone.traces)
            assert np.array_equal(batch.traces, hyperbatch.traces(4, 8))


def test_thread_count_changes_no_rendered_image_and_render_restores_it():
    from prompt_pinning.builtin.conditioning import conditioning_rows
    model = BuiltinRenderer().denoiser(64, 64)
    cond, uncond = conditioning_rows([p for p in PROMPTS for _ in range(5)])
    x = torch.randn((len(cond), 4, 16, 16), generator=torch.Generator().manual_seed(3))
    s = settings(batch_size=2, steps=3)
    one = model(x, 0.7, cond=cond, uncond=uncond, cond_scale=5.0)
    rendered_one = BuiltinRenderer().render(PROMPTS[:2], s)
    torch.set_num_threads(2)
    try:
        two = model(x, 0.7, cond=cond, uncond=uncond, cond_scale=5.0)
        rendered_two = BuiltinRenderer().render(PROMPTS[:2], s)  # samples on one thread
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(1)
    # the renderer samples on one thread whatever the caller's count: its images are the same bit for bit
    for a, b in zip(rendered_one, rendered_two):
        assert torch.equal(a.images, b.images)
    # the model itself on two threads: the same up to float32 rounding (how a CPU splits sums varies)
    assert torch.allclose(one, two, rtol=0, atol=1e-5)


@pytest.mark.slow
def test_sde_packing_equals_one_call_per_individual():
    for sampler in ("DPM++ SDE", "DPM++ SDE Karras - Hyperbatch"):
        s = settings(sampler=sampler, steps=6, batch_size=2)
        packed = BuiltinRenderer(max_images_per_call=16).render(PROMPTS[:3], s)
        for pair, batch in zip(PROMPTS[:3], packed):
            alone = render_alone(pair, s)
            assert torch.equal(batch.images, alone.images)


def test_plain_seeds_are_shared_across_individuals_and_batch_sizes():
    # Image i depends only on seed + i and its prompt, not on the batch around it.
    big = BuiltinRenderer().render([("red", ""), ("red", "")], settings(batch_size=4))
    small = BuiltinRenderer().render([("red", "")], settings(batch_size=2, seed=13))
    assert torch.equal(big[0].images, big[1].images)
    assert torch.equal(big[0].images[2:], small[0].images)


def render_many(prompt, negative=""):
    s = settings(batch_size=12, steps=12, cfg_scale=7.0)
    return BuiltinRenderer().render([(prompt, negative)], s)[0].images


def palette_share(images, colour):
    """Share of pixels whose nearest palette colour is ``colour``."""
    palette = torch.tensor(list(PALETTE.values()))
    nearest = torch.cdist(images.permute(0, 2, 3, 1).reshape(-1, 3), palette).argmin(1)
    return float((nearest == list(PALETTE).index(colour)).float().mean())


def test_colour_words_colour_the_shape_and_the_background():
    red_on_blue = render_many("a red circle on a blue background")
    blue_on_red = render_many("a blue circle on a red background")
    assert palette_share(red_on_blue, "blue") > 0.5 and 0.03 < palette_share(red_on_blue, "red") < 0.5
    assert palette_share(blue_on_red, "red") > 0.5 and 0.03 < palette_share(blue_on_red, "blue") < 0.5


def test_more_weight_means_more_colour_and_a_larger_shape():
    low, high = render_many("a (green:0.6) ring"), render_many("a (green:1.4) ring")
    assert palette_share(high, "green") > palette_share(low, "green")
    small, large = render_many("a (large:0.5) white square"), render_many("a (large:1.5) white square")
    assert palette_share(large, "white") > 1.2 * palette_share(small, "white")


def test_negative_prompt_pushes_colours_away():
    red, blue = render_many("red background").mean((0, 2, 3)), render_many("blue background").mean((0, 2, 3))
    assert red[0] > blue[0] + 0.2 and blue[2] > red[2] + 0.2
    plain, negative = render_many("").mean((0, 2, 3)), render_many("", "blue background").mean((0, 2, 3))
    assert negative[2] < plain[2] - 0.05


def test_nearby_weights_give_nearby_images():
    s = settings(batch_size=12, steps=12)
    renderer = BuiltinRenderer()
    images = {w: renderer.render([(f"(red:{w}) circle on a blue background", "")], s)[0].images
              for w in (1.0, 1.01, 1.02, 1.5)}
    near = float((images[1.01] - images[1.0]).abs().mean())
    nearish = float((images[1.02] - images[1.0]).abs().mean())
    far = float((images[1.5] - images[1.0]).abs().mean())
    assert far > 0.005
    assert 0 < near < nearish < far / 10  # every step changes the images, by about its size


def test_progress_counts_image_steps_and_stop_interrupts():
    seen = []
    s = settings(sampler="DPM++ 2M Karras - Hyperbatch", batch_size=4, steps=9)
    BuiltinRenderer(max_images_per_call=8).render(PROMPTS[:3], s, progress=lambda d, t: seen.append((d, t)))
    total = 3 * hyperbatch.image_steps(4, 9)
    assert seen[-1] == (total, total)
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)
    calls = []

    def stop_after_three():
        calls.append(1)
        return len(calls) > 3

    with pytest.raises(RenderInterrupted):
        BuiltinRenderer(should_stop=stop_after_three).render(PROMPTS, settings())


def test_subseed_strength_varies_between_seed_and_subseed():
    render = lambda **c: BuiltinRenderer().render([("red", "")], settings(sampler="Euler", **c))[0].images
    base, varied = render(), render(subseed=500, subseed_strength=0.5)
    other = render(seed=500)
    assert torch.equal(render(subseed=500, subseed_strength=0.0), base)
    assert torch.allclose(render(subseed=500, subseed_strength=1.0), other, atol=1e-5)
    assert not torch.equal(varied, base) and not torch.equal(varied, other)


def test_img2img_keeps_low_strength_close_to_the_init_image():
    init = BuiltinRenderer().render([("blue square", "")], settings(batch_size=1))[0].images
    s = settings(batch_size=2, steps=10)
    low = BuiltinRenderer().render([("red circle", "")], s.with_(denoising_strength=0.1), init_images=init)[0]
    high = BuiltinRenderer().render([("red circle", "")], s.with_(denoising_strength=1.0), init_images=init)[0]
    assert float((low.images - init).abs().mean()) < 0.03
    assert float((high.images - init).abs().mean()) > float((low.images - init).abs().mean())
    full = torch.linspace(10, 0, 11)
    assert len(truncated_sigmas(full, 0.5)) == 6 and torch.equal(truncated_sigmas(full, 1.0), full)


def test_plan_calls_packs_rows_and_keeps_hyperbatches_whole():
    assert plan_calls(3, 4, 8, True) == [[(0, i) for i in range(4)] + [(1, i) for i in range(4)],
                                         [(2, i) for i in range(4)]]
    assert [len(c) for c in plan_calls(3, 4, 5, False)] == [5, 5, 2]
    assert [len(c) for c in plan_calls(2, 4, 3, True)] == [4, 4]  # one individual is the minimum


@pytest.mark.parametrize(
    "changes, init, match",
    [({"sampler": "Nope"}, None, "unknown sampler"), ({"scheduler": "cosine"}, None, "scheduler"),
     ({"denoising_strength": 0.5}, None, "init_images"), ({"width": 4}, None, "width"),
     ({}, torch.zeros((2, 3, 8, 8)), "init_images")],
)
def test_bad_input_is_rejected_with_its_name(changes, init, match):
    with pytest.raises(ValueError, match=match):
        BuiltinRenderer().render([("red", "")], settings(**changes), init_images=init)
    with pytest.raises(ValueError, match="prompts"):
        BuiltinRenderer().render(["red"], settings())
    with pytest.raises(ValueError, match="max_images_per_call"):
        BuiltinRenderer(max_images_per_call=0)


def test_default_call_size_shrinks_with_image_size():
    small = default_max_images_per_call(64, 64, 384)
    large = default_max_images_per_call(1024, 1024, 384)
    assert 1 <= large <= small <= 256
    assert large < small or small == 1


def test_sde_tree_resolution_is_a_power_of_ten_well_below_every_gap():
    for steps in (3, 20, 60):
        sigmas = hyperbatch.make_sigmas("karras", steps, 0.002, 80.0)
        positive = sigmas[sigmas > 0]
        tol = sde_tol(positive)
        smallest_gap = float((positive[:-1] - positive[1:]).min())
        assert SDE_TOL_SHARE * smallest_gap / 10 < tol <= SDE_TOL_SHARE * smallest_gap
        assert np.log10(tol) == pytest.approx(round(np.log10(tol)))
        # Increments over the shortest interval still have unit variance.
        noise = BrownianNoise(torch.zeros(16, 3, 16, 16), positive.min(), positive.max(), seeds=range(16), tol=tol)
        assert abs(float(noise(positive[-2], positive[-1]).std()) - 1) < 0.05


def test_one_step_sde_img2img_runs():
    init = torch.rand((3, 64, 64), generator=torch.Generator().manual_seed(0))
    s = settings(sampler="DPM++ SDE", steps=20, batch_size=2, denoising_strength=0.05)
    assert len(BuiltinRenderer().sigmas(s, hyperbatch.get_sampler(s.sampler))) == 2
    [batch] = BuiltinRenderer().render([("red", "")], s, init_images=init)
    assert batch.images.shape == (2, 3, 64, 64) and torch.isfinite(batch.images).all()
