import math
import warnings

import numpy as np
import pytest
from deap import cma

from prompt_pinning.config import ConfigError, PinningConfig
from prompt_pinning.search.optimizer import (
    Candidate, CmaOptimizer, SizeLimitedOptimizer, default_generations, default_lambda,
    derive_cma_seed, make_optimizer, resolve_cma_seed, resolve_generations,
)
from prompt_pinning.rendering import GenerationSettings


def config(**kw):
    return PinningConfig(positive="a red circle", **kw)


def run_sphere(opt, f, generations):
    for _ in range(generations):
        population = opt.ask()
        for c in population:
            offsets, penalty = opt.rendered(c)
            opt.assign(c, f(offsets))
        opt.tell(population)


def test_default_generations_gives_tiny_prompts_a_budget_cma_can_search_with():
    assert default_generations(1) == 16
    assert default_generations(2) == 16  # int(16 * floor(log 2)) == 0
    assert default_generations(2) * default_lambda(2) >= 90
    assert default_generations(3) == 16
    assert default_generations(20) == 16 * math.floor(math.log(20))
    assert resolve_generations(config(generations=None), 8) == 32
    assert resolve_generations(config(generations=5), 8) == 5


def test_cma_seed_derives_from_seed_and_subseed():
    a = derive_cma_seed(1234, 0)
    assert a == derive_cma_seed(1234, 0)
    assert a != derive_cma_seed(1234, 1) and a != derive_cma_seed(1235, 0)
    assert 0 <= derive_cma_seed(-1, -7) < 2**32
    gen = GenerationSettings(seed=77, subseed=3)
    assert resolve_cma_seed(config(generation=gen)) == derive_cma_seed(77, 3)
    assert resolve_cma_seed(config(generation=gen, cma_seed=5)) == 5


def test_defaults_are_resolved_from_the_strategy_and_recorded():
    n = 7
    opt = CmaOptimizer(config(), n, cma_seed=1)
    r = opt.resolved
    lam = int(4 + 3 * math.log(n))
    mu = lam // 2
    w = math.log(mu + 0.5) - np.log(np.arange(1, mu + 1))
    mueff = w.sum() ** 2 / (w**2).sum()
    assert r["lambda_"] == lam == default_lambda(n) and r["mu"] == mu
    assert r["weights"] == "superlinear" and r["cmatrix"] == "identity"
    assert r["cs"] == pytest.approx((mueff + 2) / (n + mueff + 3))
    assert r["ccum"] == pytest.approx(4 / (n + 4))
    assert r["ccov1"] == pytest.approx(2 / ((n + 1.3) ** 2 + mueff))
    assert r["ccovmu"] == pytest.approx(min(1 - r["ccov1"], 2 * (mueff - 2 + 1 / mueff) / ((n + 2) ** 2 + mueff)))
    assert r["damps"] == pytest.approx(1 + 2 * max(0, math.sqrt((mueff - 1) / (n + 1)) - 1) + r["cs"])
    assert r["sigma"] == 0.1
    assert np.all(np.abs(r["initial_centroid"]) <= 0.25)


def test_set_parameters_are_used_and_zero_means_auto():
    opt = CmaOptimizer(config(lambda_=9, mu=3, weights="equal", cs=0.3, damps=2.0, ccum=0.2,
                              ccov1=0.01, ccovmu=0.02, initial_radius=0.1), 5, cma_seed=2)
    s = opt.strategy
    assert (s.lambda_, s.mu, s.cs, s.damps, s.cc, s.ccov1, s.ccovmu) == (9, 3, 0.3, 2.0, 0.2, 0.01, 0.02)
    assert np.allclose(s.weights, 1 / 3)
    assert len(opt.ask()) == 9
    zeroed = CmaOptimizer(config(lambda_=0, cs=0.0), 5, cma_seed=2).resolved
    assert zeroed["lambda_"] == default_lambda(5)
    assert zeroed["cs"] == CmaOptimizer(config(), 5, cma_seed=2).resolved["cs"]


def test_cmatrix_is_checked_and_used():
    c = np.diag([1.0, 4.0, 9.0])
    opt = CmaOptimizer(config(cmatrix=c), 3, cma_seed=3)
    assert np.allclose(opt.distribution().diag_std, 0.1 * np.array([1, 2, 3]))
    with pytest.raises(ConfigError, match="cmatrix.*3x3"):
        CmaOptimizer(config(cmatrix=np.eye(2)), 3, cma_seed=3)
    with pytest.raises(ConfigError, match="cmatrix.*positive definite"):
        CmaOptimizer(config(cmatrix=-np.eye(3)), 3, cma_seed=3)
    with pytest.raises(ConfigError, match="mu"):
        CmaOptimizer(config(mu=50), 3, cma_seed=3)


