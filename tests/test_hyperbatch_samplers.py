"""Behaviour of the hyperbatch samplers: branching, noise use, batching, progress."""
import copy

import pytest
import torch

import hyperbatch as hb
from hyperbatch.noise import BrownianNoise

HYPER = [hb.sample_dpmpp_2m_hyperbatch, hb.sample_dpmpp_sde_hyperbatch]


def denoiser(x, sigma, cond):
    """Analytic stand-in: pulls towards tanh of the conditioning, per row."""
    s = sigma.view(-1, *([1] * (x.ndim - 1)))
    return torch.tanh(cond + 0.2 * x / (1 + s))


def problem(rows, steps=20, seed=0, shape=(3, 6, 6)):
    generator = torch.Generator().manual_seed(seed)
    sigmas = hb.karras_sigmas(steps, 0.05, 10.0)
    x = torch.randn(rows, *shape, generator=generator) * sigmas[0]
    cond = torch.randn(rows, *shape, generator=generator)
    return x, sigmas, {"cond": cond}


class TableNoise:
    """Deterministic full-batch noise: one fixed draw per (rounded) interval."""

    def __init__(self, shape, seed=0):
        self.shape, self.generator, self.table = shape, torch.Generator().manual_seed(seed), {}

    def __call__(self, sigma, sigma_next):
        key = (round(float(sigma), 4), round(float(sigma_next), 4))
        if key not in self.table:
            self.table[key] = torch.randn(self.shape, generator=self.generator)
        return self.table[key]


def run(function, x, sigmas, args, **kwargs):
    if function is hb.sample_dpmpp_sde_hyperbatch and "noise_sampler" not in kwargs:
        kwargs["noise_sampler"] = TableNoise(x.shape)
    return function(denoiser, x, sigmas, extra_args=args, disable=True, **kwargs)


def min_pair_distance(images):
    flat = images.flatten(1)
    distances = torch.cdist(flat, flat)
    distances.fill_diagonal_(float("inf"))
    return distances.min().item()


def test_2m_branches_really_differ_and_collapse_without_split_noise():
    x, sigmas, args = problem(8)
    args = {"cond": args["cond"][:1].expand(8, -1, -1, -1)}  # same prompt for every image
    plain = hb.sample_dpmpp_2m(denoiser, x, sigmas, extra_args=args, disable=True)
    grown = run(hb.sample_dpmpp_2m_hyperbatch, x, sigmas, args)
    copies = run(hb.sample_dpmpp_2m_hyperbatch, x, sigmas, args, split_eta=0.0)
    assert min_pair_distance(copies) < 1e-5  # no fresh noise: duplicates, the old defect
    assert min_pair_distance(grown) > 0.2 * min_pair_distance(plain)


@pytest.mark.parametrize("function", HYPER)
def test_image_noise_reaches_only_that_image_and_its_descendants(function):
    x, sigmas, args = problem(8)
    base = run(function, x, sigmas, args)
    for changed, affected in [(4, {4, 5, 6, 7}), (2, {2, 3}), (1, {1}), (0, set(range(8)))]:
        other = x.clone()
        other[changed] += 1.0
        out = run(function, other, sigmas, args)
        differs = {j for j in range(8) if not torch.equal(out[j], base[j])}
        assert differs == affected, changed


@pytest.mark.parametrize("function", HYPER)
def test_same_inputs_give_the_same_images(function):
    x, sigmas, args = problem(6)
    if function is hb.sample_dpmpp_sde_hyperbatch:
        first = run(function, x, sigmas, args, noise_sampler=BrownianNoise(x, 0.05, 10.0, seeds=range(6)))
        again = run(function, x, sigmas, args, noise_sampler=BrownianNoise(x, 0.05, 10.0, seeds=range(6)))
    else:
        first, again = run(function, x, sigmas, args), run(function, x, sigmas, args)
    assert torch.equal(first, again)
    assert torch.isfinite(first).all()


