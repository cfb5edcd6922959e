"""The built-in denoiser: exact colour posteriors per layout, layout weights from structure, SD-style guidance."""
import pytest
import torch

from prompt_pinning.builtin import conditioning as cnd
from prompt_pinning.builtin.conditioning import conditioning_rows, pair_conditioning
from prompt_pinning.builtin.denoiser import LayoutDenoiser
from prompt_pinning.builtin.latents import LATENT_SCALE
from prompt_pinning.builtin.layouts import Layouts, draw_layouts


def few_layouts(count=10):
    full = draw_layouts()
    return Layouts(*(getattr(full, f)[:count] for f in ("shape", "centre_x", "centre_y", "radius", "rotation",
                                                        "shade")))


def brute_force_denoise(model, x, sigma, prior):
    """Dense float64 Gaussian conditioning per layout and channel, no 2x2 shortcut."""
    rows, channels = x.shape[0], 3
    out = torch.zeros(x.shape, dtype=torch.float64)
    for r in range(rows):
        geometry = prior[r, cnd.GEOMETRY]
        u, v = model._latent_bases(geometry)
        k = model._latent_bases(torch.tensor(model_neutral()))[0]
        xs = x[r, 3].double().flatten() + LATENT_SCALE
        logw = torch.stack([-((xs - k[l]) ** 2).sum() / (2 * sigma[r] ** 2) for l in range(len(k))])
        w = torch.softmax(logw, 0)
        for l in range(len(k)):
            basis = torch.stack([u[l], v[l]], 1)  # (P, 2)
            for c in range(channels):
                mean = torch.stack([prior[r, cnd.FG_MEAN][c], prior[r, cnd.BG_MEAN][c]]).double()
                cov = torch.diag(torch.stack([prior[r, cnd.FG_STD][c], prior[r, cnd.BG_STD][c]]).double() ** 2)
                z_mean = basis @ mean - LATENT_SCALE
                z_cov = basis @ cov @ basis.t()
                x_cov = z_cov + sigma[r] ** 2 * torch.eye(len(z_mean), dtype=torch.float64)
                posterior = z_mean + z_cov @ torch.linalg.solve(x_cov, x[r, c].double().flatten() - z_mean)
                out[r, c] += w[l] * posterior.reshape(x.shape[2:])
            out[r, 3] += w[l] * (k[l] - LATENT_SCALE).reshape(x.shape[2:])
    return out


def model_neutral():
    from prompt_pinning.builtin.layouts import neutral_geometry
    return neutral_geometry().tolist()


@pytest.mark.parametrize("sigma_value", [0.02, 0.3, 2.0, 20.0])
def test_equals_dense_gaussian_conditioning_on_a_tiny_case(sigma_value):
    model = LayoutDenoiser(12, 12, layouts=few_layouts())
    gen = torch.Generator().manual_seed(int(sigma_value * 100))
    cond, _ = conditioning_rows([("(large:1.3) red ring, left", "blue"), ("green background", ""),
                                 ("a small (yellow:0.7) triangle", "square")])
    x = 0.15 * torch.randn((3, 4, 3, 3), generator=gen) + sigma_value * torch.randn((3, 4, 3, 3), generator=gen)
    sigma = sigma_value * (0.5 + torch.rand(3, generator=gen))  # per-row sigmas
    expected = brute_force_denoise(model, x, sigma.double(), cond)
    got = model(x, sigma, cond=cond).double()
    assert torch.allclose(got, expected, atol=1e-5 + 1e-5 * float(expected.abs().max()), rtol=0)


def test_guidance_is_uncond_plus_scale_times_difference_and_leaves_structure_alone():
    model = LayoutDenoiser(16, 16)
    cond, uncond = conditioning_rows([("red circle on a blue background", "green")] * 2)
    x = torch.randn((2, 4, 4, 4), generator=torch.Generator().manual_seed(1)) * 0.5
    positive = model(x, 0.4, cond=cond)
    negative = model(x, 0.4, cond=uncond)
    guided = model(x, 0.4, cond=cond, uncond=uncond, cond_scale=7.0)
    assert torch.allclose(guided, negative + 7.0 * (positive - negative), atol=1e-5)
    assert torch.equal(guided[:, 3], positive[:, 3]) and torch.equal(positive[:, 3], negative[:, 3])
    assert torch.equal(model(x, 0.4, cond=cond, uncond=uncond, cond_scale=1.0), positive)