def test_host_numpy_random_state_is_untouched_and_run_is_reproducible():
    np.random.seed(99)
    before = np.random.get_state()
    first = CmaOptimizer(config(), 6, cma_seed=11)
    second = CmaOptimizer(config(), 6, cma_seed=11)
    run_sphere(first, lambda x: float(np.sum(x**2)), 5)
    np.random.standard_normal(3)  # the host draws in between: must not matter
    run_sphere(second, lambda x: float(np.sum(x**2)), 5)
    np.random.set_state(before)
    assert np.random.standard_normal() == np.random.RandomState(99).standard_normal()
    assert np.array_equal(first.strategy.centroid, second.strategy.centroid)
    assert first.strategy.sigma == second.strategy.sigma


def test_plain_cma_minimises_a_shifted_sphere_and_tightens():
    target = np.array([0.2, -0.1, 0.05, 0.0])
    opt = CmaOptimizer(config(initial_std=0.1), 4, cma_seed=5)
    start = opt.distribution().diag_std.copy()
    run_sphere(opt, lambda x: float(np.sum((x - target) ** 2)), 80)
    assert np.linalg.norm(opt.strategy.centroid - target) < 1e-3
    assert np.all(opt.distribution().diag_std < start / 10)


def saved_and_read_back(opt, tmp_path):
    """state() through the checkpoint's own formats: JSON scalars and an .npz read without pickle."""
    from prompt_pinning.run.files import npz_bytes, read_json, read_npz, write_bytes_atomic, write_json_atomic

    scalars, arrays = opt.state()
    write_json_atomic(tmp_path / "s.json", scalars)
    write_bytes_atomic(tmp_path / "a.npz", npz_bytes(arrays))
    expected = {k: ("fu", lambda shape, want=v.shape: shape == want) for k, v in arrays.items()}
    return read_json(tmp_path / "s.json"), read_npz(tmp_path / "a.npz", expected)


def continue_both(opt, copy, f, generations=3):
    for _ in range(generations):
        a, b = opt.ask(), copy.ask()
        assert np.array_equal(np.array(a), np.array(b))  # bit for bit
        for x, y in zip(a, b):
            opt.assign(x, f(opt.rendered(x)[0]))
            copy.assign(y, f(copy.rendered(y)[0]))
        opt.tell(a)
        copy.tell(b)


@pytest.mark.parametrize("options", [{}, {"cmatrix": np.diag([1.0, 2.0, 0.5, 1.5, 1.0]), "weights": "linear"},
                                     {"size_limit": 0.3}, {"size_limit": 0.3, "lambda_": 7, "mu": 4}])
def test_restored_optimizer_continues_identically(options, tmp_path):
    f = lambda x: float(np.sum((x - 1) ** 2))  # noqa: E731
    opt = make_optimizer(config(**options), 5, cma_seed=8)
    run_sphere(opt, f, 3)
    copy = make_optimizer(config(**options), 5, cma_seed=8)
    copy.restore(*saved_and_read_back(opt, tmp_path))
    continue_both(opt, copy, f)


def test_a_size_limited_optimizer_restores_before_its_first_generation(tmp_path):
    opt = SizeLimitedOptimizer(config(size_limit=0.3), 4, cma_seed=3)
    opt.ask()  # draws from the run's random state
    copy = SizeLimitedOptimizer(config(size_limit=0.3), 4, cma_seed=3)
    copy.restore(*saved_and_read_back(opt, tmp_path))
    assert copy.strategy is None
    continue_both(opt, copy, lambda x: float(np.sum(x**2)))


@pytest.mark.parametrize("damage", ["nan", "shape", "sigma", "rng", "missing"])
def test_restore_refuses_bad_state(damage):
    from prompt_pinning.search.optimizer import StateError

    opt = CmaOptimizer(config(), 3, cma_seed=1)
    scalars, arrays = opt.state()
    arrays = {k: v.copy() for k, v in arrays.items()}
    if damage == "nan":
        arrays["C"][0, 0] = np.nan
    elif damage == "shape":
        arrays["centroid"] = np.zeros(4)
    elif damage == "sigma":
        scalars["sigma"] = -1.0
    elif damage == "rng":
        scalars["pos"] = 10**6
    else:
        del arrays["B"]
    with pytest.raises(StateError):
        CmaOptimizer(config(), 3, cma_seed=1).restore(scalars, arrays)


@pytest.mark.parametrize("size_limit", [0.0, 0.5])
def test_lambda_of_one_runs(size_limit):
    # DEAP's default mu = int(lambda_ / 2) is 0 for lambda_ = 1: a division by zero before the fix.
    opt = make_optimizer(config(lambda_=1, size_limit=size_limit), 3, cma_seed=1)
    run_sphere(opt, lambda x: float(np.sum(x**2)), 3)
    assert opt.resolved["mu"] == 1 and len(opt.ask()) == 1


