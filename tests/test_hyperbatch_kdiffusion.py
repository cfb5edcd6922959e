"""Our samplers against the real k-diffusion package's samplers (see host_kdiffusion)."""
import pytest
import torch

import host_kdiffusion
import hyperbatch as hb

# k-diffusion queries its Brownian tree a float32 hair outside the tree's range.
pytestmark = pytest.mark.filterwarnings("ignore:Should have t:UserWarning")


@pytest.fixture(scope="module")
def kd():
    return host_kdiffusion.install()


def smooth_denoiser(x, sigma, cond=None):
    """A nonlinear stand-in denoiser that depends on x, sigma and conditioning."""
    s = sigma.view(-1, *([1] * (x.ndim - 1)))
    shift = 0.0 if cond is None else cond
    return torch.tanh(0.3 * x / (1 + s) + shift) * (1 + 0.1 * torch.cos(s))


def _problem(rows=1, steps=12, seed=0):
    generator = torch.Generator().manual_seed(seed)
    sigmas = hb.karras_sigmas(steps, 0.03, 14.6)
    x = torch.randn(rows, 3, 8, 8, generator=generator) * sigmas[0]
    cond = torch.randn(rows, 3, 8, 8, generator=generator) * 0.5
    return x, sigmas, {"cond": cond}


def test_sigma_schedules_equal_kdiffusion(kd):
    for n in (1, 5, 20):
        assert torch.allclose(hb.karras_sigmas(n, 0.03, 14.6), kd.get_sigmas_karras(n, 0.03, 14.6))
        assert torch.allclose(hb.exponential_sigmas(n, 0.03, 14.6), kd.get_sigmas_exponential(n, 0.03, 14.6))


@pytest.mark.parametrize("name", ["sample_euler", "sample_dpmpp_2m"])
def test_plain_samplers_equal_kdiffusion(kd, name):
    x, sigmas, args = _problem(rows=3)
    ours = getattr(hb, name)(smooth_denoiser, x, sigmas, extra_args=args, disable=True)
    theirs = getattr(kd, name)(smooth_denoiser, x, sigmas, extra_args=args, disable=True)
    assert (ours - theirs).abs().max() < 1e-5


@pytest.mark.parametrize("function", [hb.sample_dpmpp_2m, hb.sample_dpmpp_2m_hyperbatch])
def test_2m_with_one_image_equals_kdiffusion(kd, function):
    for steps in (1, 2, 7, 20):
        x, sigmas, args = _problem(rows=1, steps=steps, seed=steps)
        ours = function(smooth_denoiser, x, sigmas, extra_args=args, disable=True)
        theirs = kd.sample_dpmpp_2m(smooth_denoiser, x, sigmas, extra_args=args, disable=True)
        assert (ours - theirs).abs().max() < 1e-5, steps


@pytest.mark.parametrize("function", [hb.sample_dpmpp_sde, hb.sample_dpmpp_sde_hyperbatch])
@pytest.mark.parametrize("eta", [0.0, 1.0])
def test_sde_with_one_image_equals_kdiffusion_brownian(kd, function, eta):
    x, sigmas, args = _problem(rows=1, steps=10)
    # k-diffusion's own Brownian-tree noise, shared by both runs.
    noise = kd.BrownianTreeNoiseSampler(x, sigmas[sigmas > 0].min(), sigmas.max(), seed=1234)
    ours = function(smooth_denoiser, x, sigmas, extra_args=args, disable=True, eta=eta, noise_sampler=noise)
    theirs = kd.sample_dpmpp_sde(smooth_denoiser, x, sigmas, extra_args=args, disable=True, eta=eta,
                                 noise_sampler=noise)
    assert (ours - theirs).abs().max() < 1e-5


@pytest.mark.parametrize("eta", [0.0, 0.7, 1.0])
def test_euler_ancestral_equals_kdiffusion_brownian(kd, eta):
    x, sigmas, args = _problem(rows=2, steps=8)
    noise = kd.BrownianTreeNoiseSampler(x, sigmas[sigmas > 0].min(), sigmas.max(), seed=99)
    ours = hb.sample_euler_ancestral(smooth_denoiser, x, sigmas, extra_args=args, disable=True, eta=eta,
                                     noise_sampler=noise, s_noise=0.9)
    theirs = kd.sample_euler_ancestral(smooth_denoiser, x, sigmas, extra_args=args, disable=True, eta=eta,
                                       noise_sampler=noise, s_noise=0.9)
    assert (ours - theirs).abs().max() < 1e-5
    if eta:
        plain = hb.sample_euler(smooth_denoiser, x, sigmas, extra_args=args, disable=True)
        assert (ours - plain).abs().max() > 1e-3  # the fresh noise matters


def test_sde_hyperbatch_one_image_equals_kdiffusion_with_explicit_noise(kd):
    x, sigmas, args = _problem(rows=1, steps=9, seed=3)
    draws = torch.Generator().manual_seed(7)
    table = {}

    def noise(sigma, sigma_next):  # same draw for the same (rounded) interval
        key = (round(float(sigma), 4), round(float(sigma_next), 4))
        if key not in table:
            table[key] = torch.randn(x.shape, generator=draws)
        return table[key]

    ours = hb.sample_dpmpp_sde_hyperbatch(smooth_denoiser, x, sigmas, extra_args=args, disable=True,
                                          noise_sampler=noise, s_noise=0.8)
    theirs = kd.sample_dpmpp_sde(smooth_denoiser, x, sigmas, extra_args=args, disable=True,
                                 noise_sampler=noise, s_noise=0.8)
    assert len(table) == 2 * 8  # two draws per step except the last (Euler) step
    assert (ours - theirs).abs().max() < 1e-5


def test_disabled_doubling_equals_kdiffusion_full_batch(kd):
    # 8 images in 3 steps: 3 <= log2(8), so every step runs the whole batch.
    x, sigmas, args = _problem(rows=8, steps=3)
    ours = hb.sample_dpmpp_2m_hyperbatch(smooth_denoiser, x, sigmas, extra_args=args, disable=True)
    theirs = kd.sample_dpmpp_2m(smooth_denoiser, x, sigmas, extra_args=args, disable=True)
    assert (ours - theirs).abs().max() < 1e-5
