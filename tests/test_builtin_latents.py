"""The built-in model's latent space: encoder, decoder, and where samples commit to a layout."""
import pytest
import torch

import hyperbatch
from prompt_pinning.builtin.conditioning import conditioning_rows, pair_conditioning
from prompt_pinning.builtin import conditioning as cnd
from prompt_pinning.builtin.latents import (
    LATENT_CHANNELS, LATENT_FACTOR, LATENT_SCALE, TONE_KNEE, downsample, encode, estimated_coverage, latent_size,
    tone, untone,
)
from prompt_pinning.builtin.layouts import coverage
from prompt_pinning.builtin.renderer import BuiltinRenderer
from prompt_pinning.builtin.seeds import batch_noise
from prompt_pinning.rendering import GenerationSettings


def test_encode_is_the_scaled_area_average_plus_structure():
    images = torch.rand((2, 3, 8, 12), generator=torch.Generator().manual_seed(0))
    images[1, 2, :LATENT_FACTOR, LATENT_FACTOR:2 * LATENT_FACTOR] = 0.5  # in tone's identity range
    latents = encode(images)
    assert latents.shape == (2, LATENT_CHANNELS, 8 // LATENT_FACTOR, 12 // LATENT_FACTOR)
    block = images[1, 2, :LATENT_FACTOR, LATENT_FACTOR:2 * LATENT_FACTOR].mean()
    assert float(latents[1, 2, 0, 1]) == pytest.approx(LATENT_SCALE * (2 * float(untone(block)) - 1), abs=1e-6)
    flat = torch.zeros((1, 3, 16, 16))
    flat[:, :, 4:8, 4:8] = 1.0  # a white square on black fills latent cell (1, 1)
    structure = encode(flat)[0, 3]
    expected = torch.full((4, 4), -LATENT_SCALE)
    expected[1, 1] = LATENT_SCALE
    assert torch.allclose(structure, expected)
    assert torch.equal(estimated_coverage(flat)[0, 0], (flat[0, 0] > 0).float())
    with pytest.raises(ValueError, match="images must be"):
        encode(torch.zeros((1, 4, 8, 8)))


def test_tone_is_smooth_increasing_and_inverted_by_untone():
    t = torch.linspace(-1.0, 2.0, 3001, dtype=torch.float64)
    shown = tone(t)
    assert bool((shown[1:] > shown[:-1]).all()) and 0.0 < float(shown.min()) and float(shown.max()) < 1.0
    middle = (t >= TONE_KNEE) & (t <= 1 - TONE_KNEE)
    assert torch.equal(shown[middle], t[middle])
    slopes = (shown[1:] - shown[:-1]) / (t[1:] - t[:-1])
    assert float((slopes[1:] - slopes[:-1]).abs().max()) < 0.01  # no kink at the knees
    display = torch.linspace(0.01, 0.99, 99, dtype=torch.float64)
    assert torch.allclose(tone(untone(display)), display, atol=1e-12)


def test_latent_grid_covers_sizes_that_do_not_divide():
    assert latent_size(64, 64) == (16, 16)
    assert latent_size(width=30, height=9) == (3, 8)
    assert downsample(torch.rand((1, 3, 9, 30))).shape == (1, 3, 3, 8)


def test_decoder_draws_the_layout_and_colours_of_a_latent():
    model = BuiltinRenderer().denoiser(32, 32)
    cond = torch.stack([pair_conditioning("(large:1.2) ring")[0], pair_conditioning("left")[0]])
    latents, expected = [], []
    for row, layout in enumerate((7, 40)):
        u, v = model._latent_bases(cond[row, cnd.GEOMETRY])
        fg, bg = torch.tensor([0.9, 0.1, 0.2]), torch.tensor([0.2, 0.3, 0.8])
        colour = torch.stack([fg[c] * u[layout] + bg[c] * v[layout] for c in range(3)])
        latents.append(torch.cat([colour, model.structure[layout][None].double()]) - LATENT_SCALE)
        mask, shade = coverage(model.layouts, cond[row, cnd.GEOMETRY], 32, 32, 32, 32, select=torch.tensor([layout]))
        expected.append(tone(fg)[:, None, None] * mask + tone(bg)[:, None, None] * shade * (1 - mask))
    images = model.decode(torch.stack(latents).reshape(2, 4, 8, 8).float(), cond)
    assert torch.allclose(images, torch.stack(expected).clamp(0, 1), atol=2e-3)
    with pytest.raises(ValueError, match="x must be"):
        model.decode(torch.zeros((1, 3, 8, 8)), cond[:1])


def top_weights_along_a_run(steps=20, batch=16):
    """Mean top layout weight at each step of a plain DPM++ 2M run at CFG 7."""
    renderer = BuiltinRenderer()
    model = renderer.denoiser(64, 64)
    spec = hyperbatch.get_sampler("DPM++ 2M")
    sigmas = renderer.sigmas(GenerationSettings(seed=0, steps=steps), spec)
    prompts = [("red", ""), ("large ring", ""), ("green background", "red"), ("", "")]
    cond, uncond = conditioning_rows([p for p in prompts for _ in range(batch)])
    x = batch_noise(range(batch), (4, 16, 16)).repeat(len(prompts), 1, 1, 1) * sigmas[0]
    tops = []
    spec.function(model, x, sigmas, extra_args={"cond": cond, "uncond": uncond, "cond_scale": 7.0}, disable=True,
                  callback=lambda info: tops.append(float(
                      model.layout_weights(info["x"], info["sigma"].double().expand(len(x))).max(1).values.mean())))
    return tops


def test_samples_commit_to_one_layout_in_the_second_half_of_the_schedule():
    tops = top_weights_along_a_run()
    assert len(tops) == 20
    assert max(tops[:10]) < 0.5  # undecided through the first half (the hyperbatch splits at steps 5, 10)
    assert tops[-4] > 0.99  # settled before the last steps, so the decoded images are crisp
