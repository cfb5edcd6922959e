"""The built-in denoiser is the exact posterior mean, with SD-style guidance."""
import math

import pytest
import torch

from prompt_pinning.builtin.conditioning import prompt_logit_rows
from prompt_pinning.builtin.denoiser import PosteriorMeanDenoiser, to_model_space
from prompt_pinning.builtin.images import image_set


def brute_force_posterior_mean(images01, x, sigma, logits):
    """Explicit loop over images in float64: sum_n p(n | x) y_n."""
    data = to_model_space(images01.double())
    out = torch.zeros(x.shape, dtype=torch.float64)
    for row in range(x.shape[0]):
        log_weights = []
        for n in range(data.shape[0]):
            squared = float(((x[row].double() - data[n]) ** 2).sum())
            log_weights.append(float(logits[row, n]) - squared / (2.0 * float(sigma[row]) ** 2))
        top = max(log_weights)
        weights = [math.exp(v - top) for v in log_weights]
        total = sum(weights)
        for n, w in enumerate(weights):
            out[row] += (w / total) * data[n]
    return out


@pytest.mark.parametrize("sigma_value", [0.3, 2.0, 10.0, 80.0])
def test_equals_brute_force_posterior_mean_on_random_inputs(sigma_value):
    gen = torch.Generator().manual_seed(int(sigma_value * 10))
    images01 = torch.rand((12, 3, 6, 5), generator=gen)
    model = PosteriorMeanDenoiser(images01)
    rows = 5
    picks = torch.randint(0, 12, (rows,), generator=gen)
    x = to_model_space(images01[picks]) + sigma_value * torch.randn((rows, 3, 6, 5), generator=gen)
    sigma = sigma_value * (0.5 + torch.rand(rows, generator=gen))  # per-row sigmas
    logits = 3.0 * torch.randn((rows, 12), generator=gen)
    expected = brute_force_posterior_mean(images01, x, sigma, logits)
    assert torch.allclose(model(x, sigma, cond=logits).double(), expected, atol=2e-5, rtol=0)


def test_equals_brute_force_on_the_builtin_set():
    images = image_set()
    subset = images.images[::24]  # 16 real images keep the float64 loop quick
    model = PosteriorMeanDenoiser(subset)
    gen = torch.Generator().manual_seed(3)
    x = to_model_space(subset[:3]) + 6.0 * torch.randn((3, 3, 64, 64), generator=gen)
    sigma = torch.tensor([6.0, 12.0, 40.0])
    logits = prompt_logit_rows(["red circle", "blue background", ""], images)[:, ::24]
    expected = brute_force_posterior_mean(subset, x, sigma, logits)
    assert torch.allclose(model(x, sigma, cond=logits).double(), expected, atol=2e-5, rtol=0)


def test_guidance_is_uncond_plus_scale_times_difference():
    images01 = torch.rand((10, 3, 4, 4), generator=torch.Generator().manual_seed(0))
    model = PosteriorMeanDenoiser(images01)
    x = torch.randn((4, 3, 4, 4), generator=torch.Generator().manual_seed(1)) * 2.0
    cond, uncond = torch.randn((4, 10)), torch.zeros((4, 10))
    positive = model(x, torch.tensor(2.0), cond=cond)
    negative = model(x, torch.tensor(2.0), cond=uncond)
    guided = model(x, torch.tensor(2.0), cond=cond, uncond=uncond, cond_scale=7.0)
    assert torch.allclose(guided, negative + 7.0 * (positive - negative), atol=1e-5)
    assert torch.equal(model(x, 2.0, cond=cond, uncond=uncond, cond_scale=1.0), positive)


def test_prior_only_at_huge_sigma_and_nearest_image_at_tiny_sigma():
    images01 = torch.rand((6, 3, 4, 4), generator=torch.Generator().manual_seed(2))
    model = PosteriorMeanDenoiser(images01)
    logits = torch.tensor([[0.0, 5.0, 0.0, 0.0, 0.0, 0.0]])
    data = to_model_space(images01)
    near = model(data[3:4] + 1e-3, torch.tensor(1e-3), cond=logits)
    assert torch.allclose(near, data[3:4], atol=1e-4)
    far = model(torch.zeros((1, 3, 4, 4)), torch.tensor(1e4), cond=logits)
    prior = torch.softmax(logits[0], 0)
    assert torch.allclose(far[0], (prior[:, None, None, None] * data).sum(0), atol=1e-4)


def test_output_is_continuous_in_the_logits():
    images = image_set()
    model = PosteriorMeanDenoiser(images.images)
    x = torch.randn((2, 3, 64, 64), generator=torch.Generator().manual_seed(4)) * 5.0
    base = prompt_logit_rows(["red circle", "blue"], images)
    direction = prompt_logit_rows(["large", "square"], images)
    changes = [float((model(x, 5.0, cond=base + eps * direction) - model(x, 5.0, cond=base)).abs().max())
               for eps in (1e-3, 2e-3, 4e-3)]
    assert 0 < changes[0] < changes[1] < changes[2] < 0.05
    assert changes[2] / changes[0] == pytest.approx(4.0, rel=0.1)  # locally linear


def test_bad_shapes_name_the_input():
    model = PosteriorMeanDenoiser(torch.rand((5, 3, 4, 4)))
    with pytest.raises(ValueError, match="logits"):
        model(torch.zeros((2, 3, 4, 4)), 1.0, cond=torch.zeros((2, 4)))
    with pytest.raises(ValueError, match="uncond"):
        model(torch.zeros((2, 3, 4, 4)), 1.0, cond=torch.zeros((2, 5)), uncond=torch.zeros((1, 5)), cond_scale=2.0)
    with pytest.raises(ValueError, match="x must be"):
        model(torch.zeros((2, 3, 4, 5)), 1.0, cond=torch.zeros((2, 5)))
    with pytest.raises(ValueError, match="sigma"):
        model(torch.zeros((2, 3, 4, 4)), torch.ones(3), cond=torch.zeros((2, 5)))
    with pytest.raises(ValueError, match="images"):
        PosteriorMeanDenoiser(torch.rand((5, 4, 4)))