def test_deap_mo_strategy_crashes_with_one_objective_root_cause():
    """The original extension's crash: MO-CMA fed a single-objective fitness."""
    rng = np.random.RandomState(0)
    population = [Candidate(rng.uniform(-1, 1, 4)) for _ in range(6)]
    for c in population:
        c.fitness.values = (float(np.sum(np.square(c))),)  # 6 distinct single values
    strategy = cma.StrategyMultiObjective(population, sigma=0.1, mu=6, lambda_=6)
    saved = np.random.get_state()
    try:
        offspring = strategy.generate(Candidate)
        for c in offspring:
            c.fitness.values = (float(np.sum(np.square(c))),)
        with pytest.raises(IndexError):
            strategy.update(offspring)
    finally:
        np.random.set_state(saved)


@pytest.mark.parametrize("lambda_, mu", [(6, 6), (5, 3), (8, None)])
def test_size_limiter_runs_where_deap_crashed_and_respects_the_limit(lambda_, mu):
    limit = 0.3
    opt = make_optimizer(config(size_limit=limit, lambda_=lambda_, mu=mu, initial_radius=0.6), 4, cma_seed=4)
    assert isinstance(opt, SizeLimitedOptimizer)
    assert opt.error == pytest.approx(limit / 100) and opt.weight == pytest.approx(limit * 10)
    target = np.full(4, 1.0)  # the loss pulls far outside the limit
    seen = []
    for g in range(1, 25):
        population = opt.ask()
        assert len(population) == opt.population_size(g)
        for c in population:
            offsets, penalty = opt.rendered(c)
            seen.append(np.linalg.norm(offsets))
            raw = np.linalg.norm(c)
            assert penalty == (0.0 if raw <= limit + opt.error else pytest.approx(opt.weight * (raw - limit)))
            opt.assign(c, float(np.sum((offsets - target) ** 2)))
            assert len(c.fitness.values) == 2
        opt.tell(population)
    assert max(seen) <= limit + opt.error + 1e-12
    assert opt.distribution().diag_std.shape == (4,)


def test_size_limiter_handles_ties():
    """Equal losses (DEAP's sort once crashed on them): the parents kept are the closest ones."""
    opt = SizeLimitedOptimizer(config(size_limit=0.2, lambda_=6), 3, cma_seed=1)
    previous = []
    for _ in range(6):
        population = opt.ask()
        for c in population:
            opt.assign(c, 1.0)  # every loss equal: only distance separates them
        opt.tell(population)
        pool = sorted(c.fitness.values[1] for c in [*previous, *population])
        kept = sorted(c.fitness.values[1] for c in opt.strategy.parents)
        assert kept == pool[:opt.mu]
        previous = list(opt.strategy.parents)
    assert max(kept) < max(pool)  # some were dropped for being farther


def test_size_limiter_warns_about_plain_cma_only_options(caplog):
    SizeLimitedOptimizer(config(size_limit=1.0, cs=0.3), 3, cma_seed=1)
    assert "cs" in caplog.text and "ignored" in caplog.text


def test_no_warnings_from_many_optimizers():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for seed in range(10):
            run_sphere(make_optimizer(config(), 3, seed), lambda x: float(np.sum(x**2)), 2)
            run_sphere(make_optimizer(config(size_limit=0.5), 3, seed), lambda x: float(np.sum(x**2)), 2)


@pytest.mark.parametrize("options", [dict(lambda_=5), dict(size_limit=0.3, lambda_=6, mu=3)])
def test_population_runs_match_population_sizes_and_stay_small_for_any_length(options):
    opt = make_optimizer(config(**options), 4, cma_seed=1)
    for first, last in [(1, 7), (2, 7), (5, 5), (6, 5)]:
        expanded = [size for size, count in opt.population_runs(first, last) for _ in range(count)]
        assert expanded == [opt.population_size(g) for g in range(first, last + 1)]
    runs = opt.population_runs(1, 10**15)  # a plan for a huge run is a few pairs, not a list per generation
    assert len(runs) <= 2 and sum(count for _, count in runs) == 10**15


def test_cmatrix_magnitude_is_bounded_and_the_message_names_the_bound():
    from prompt_pinning.search.optimizer import CMATRIX_MAX_ABS

    with pytest.raises(ConfigError, match=r"cmatrix.*\+-10000.*1e\+308"):
        CmaOptimizer(config(cmatrix=1e308 * np.eye(3)), 3, cma_seed=3)
    CmaOptimizer(config(cmatrix=CMATRIX_MAX_ABS * np.eye(3)), 3, cma_seed=3)  # the bound itself is fine
