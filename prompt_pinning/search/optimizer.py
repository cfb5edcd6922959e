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
module-level classes, safe for any number of runs in one process.

Checkpoints hold no pickled objects: ``state()`` gives an optimizer's whole
state as JSON scalars and NumPy arrays (the strategy's centroid, step sizes,
covariance, evolution paths, eigen decomposition, update count; for the
multi-objective strategy its parents with their fitness; and the run's random
state), and ``restore(scalars, arrays)`` sets it on a freshly built optimizer.
Both check what they read: a checkpoint is user input.
"""
from __future__ import annotations

import logging
import math
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Iterator, Optional, Sequence

import numpy as np
from deap import base, cma

from ..config import ConfigError, PinningConfig
from ..run.checks import is_finite, is_int
from ..options import (check_images_per_generation, default_generations, default_lambda,
                      default_mu, default_size_limit_error, default_size_limit_weight)
from ..options import is_auto as auto

log = logging.getLogger(__name__)

SO_ONLY_PARAMS = ("weights", "cs", "damps", "ccum", "ccov1", "ccovmu", "cmatrix")
# Largest magnitude of a cmatrix entry. The covariance is sigma^2 * cmatrix, so an
# entry of 1e4 already spreads offsets 100 x initial_std; beyond that weights run away.
CMATRIX_MAX_ABS = 1e4


def derive_cma_seed(seed: int, subseed: int) -> int:
    """A 32-bit CMA seed from the image seed and subseed (any ints, negative too)."""
    words = [int(seed) % 2**32, (int(seed) >> 32) % 2**32, int(subseed) % 2**32, (int(subseed) >> 32) % 2**32]
    return int(np.random.SeedSequence(words).generate_state(1)[0])


class StateError(ValueError):
    """Saved optimizer state that does not fit this run."""


class RunRandom:
    """A run's own NumPy global random state, swapped in only while DEAP runs."""

    def __init__(self, seed: int):
        self.state = np.random.RandomState(seed).get_state()

    def saved(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        kind, key, pos, has_gauss, cached = self.state
        return ({"kind": kind, "pos": int(pos), "has_gauss": int(has_gauss), "cached_gaussian": float(cached)},
                {"rng_key": np.asarray(key, dtype=np.uint32)})

    def restore(self, scalars: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        key = arrays["rng_key"]
        if scalars.get("kind") != "MT19937" or key.dtype != np.uint32 or key.shape != (624,):
            raise StateError("random state: expected MT19937 with a key of 624 uint32")
        pos, has_gauss, cached = scalars.get("pos"), scalars.get("has_gauss"), scalars.get("cached_gaussian")
        if not is_int(pos) or not 0 <= pos <= 624 or has_gauss not in (0, 1) or not is_finite(cached):
            raise StateError(f"random state: bad position {pos!r}, gauss flag {has_gauss!r} or cached value {cached!r}")
        self.state = ("MT19937", key.copy(), int(pos), int(has_gauss), float(cached))

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
    largest = float(np.max(np.abs(matrix)))
    if largest > CMATRIX_MAX_ABS:
        raise ConfigError("cmatrix", f"entries must lie within +-{CMATRIX_MAX_ABS:g} (the covariance is "
                          f"initial_std^2 x cmatrix), got an entry of magnitude {largest:g}")
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
    if "mu" not in kwargs and int(lam / 2) < 1:
        kwargs["mu"] = 1  # DEAP's int(lambda_ / 2) is 0 for lambda_ = 1: no parents, a division by zero
    if kwargs.get("mu", 0) > lam:
        raise ConfigError("mu", f"must be <= lambda_ ({lam}), got {kwargs['mu']}")
    check_images_per_generation(config.generation.batch_size, lam,
                                size=(config.generation.width, config.generation.height))
    return kwargs


class CmaOptimizer:
    """Plain CMA-ES (``deap.cma.Strategy``) over the offsets."""

    multi_objective = False

    def __init__(self, config: PinningConfig, n: int, cma_seed: int, start: Optional[Any] = None):
        if n < 1:
            raise ConfigError("positive", "the prompt has no pinnable units (nothing to optimise)")
        self.n = n
        self.random = RunRandom(cma_seed)
        kwargs = _strategy_kwargs(config, n)
        sigma = config.initial_std if start is None else start.sigma
        if start is not None and "cmatrix" not in kwargs:  # a cluster's own spread per unit
            kwargs["cmatrix"] = start.cmatrix
        with self.random.active():
            centroid = np.random.uniform(-config.initial_radius, config.initial_radius, n)
            if start is not None:  # start_from: a cluster of an earlier run (start_from.py)
                centroid = np.array(start.centroid, dtype=np.float64)
            self.strategy = cma.Strategy(centroid=centroid, sigma=sigma, **kwargs)
        s = self.strategy
        self.resolved = {
            "strategy": "cma.Strategy",
            "initial_centroid": centroid.tolist(),
            "sigma": sigma,
            **({"start_from": start.resolved()} if start is not None else {}),
            "lambda_": s.lambda_, "mu": s.mu, "weights": s.params.get("weights", "superlinear"),
            "mueff": s.mueff, "cs": s.cs, "damps": s.damps, "ccum": s.cc,
            "ccov1": s.ccov1, "ccovmu": s.ccovmu,
            "cmatrix": "identity" if "cmatrix" not in kwargs else kwargs["cmatrix"].tolist(),
        }

    def population_size(self, generation: int) -> int:
        return self.strategy.lambda_

    def population_runs(self, first: int, last: int) -> list[tuple[int, int]]:
        """(individuals, generations) for generations first..last, in O(1)."""
        return [(self.strategy.lambda_, last - first + 1)] if last >= first else []

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

    _VECTORS = ("centroid", "pc", "ps", "diagD")
    _MATRICES = ("C", "B")

    def state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """The strategy's and random state's whole state: JSON scalars and arrays."""
        s = self.strategy
        scalars, arrays = self.random.saved()
        scalars.update(sigma=float(s.sigma), update_count=int(s.update_count), cond=float(s.cond))
        for name in self._VECTORS + self._MATRICES:
            arrays[name] = np.asarray(getattr(s, name), dtype=np.float64)  # keeps its memory order
        return scalars, arrays

    def array_shapes(self, scalars: dict[str, Any]) -> dict[str, tuple[int, ...]]:
        n = self.n
        return {"rng_key": (624,), **{k: (n,) for k in self._VECTORS}, **{k: (n, n) for k in self._MATRICES}}

    def restore(self, scalars: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        """Set a saved state on this freshly built optimizer (same config and N)."""
        _check_arrays(arrays, self.array_shapes(scalars))
        sigma, count, cond = scalars.get("sigma"), scalars.get("update_count"), scalars.get("cond")
        if not is_finite(sigma) or sigma <= 0:
            raise StateError(f"sigma must be a finite number > 0, got {sigma!r}")
        if not is_int(count) or count < 0:
            raise StateError(f"update_count must be a whole number >= 0, got {count!r}")
        if not is_finite(cond):
            raise StateError(f"cond must be a finite number, got {cond!r}")
        self.random.restore(scalars, arrays)
        s = self.strategy
        for name in self._VECTORS + self._MATRICES:
            setattr(s, name, arrays[name])
        s.BD = s.B * s.diagD
        s.sigma, s.update_count, s.cond = float(sigma), int(count), float(cond)


class SizeLimitedOptimizer:
    """MO-CMA-ES (``deap.cma.StrategyMultiObjective``) on (loss, distance) with a size limit.

    Generation 1 evaluates ``mu`` parents drawn from U(-r, r)^N; each later
    generation evaluates ``lambda_`` offspring.
    """

    multi_objective = True

    def __init__(self, config: PinningConfig, n: int, cma_seed: int, start: Optional[Any] = None):
        if n < 1:
            raise ConfigError("positive", "the prompt has no pinnable units (nothing to optimise)")
        self.n = n
        self.random = RunRandom(cma_seed)
        self.start = start  # start_from: generation 1 is drawn around a cluster of an earlier run
        self.limit = float(config.size_limit)
        self.error = (default_size_limit_error(self.limit) if auto(config.size_limit_error)
                      else float(config.size_limit_error))
        self.weight = (default_size_limit_weight(self.limit) if auto(config.size_limit_weight)
                       else float(config.size_limit_weight))
        self.lambda_ = default_lambda(n) if auto(config.lambda_) else int(config.lambda_)
        self.mu = default_mu(self.lambda_, size_limited=True) if auto(config.mu) else int(config.mu)
        check_images_per_generation(config.generation.batch_size, max(self.lambda_, self.mu),
                                    "lambda_" if self.lambda_ >= self.mu else "mu",
                                    size=(config.generation.width, config.generation.height))
        self.sigma = config.initial_std if start is None else start.sigma
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
            **({"start_from": start.resolved()} if start is not None else {}),
        }

    def population_size(self, generation: int) -> int:
        return self.mu if generation <= 1 else self.lambda_

    def population_runs(self, first: int, last: int) -> list[tuple[int, int]]:
        """(individuals, generations) for generations first..last, in O(1)."""
        runs = [(self.mu, 1)] if first <= 1 <= last else []
        first = max(first, 2)
        return runs + ([(self.lambda_, last - first + 1)] if last >= first else [])

    def ask(self) -> list[SizedCandidate]:
        with self.random.active():
            if self.strategy is None:
                points = np.random.uniform(-self.radius, self.radius, (self.mu, self.n))
                if self.start is not None:
                    spread = self.start.sigma * np.sqrt(np.diag(self.start.cmatrix))
                    points = self.start.centroid + spread * np.random.standard_normal((self.mu, self.n))
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

    def state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """The strategy's and random state's whole state: JSON scalars and arrays.

        Each parent's matrices are kept as separate arrays, in their own memory
        order, so a restored strategy computes bit for bit what the saved one would.
        """
        scalars, arrays = self.random.saved()
        s = self.strategy
        if s is None:
            scalars["parents"] = None
            return scalars, arrays
        scalars.update(parents=len(s.parents), sigmas=[float(x) for x in s.sigmas],
                       psucc=[float(x) for x in s.psucc],
                       fitness=[[float(v) for v in p.fitness.values] for p in s.parents])
        arrays["parents"] = np.array([list(p) for p in s.parents], dtype=np.float64).reshape(len(s.parents), self.n)
        for i in range(len(s.parents)):
            arrays[f"A_{i}"] = np.asarray(s.A[i], dtype=np.float64)
            arrays[f"invCholesky_{i}"] = np.asarray(s.invCholesky[i], dtype=np.float64)
            arrays[f"pc_{i}"] = np.asarray(s.pc[i], dtype=np.float64)
        return scalars, arrays

    def array_shapes(self, scalars: dict[str, Any]) -> dict[str, tuple[int, ...]]:
        n, k = self.n, scalars.get("parents")
        shapes: dict[str, tuple[int, ...]] = {"rng_key": (624,)}
        if k is None:
            return shapes
        if not is_int(k) or not 1 <= k <= self.mu + self.lambda_:
            raise StateError(f"parents must be a whole number from 1 to {self.mu + self.lambda_}, got {k!r}")
        shapes["parents"] = (k, n)
        for i in range(k):
            shapes.update({f"A_{i}": (n, n), f"invCholesky_{i}": (n, n), f"pc_{i}": (n,)})
        return shapes

    def restore(self, scalars: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        """Set a saved state on this freshly built optimizer (same config and N)."""
        _check_arrays(arrays, self.array_shapes(scalars))
        k = scalars.get("parents")
        if k is not None:
            sigmas, psucc, fitness = scalars.get("sigmas"), scalars.get("psucc"), scalars.get("fitness")
            if not _finite_list(sigmas, k) or min(sigmas) <= 0:
                raise StateError(f"sigmas must be {k} finite numbers > 0")
            if not _finite_list(psucc, k):
                raise StateError(f"psucc must be {k} finite numbers")
            if not isinstance(fitness, list) or len(fitness) != k or not all(_finite_list(f, 2) for f in fitness):
                raise StateError(f"fitness must be {k} pairs of finite numbers")
        self.random.restore(scalars, arrays)
        if k is None:
            self.strategy = None
            return
        parents = []
        for row, values in zip(arrays["parents"], fitness):
            parent = SizedCandidate(row)
            parent.fitness.values = tuple(float(v) for v in values)
            parents.append(parent)
        s = cma.StrategyMultiObjective(parents, sigma=self.sigma, mu=self.mu, lambda_=self.lambda_)
        s.sigmas = [float(x) for x in sigmas]
        s.psucc = [float(x) for x in psucc]
        s.A = [arrays[f"A_{i}"] for i in range(k)]
        s.invCholesky = [arrays[f"invCholesky_{i}"] for i in range(k)]
        s.pc = [arrays[f"pc_{i}"] for i in range(k)]
        self.strategy = s

    def distribution(self) -> Distribution:
        """The local distribution of the parent with the lowest penalised loss."""
        if self.strategy is None:
            return Distribution(np.zeros(self.n), float(self.sigma), np.eye(self.n))
        s = self.strategy
        best = min(range(len(s.parents)), key=lambda i: s.parents[i].fitness.values[0])
        a = np.asarray(s.A[best], dtype=np.float64)
        return Distribution(np.asarray(s.parents[best], dtype=np.float64), float(s.sigmas[best]), a @ a.T)


def _finite_list(values: Any, length: int) -> bool:
    return isinstance(values, list) and len(values) == length and all(is_finite(v) for v in values)


def _check_arrays(arrays: dict[str, np.ndarray], shapes: dict[str, tuple[int, ...]]) -> None:
    if set(arrays) != set(shapes):
        raise StateError(f"arrays {sorted(arrays)} do not match the expected {sorted(shapes)}")
    for name, shape in shapes.items():
        array = arrays[name]
        if array.shape != shape:
            raise StateError(f"{name}: shape {array.shape}, expected {shape}")
        if name != "rng_key" and (array.dtype != np.float64 or not np.isfinite(array).all()):
            raise StateError(f"{name}: must hold finite float64 numbers")


def make_optimizer(config: PinningConfig, n: int, cma_seed: int,
                   start: Optional[Any] = None) -> CmaOptimizer | SizeLimitedOptimizer:
    """``start``: a ``start_from.StartPoint`` (centroid, sigma, covariance) instead of a random start."""
    if config.size_limit and config.size_limit > 0:
        return SizeLimitedOptimizer(config, n, cma_seed, start)
    return CmaOptimizer(config, n, cma_seed, start)


def resolve_cma_seed(config: PinningConfig) -> int:
    if config.cma_seed is not None:
        return int(config.cma_seed) % 2**32
    return derive_cma_seed(config.generation.seed, config.generation.subseed)


def resolve_generations(config: PinningConfig, n: int) -> int:
    return default_generations(n) if auto(config.generations) else int(config.generations)

