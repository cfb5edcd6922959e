"""CMA-ES over weight offsets, built on DEAP, with an optional size limiter.

Two strategies share one small interface (``ask``/``tell``/``distribution``):

* ``CmaOptimizer`` wraps ``deap.cma.Strategy``. Every parameter of the seed's
  table can be set; unset ones take DEAP's defaults, and the values the
  strategy really uses are read back from it and recorded (``resolved``).
* ``SizeLimitedOptimizer`` wraps ``deap.cma.StrategyMultiObjective``. An
  individual further than ``limit + error`` (L2) from the original weights is
  rendered at its closest point inside the limit (the sphere of radius
  ``limit``) and pays ``weight * (distance - limit)`` on both objectives, in
  the manner of DEAP's ``ClosestValidPenalty``.

Why the original multi-objective run crashed: it gave the MO strategy a
single-objective fitness (the size penalty folded into the loss). DEAP's
``sortLogNondominated`` splits fronts by recursing over objective indices
down to a two-objective sweep, so it assumes at least two objectives; with one
it indexes objective -1, then -2, and raises ``IndexError`` as soon as there
are four or more distinct fitness values. The fix here is a real second
objective: the distance from the original weights (plus the same penalty).

Both strategies draw from NumPy's global random state, as DEAP does. Each run
owns its own state (``RunRandom``): it is swapped in around every DEAP call and
the host's state is put back afterwards, so the host never sees a change.

DEAP's ``creator`` is not used at all: its classes are process-global and
re-creating them warns. The fitness and individual classes below are plain
module-level classes, safe for any number of runs in one process and picklable
for checkpoints.
"""
from __future__ import annotations

import logging
import math
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Iterator, Optional, Sequence

import numpy as np
from deap import base, cma

from .config import ConfigError, PinningConfig

log = logging.getLogger(__name__)

SO_ONLY_PARAMS = ("weights", "cs", "damps", "ccum", "ccov1", "ccovmu", "cmatrix")


MIN_GENERATIONS = 16  # the formula's value for 3 <= N <= 7: enough for CMA to adapt its step size


def default_generations(n: int) -> int:
    """``int(16 * floor(log N))``, at least MIN_GENERATIONS.

    The formula gives 0 for N <= 2, which left a single generation of about six
    evaluations: no search at all. Tiny prompts get the budget of small ones.
    """
    return max(MIN_GENERATIONS, int(16 * math.floor(math.log(max(n, 1)))))


def default_lambda(n: int) -> int:
    return int(4 + 3 * math.log(max(n, 1)))


def derive_cma_seed(seed: int, subseed: int) -> int:
    """A 32-bit CMA seed from the image seed and subseed (any ints, negative too)."""
    words = [int(seed) % 2**32, (int(seed) >> 32) % 2**32, int(subseed) % 2**32, (int(subseed) >> 32) % 2**32]
    return int(np.random.SeedSequence(words).generate_state(1)[0])


def auto(value: Any) -> bool:
    """Empty or zero means "use the default"."""
    if value is None:
        return True
    if isinstance(value, str):
        return value.strip() == ""
    if isinstance(value, np.ndarray):
        return value.size == 0
    if isinstance(value, (list, tuple)):
        return len(value) == 0
    return value == 0


class RunRandom:
    """A run's own NumPy global random state, swapped in only while DEAP runs."""

    def __init__(self, seed: int):
        self.state = np.random.RandomState(seed).get_state()

    @contextmanager
    def active(self) -> Iterator[None]:
        host = np.random.get_state()
        np.random.set_state(self.state)
        try:
            yield
        finally:
            self.state = np.random.get_state()
            np.random.set_state(host)


class LossFitness(base.Fitness):
    weights = (-1.0,)


class LossAndSizeFitness(base.Fitness):
    weights = (-1.0, -1.0)


class Candidate(list):
    """A point of the search (weight offsets) with a DEAP fitness."""

    fitness_class = LossFitness

    def __init__(self, values: Sequence[float] = ()):
        super().__init__(float(v) for v in values)
        self.fitness = self.fitness_class()


class SizedCandidate(Candidate):
    fitness_class = LossAndSizeFitness


