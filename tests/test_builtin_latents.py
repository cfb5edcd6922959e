"""The built-in model's latent space: encoder, decoder, and where samples commit."""
import pytest
import torch

import hyperbatch
from prompt_pinning.builtin.conditioning import prompt_logit_rows
from prompt_pinning.builtin.images import image_set
from prompt_pinning.builtin.latents import (
    LATENT_FACTOR, LATENT_SCALE, LatentDecoder, downsample, encode, latent_size,
)
from prompt_pinning.builtin.renderer import BuiltinRenderer
from prompt_pinning.builtin.seeds import batch_noise
from prompt_pinning.rendering import GenerationSettings

from test_builtin_denoiser import brute_force_posterior_mean


def test_encode_is_the_scaled_area_average():
    images = torch.rand((2, 3, 8, 12), generator=torch.Generator().manual_seed(0))
    latents = encode(images)
    assert latents.shape == (2, 3, 8 // LATENT_FACTOR, 12 // LATENT_FACTOR)
    block = images[1, 2, :LATENT_FACTOR, LATENT_FACTOR:2 * LATENT_FACTOR].mean()
    assert float(latents[1, 2, 0, 1]) == pytest.approx(LATENT_SCALE * (2 * float(block) - 1), abs=1e-6)
    assert float(encode(torch.ones((1, 3, 8, 8))).max()) == pytest.approx(LATENT_SCALE)


def test_latent_grid_covers_sizes_that_do_not_divide():
    assert latent_size(64, 64) == (16, 16)
    assert latent_size(width=30, height=9) == (3, 8)
    assert downsample(torch.rand((1, 3, 9, 30))).shape == (1, 3, 3, 8)


def test_decoder_is_crisp_on_data_latents_and_blends_between_them():
    images = image_set(32, 32).images[:40]
    decode = LatentDecoder(images)
    assert torch.allclose(decode(encode(images)), images, atol=1e-5)
    pair = LatentDecoder(images[[3, 7]])
    midway = 0.5 * (encode(images[3:4]) + encode(images[7:8]))
    assert torch.allclose(pair.weights(midway), torch.tensor([[0.5, 0.5]], dtype=torch.float64), atol=1e-3)
    assert torch.allclose(pair(midway)[0], 0.5 * (images[3] + images[7]), atol=1e-3)
    # Off the data the blend follows the nearer latent smoothly.
    towards_7 = midway + 1e-4 * (encode(images[7:8]) - encode(images[3:4]))
    assert 0.5 < float(pair.weights(towards_7)[0, 1]) < 0.99


def test_decoder_checks_its_input():
    decode = LatentDecoder(torch.rand((4, 3, 8, 8)))
    with pytest.raises(ValueError, match="latents must be"):
        decode(torch.zeros((1, 3, 8, 8)))
    with pytest.raises(ValueError, match="decode sigma"):
        LatentDecoder(torch.rand((4, 3, 8, 8)), sigma=0.0)


def test_renderer_denoiser_is_the_exact_posterior_mean_over_data_latents():
    model = BuiltinRenderer().denoiser(64, 64)
    subset = slice(0, 384, 24)  # the brute-force loop runs over 16 of the 384 images
    data = encode(image_set().images)
    assert torch.allclose(model.data.reshape(data.shape), data, atol=1e-6)
    gen = torch.Generator().manual_seed(5)
    x = data[[0, 24, 48]] + 0.5 * torch.randn((3, 3, 16, 16), generator=gen)
    sigma = torch.tensor([0.3, 0.6, 2.0])
    logits = prompt_logit_rows(["red circle", "blue background", ""], image_set())[:, subset]
    # The brute force maps [0, 1] pictures to [-1, 1]: give it the latents in that form.
    pictures = (data[subset] / LATENT_SCALE + 1) / 2
    expected = LATENT_SCALE * brute_force_posterior_mean(pictures, x / LATENT_SCALE, sigma / LATENT_SCALE, logits)
    small = type(model)(downsample(image_set().images[subset]), scale=LATENT_SCALE)
    assert torch.allclose(small(x, sigma, cond=logits).double(), expected, atol=2e-6, rtol=0)


def top_weights_along_a_run(steps=20, batch=16):
    """Mean top posterior weight (no prompt) at each step of a plain DPM++ 2M run at CFG 7."""
    renderer = BuiltinRenderer()
    model, images = renderer.denoiser(64, 64), image_set()
    spec = hyperbatch.get_sampler("DPM++ 2M")
    sigmas = renderer.sigmas(GenerationSettings(seed=0, steps=steps), spec)
    prompts = ["red", "large ring", "green background", ""]
    cond = prompt_logit_rows([p for p in prompts for _ in range(batch)], images)
    uncond = prompt_logit_rows([""] * len(cond), images)
    x = batch_noise(range(batch), (3, 16, 16)).repeat(len(prompts), 1, 1, 1) * sigmas[0]
    tops = []
    spec.function(model, x, sigmas, extra_args={"cond": cond, "uncond": uncond, "cond_scale": 7.0}, disable=True,
                  callback=lambda info: tops.append(float(
                      model.posterior_weights(info["x"], info["sigma"], uncond).max(1).values.mean())))
    return tops


def test_samples_commit_to_one_image_in_the_second_half_of_the_schedule():
    tops = top_weights_along_a_run()
    assert len(tops) == 20
    assert max(tops[:10]) < 0.5  # undecided through the first half (the hyperbatch splits at steps 5, 10)
    assert tops[-5] > 0.95  # settled well before the end, so the decoded images are crisp