def test_layout_weights_ignore_the_prompt():
    model = LayoutDenoiser(16, 16)
    x = torch.randn((1, 4, 4, 4), generator=torch.Generator().manual_seed(2))
    red = model(x, 0.5, cond=conditioning_rows([("red", "")])[0])
    ring = model(x, 0.5, cond=conditioning_rows([("large blue ring, left", "")])[0])
    assert torch.equal(red[:, 3], ring[:, 3]) and not torch.equal(red[:, :3], ring[:, :3])


def test_prior_only_at_huge_sigma_and_a_fitted_layout_at_tiny_sigma():
    model = LayoutDenoiser(16, 16)
    cond = conditioning_rows([("a red circle", "")])[0]
    prior = cond[0]
    far = model(torch.zeros((1, 4, 4, 4)), 1e4, cond=cond)
    # At huge sigma every layout is equally likely: the mean picture at the prior's mean colours.
    u, v = model._latent_bases(prior[cnd.GEOMETRY])
    mean_picture = torch.stack([prior[cnd.FG_MEAN][c] * u.mean(0) + prior[cnd.BG_MEAN][c] * v.mean(0)
                                for c in range(3)]) - LATENT_SCALE
    assert torch.allclose(far[0, :3].reshape(3, -1).double(), mean_picture, atol=1e-5)
    assert torch.allclose(far[0, 3].flatten().double(), model.structure.double().mean(0) - LATENT_SCALE, atol=1e-5)
    # A latent built from layout 5 with given colours denoises to itself.
    structure = model.structure[5].double()
    colours = torch.tensor([[0.9, 0.2], [0.1, 0.5], [0.3, 0.8]], dtype=torch.float64)
    latent = torch.stack([colours[c, 0] * u[5] + colours[c, 1] * v[5] for c in range(3)] + [structure]) - LATENT_SCALE
    latent = latent.reshape(1, 4, 4, 4).float()
    assert torch.allclose(model(latent, 1e-4, cond=cond), latent, atol=1e-5)


def test_output_is_continuous_in_the_conditioning():
    model = LayoutDenoiser(32, 32)
    x = torch.randn((2, 4, 8, 8), generator=torch.Generator().manual_seed(4)) * 0.6
    base = torch.stack([pair_conditioning("red circle")[0], pair_conditioning("blue ring")[0]])
    direction = torch.zeros_like(base)
    direction[:, cnd.FG_MEAN] = 1.0
    changes = [float((model(x, 0.5, cond=base + eps * direction) - model(x, 0.5, cond=base)).abs().max())
               for eps in (1e-3, 2e-3, 4e-3)]
    assert 0 < changes[0] < changes[1] < changes[2] < 0.05
    assert changes[2] / changes[0] == pytest.approx(4.0, rel=0.1)  # linear in the prior mean


def test_bad_shapes_name_the_input():
    model = LayoutDenoiser(16, 16)
    cond, uncond = conditioning_rows([("red", ""), ("blue", "")])
    with pytest.raises(ValueError, match="cond must be"):
        model(torch.zeros((2, 4, 4, 4)), 1.0, cond=cond[:, :5])
    with pytest.raises(ValueError, match="uncond"):
        model(torch.zeros((2, 4, 4, 4)), 1.0, cond=cond, uncond=uncond[:1], cond_scale=2.0)
    with pytest.raises(ValueError, match="same geometry"):
        model(torch.zeros((2, 4, 4, 4)), 1.0, cond=cond, uncond=conditioning_rows([("large", "")] * 2)[1],
              cond_scale=2.0)
    with pytest.raises(ValueError, match="x must be"):
        model(torch.zeros((2, 3, 4, 4)), 1.0, cond=cond)
    with pytest.raises(ValueError, match="sigma"):
        model(torch.zeros((2, 4, 4, 4)), torch.ones(3), cond=cond)
    with pytest.raises(ValueError, match="width"):
        LayoutDenoiser(4, 16)