@dataclass
class Distribution:
    """The search distribution at a moment of the run."""

    centroid: np.ndarray
    sigma: float
    covariance: np.ndarray

    @property
    def diag_std(self) -> np.ndarray:
        """Standard deviation along each coordinate: sigma * sqrt(diag(C))."""
        return self.sigma * np.sqrt(np.clip(np.diag(self.covariance), 0.0, None))

    @property
    def eigenvalues(self) -> np.ndarray:
        return np.sort(np.linalg.eigvalsh(self.covariance))

    @property
    def axis_ratio(self) -> float:
        ev = np.clip(self.eigenvalues, 0.0, None)
        return float(math.sqrt(ev[-1] / ev[0])) if ev[0] > 0 else float("inf")


def _check_cmatrix(value: Any, n: int) -> np.ndarray:
    try:
        matrix = np.array(value, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ConfigError("cmatrix", f"must be a {n}x{n} numeric matrix ({exc})") from None
    if matrix.shape != (n, n):
        raise ConfigError("cmatrix", f"must be {n}x{n} (one row per prompt unit), got shape {matrix.shape}")
    if not np.all(np.isfinite(matrix)) or not np.allclose(matrix, matrix.T):
        raise ConfigError("cmatrix", "must be finite and symmetric")
    if np.linalg.eigvalsh(matrix)[0] <= 0:
        raise ConfigError("cmatrix", "must be positive definite")
    return matrix


def _strategy_kwargs(config: PinningConfig, n: int) -> dict[str, Any]:
    """Only the parameters the user set; DEAP fills the rest."""
    kwargs: dict[str, Any] = {}
    for name in ("lambda_", "mu", "cs", "damps", "ccum", "ccov1", "ccovmu"):
        value = getattr(config, name)
        if not auto(value):
            kwargs[name] = value
    if not auto(config.weights):
        kwargs["weights"] = config.weights
    if not auto(config.cmatrix):
        kwargs["cmatrix"] = _check_cmatrix(config.cmatrix, n)
    lam = kwargs.get("lambda_", default_lambda(n))
    if kwargs.get("mu", 0) > lam:
        raise ConfigError("mu", f"must be <= lambda_ ({lam}), got {kwargs['mu']}")
    return kwargs


class CmaOptimizer:
    """Plain CMA-ES (``deap.cma.Strategy``) over the offsets."""

    multi_objective = False

    def __init__(self, config: PinningConfig, n: int, cma_seed: int):
        if n < 1:
            raise ConfigError("positive", "the prompt has no pinnable units (nothing to optimise)")
        self.n = n
        self.random = RunRandom(cma_seed)
        kwargs = _strategy_kwargs(config, n)
        with self.random.active():
            centroid = np.random.uniform(-config.initial_radius, config.initial_radius, n)
            self.strategy = cma.Strategy(centroid=centroid, sigma=config.initial_std, **kwargs)
        s = self.strategy
        self.resolved = {
            "strategy": "cma.Strategy",
            "initial_centroid": centroid.tolist(),
            "sigma": config.initial_std,
            "lambda_": s.lambda_, "mu": s.mu, "weights": s.params.get("weights", "superlinear"),
            "mueff": s.mueff, "cs": s.cs, "damps": s.damps, "ccum": s.cc,
            "ccov1": s.ccov1, "ccovmu": s.ccovmu,
            "cmatrix": "identity" if "cmatrix" not in kwargs else kwargs["cmatrix"].tolist(),
        }

    def population_size(self, generation: int) -> int:
        return self.strategy.lambda_

    def ask(self) -> list[Candidate]:
        with self.random.active():
            return self.strategy.generate(Candidate)

    def rendered(self, candidate: Candidate) -> tuple[np.ndarray, float]:
        """The offsets to render for this candidate and its penalty (always 0 here)."""
        return np.asarray(candidate, dtype=np.float64), 0.0

    def assign(self, candidate: Candidate, loss: float) -> None:
        candidate.fitness.values = (loss,)

    def tell(self, population: list[Candidate]) -> None:
        with self.random.active():
            self.strategy.update(list(population))

    def distribution(self) -> Distribution:
        s = self.strategy
        return Distribution(np.array(s.centroid, dtype=np.float64), float(s.sigma), np.array(s.C, dtype=np.float64))


class SizeLimitedOptimizer:
    """MO-CMA-ES (``deap.cma.StrategyMultiObjective``) on (loss, distance) with a size limit.

    Generation 1 evaluates ``mu`` parents drawn from U(-r, r)^N; each later
    generation evaluates ``lambda_`` offspring.
    """

    multi_objective = True

    def __init__(self, config: PinningConfig, n: int, cma_seed: int):
        if n < 1:
            raise ConfigError("positive", "the prompt has no pinnable units (nothing to optimise)")
        self.n = n
        self.random = RunRandom(cma_seed)
        self.limit = float(config.size_limit)
        self.error = self.limit / 100 if auto(config.size_limit_error) else float(config.size_limit_error)
        self.weight = self.limit * 10 if auto(config.size_limit_weight) else float(config.size_limit_weight)
        self.lambda_ = default_lambda(n) if auto(config.lambda_) else int(config.lambda_)
        self.mu = self.lambda_ if auto(config.mu) else int(config.mu)
        self.sigma = config.initial_std
        self.radius = config.initial_radius
        self.strategy: Optional[cma.StrategyMultiObjective] = None
        ignored = [name for name in SO_ONLY_PARAMS
                   if not auto(getattr(config, name)) and not (name == "weights" and config.weights == "superlinear")]
        if ignored:
            log.warning("size limiter on: %s apply to plain CMA only and are ignored", ", ".join(ignored))
        self.resolved = {
            "strategy": "cma.StrategyMultiObjective",
            "sigma": self.sigma, "mu": self.mu, "lambda_": self.lambda_,
            "size_limit": self.limit, "size_limit_error": self.error, "size_limit_weight": self.weight,
            "d": 1.0 + n / 2.0, "ptarg": 1.0 / 5.5, "cp": (1.0 / 5.5) / (2.0 + 1.0 / 5.5),
            "cc": 2.0 / (n + 2.0), "ccov": 2.0 / (n**2 + 6.0), "pthresh": 0.44,
            "ignored": ignored,
        }

    def population_size(self, generation: int) -> int:
        return self.mu if generation <= 1 else self.lambda_

    def ask(self) -> list[SizedCandidate]:
        with self.random.active():
            if self.strategy is None:
                points = np.random.uniform(-self.radius, self.radius, (self.mu, self.n))
                return [SizedCandidate(p) for p in points]
            return self.strategy.generate(SizedCandidate)

    def rendered(self, candidate: Candidate) -> tuple[np.ndarray, float]:
        """The closest point within the limit, and the penalty for being outside it."""
        x = np.asarray(candidate, dtype=np.float64)
        distance = float(np.linalg.norm(x))
        if distance <= self.limit + self.error:
            return x, 0.0
        return x * (self.limit / distance), self.weight * (distance - self.limit)

    def assign(self, candidate: Candidate, loss: float) -> None:
        offsets, penalty = self.rendered(candidate)
        candidate.fitness.values = (loss + penalty, float(np.linalg.norm(offsets)) + penalty)

    def tell(self, population: list[Candidate]) -> None:
        with self.random.active():
            if self.strategy is None:
                self.strategy = cma.StrategyMultiObjective(
                    list(population), sigma=self.sigma, mu=self.mu, lambda_=self.lambda_)
            else:
                self.strategy.update(list(population))

    def distribution(self) -> Distribution:
        """The local distribution of the parent with the lowest penalised loss."""
        if self.strategy is None:
            return Distribution(np.zeros(self.n), float(self.sigma), np.eye(self.n))
        s = self.strategy
        best = min(range(len(s.parents)), key=lambda i: s.parents[i].fitness.values[0])
        a = np.asarray(s.A[best], dtype=np.float64)
        return Distribution(np.asarray(s.parents[best], dtype=np.float64), float(s.sigmas[best]), a @ a.T)


def make_optimizer(config: PinningConfig, n: int, cma_seed: int) -> CmaOptimizer | SizeLimitedOptimizer:
    if config.size_limit and config.size_limit > 0:
        return SizeLimitedOptimizer(config, n, cma_seed)
    return CmaOptimizer(config, n, cma_seed)


def resolve_cma_seed(config: PinningConfig) -> int:
    if config.cma_seed is not None:
        return int(config.cma_seed) % 2**32
    return derive_cma_seed(config.generation.seed, config.generation.subseed)


def resolve_generations(config: PinningConfig, n: int) -> int:
    return default_generations(n) if auto(config.generations) else int(config.generations)