@pytest.mark.parametrize("function", HYPER)
def test_callers_inputs_are_not_mutated(function):
    x, sigmas, args = problem(4)
    args = {"cond": args["cond"], "names": ["a", "b", "c", "d"], "pair": ("p", "q", "r", "s"), "scale": 7.0}

    def model(x_rows, sigma, cond, names, pair, scale):
        assert len(names) == len(pair) == x_rows.shape[0] == cond.shape[0]
        return denoiser(x_rows, sigma, cond)

    before_x, before_args = x.clone(), copy.deepcopy(args)
    kwargs = {"noise_sampler": TableNoise(x.shape)} if function is hb.sample_dpmpp_sde_hyperbatch else {}
    function(model, x, sigmas, extra_args=args, disable=True, **kwargs)
    assert torch.equal(x, before_x)
    assert torch.equal(args["cond"], before_args["cond"])
    assert args["names"] == before_args["names"] and args["pair"] == before_args["pair"]


@pytest.mark.parametrize("function", HYPER)
@pytest.mark.parametrize("batch_size", [8, 5])
def test_population_groups_equal_one_call_per_group(function, batch_size):
    groups = 3
    x, sigmas, args = problem(groups * batch_size, steps=12)
    noise = TableNoise(x.shape, seed=5)
    together = run(function, x, sigmas, args, group_size=batch_size, noise_sampler=noise) \
        if function is hb.sample_dpmpp_sde_hyperbatch else run(function, x, sigmas, args, group_size=batch_size)
    for g in range(groups):
        part = slice(g * batch_size, (g + 1) * batch_size)
        kwargs = {}
        if function is hb.sample_dpmpp_sde_hyperbatch:
            kwargs["noise_sampler"] = lambda a, b, part=part: noise(a, b)[part]
        alone = run(function, x[part], sigmas, {"cond": args["cond"][part]}, **kwargs)
        assert (together[part] - alone).abs().max() < 1e-5


def test_group_size_must_divide_the_batch():
    x, sigmas, args = problem(10, steps=6)
    with pytest.raises(ValueError, match="group_size"):
        run(hb.sample_dpmpp_2m_hyperbatch, x, sigmas, args, group_size=4)


def test_branch_noise_must_match_x():
    x, sigmas, args = problem(4, steps=6)
    with pytest.raises(ValueError, match="branch_noise"):
        run(hb.sample_dpmpp_2m_hyperbatch, x, sigmas, args, branch_noise=torch.zeros(2, 3, 6, 6))


def test_bad_sigmas_are_rejected():
    x, _, args = problem(2, steps=6)
    with pytest.raises(ValueError, match="sigmas"):
        run(hb.sample_dpmpp_2m_hyperbatch, x, torch.tensor([1.0]), args)


def test_progress_counts_image_steps_and_img2img_scales_the_splits():
    x, sigmas, args = problem(8, steps=20)
    truncated = sigmas[8:]  # img2img at strength 0.6: 12 of 20 steps run
    seen, traces = [], []
    hb.sample_dpmpp_2m_hyperbatch(denoiser, x, truncated, extra_args=args, disable=True,
                                  callback=seen.append, trace_out=traces)
    assert [len(d["rows"]) for d in seen] == [1, 1, 1, 2, 2, 2, 4, 4, 4, 8, 8, 8]
    assert seen[-1]["image_steps_done"] == seen[-1]["image_steps_total"] == 3 * (1 + 2 + 4 + 8)
    assert [d["i"] for d in seen] == list(range(12))
    assert (traces[0] == hb.traces(8, 12)).all()


def test_registry_names_and_lookup():
    assert set(hb.SAMPLERS) == {
        "Euler", "Euler a", "DPM++ 2M", "DPM++ SDE", "DPM++ 2M Karras - Hyperbatch",
        "DPM++ SDE Karras - Hyperbatch", "DPM++ SDE - Hyperbatch"}
    spec = hb.get_sampler("DPM++ SDE Karras - Hyperbatch")
    assert spec.hyperbatch and spec.needs_noise_sampler and spec.scheduler == "karras"
    assert not hb.get_sampler("DPM++ 2M").hyperbatch
    with pytest.raises(ValueError, match="DPM\\+\\+ 2M Karras - Hyperbatch"):
        hb.get_sampler("DPM++ 2M Hyperbatch")


def test_every_registered_sampler_runs():
    x, sigmas, args = problem(4, steps=6)
    for name, spec in hb.SAMPLERS.items():
        kwargs = {"noise_sampler": TableNoise(x.shape)} if spec.needs_noise_sampler else {}
        out = spec.function(denoiser, x, sigmas, extra_args=args, disable=True, **kwargs)
        assert out.shape == x.shape and torch.isfinite(out).all(), name
