"""The guided Optuna sampler itself (the loop of :mod:`codesign.search.guided`'s docstring): its pool and
feature rows, the surrogate refit and the predictions over the pool (:class:`_Fit`), and the acquisition
of the next point by predicted hypervolume gain, weighted by the probability of meeting the constraints.

Private: import :class:`GuidedSampler` from :mod:`codesign.search.guided`.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import moocore
import numpy as np
import optuna
from optuna.distributions import BaseDistribution, CategoricalDistribution
from optuna.trial import FrozenTrial, TrialState
from scipy.special import ndtr

from codesign.core.errors import CodesignError
from codesign.search._guided_features import Featurize, Params, Pool, one_hot_featurize
from codesign.search.acquisition import best_improvement, epsilon_gap, expected_improvement
from codesign.search.surrogate import OutputWarp, Surrogate
from codesign.search.workers import trial_position


@dataclass(frozen=True)
class _Fit:
    """Surrogate predictions over the pool, valid until the next refit."""

    n_trained: int
    mean: np.ndarray  # (pool, objectives + constraints), the objectives' predictive medians in their units
    std: np.ndarray  # predictive standard deviations; warped units for objectives with a warp
    constraint_names: tuple[str, ...]
    warped_mean: np.ndarray  # (pool, objectives) in each objective's warped units
    warps: tuple[OutputWarp | None, ...]  # per objective; None: not learned (too few values)

    def draws(self, rows: np.ndarray, n_samples: int, rng: np.random.Generator) -> np.ndarray:
        """``(n_samples, len(rows), objectives)`` draws of the objectives from the predictive
        distribution (normal in warped units), in the objectives' units; the same normal deviates for
        every row (common random numbers)."""
        k = len(self.warps)
        eps = rng.standard_normal((n_samples, 1, k))
        warped = self.warped_mean[rows][None] + self.std[rows, :k][None] * eps
        out = np.empty_like(warped)
        for j, warp in enumerate(self.warps):
            out[..., j] = warp.inverse(warped[..., j]) if warp is not None else warped[..., j]
        return out


class GuidedSampler(optuna.samplers.BaseSampler):
    """Proposes the pool point with the largest predicted hypervolume gain (see the module docstring).

    ``featurize`` maps trial params to a feature row (default: one-hot of every categorical parameter of
    ``search_space``); ``pool`` draws the candidate param dicts (called once per sampler, with a generator
    seeded from ``seed``); ``search_space`` names the pool's distributions (default: inferred from the
    completed trials, so the first trials are sampled independently). The first ``n_startup_trials``
    completed trials are random unseen pool points; surrogates are refitted every ``batch_size`` completed
    trials; ``samples`` draws per candidate estimate the expected gain (0: the gain of the predicted
    median); ``warp`` turns the output warping of the objectives on. On NAS-Bench-201 at 300 look-ups
    (``experiments/benchmarks/search.py``) the defaults reached a median 0.987 of the true front's
    hypervolume over 10 seeds.
    """

    seeds_each_trial = True
    """Draws come from ``seed`` and the trial's position (:func:`codesign.search.workers.trial_position`), so
    the loop uses this sampler as it is (:func:`codesign.search.loop.seeded_sampler`)."""

    def __init__(
        self,
        *,
        pool: Pool,
        featurize: Featurize | None = None,
        search_space: Mapping[str, BaseDistribution] | None = None,
        n_startup_trials: int = 10,
        batch_size: int = 10,
        samples: int = 0,
        warp: bool = True,
        n_members: int = 3,
        n_estimators: int = 40,
        max_depth: int = 4,
        ridge: float = 1.0,
        seed: int = 0,
    ) -> None:
        if n_startup_trials < 1:
            raise CodesignError(f"guided sampler: n_startup_trials must be >= 1, got {n_startup_trials}")
        if batch_size < 1:
            raise CodesignError(f"guided sampler: batch_size must be >= 1, got {batch_size}")
        if not (isinstance(samples, int) and samples >= 0):
            raise CodesignError(f"guided sampler: samples must be an integer >= 0, got {samples!r}")
        if n_members < 1:
            raise CodesignError(f"guided sampler: n_members must be >= 1, got {n_members}")
        self.pool = pool
        self.featurize = featurize
        self.search_space = dict(search_space) if search_space is not None else None
        self.n_startup_trials = n_startup_trials
        self.batch_size = batch_size
        self.samples = samples
        self.warp = warp
        self.n_members = n_members
        self.n_estimators = n_estimators
        self.max_depth = max_depth
        self.ridge = ridge
        self.seed = seed
        self._salt = 0
        self._lock = threading.Lock()
        self._pool: list[dict[str, Any]] | None = None
        self._pool_keys: tuple[str, ...] = ()
        self._pool_index: dict[tuple[Any, ...], int] = {}
        self._features: np.ndarray | None = None
        self._fit: _Fit | None = None
        self._featurize_fn: Featurize | None = None
        self._position: tuple[int, int] = (-1, 0)
        """(trial number, its position) of the trial being sampled."""

    # -- Optuna's sampler interface -------------------------------------------------------------------

    def reseed_rng(self) -> None:
        """Called by Optuna for each extra thread of ``n_jobs > 1``: give it its own stream."""
        self._salt = int(np.random.SeedSequence().generate_state(1)[0])

    def infer_relative_search_space(self, study: optuna.Study, trial: FrozenTrial) -> dict[str, BaseDistribution]:
        if self.search_space is not None:
            return dict(self.search_space)
        space = optuna.search_space.IntersectionSearchSpace().calculate(study)
        return {k: d for k, d in space.items() if isinstance(d, CategoricalDistribution)}

    def sample_relative(self, study: optuna.Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]) -> dict[str, Any]:
        if not search_space:
            return {}
        with self._lock:
            pool = self._ensure_pool(search_space)
            keys = self._pool_keys
            if any(k not in search_space for k in keys):
                return {}
            trials = study.get_trials(deepcopy=False)
            self._position = (trial.number, trial_position(trials, trial.number))
            rng = self._rng(self._position[1], "relative")
            taken = self._taken(trials, trial.number)
            unseen = np.flatnonzero(~taken)
            if unseen.size == 0:
                return self._random_unseen(search_space, trials, rng)
            completed = [t for t in trials if t.state == TrialState.COMPLETE and t.values is not None and all(k in t.params for k in keys)]
            if len(completed) < self.n_startup_trials:
                choice = int(rng.choice(unseen))
            else:
                choice = self._acquire(study, completed, trials, trial.number, unseen, rng)
            return {k: pool[choice][k] for k in keys}

    def sample_independent(self, study: optuna.Study, trial: FrozenTrial, param_name: str, param_distribution: BaseDistribution) -> Any:
        if self._position[0] != trial.number:  # one look at the study per trial, not per parameter
            self._position = (trial.number, trial_position(study.get_trials(deepcopy=False), trial.number))
        seed = int(self._rng(self._position[1], "independent", param_name).integers(2**31 - 1))
        return optuna.samplers.RandomSampler(seed=seed).sample_independent(study, trial, param_name, param_distribution)

    # -- internals ------------------------------------------------------------------------------------

    def _rng(self, number: int, *parts: str) -> np.random.Generator:
        words = [self.seed, self._salt, number, *(sum(ord(c) * 131**i for i, c in enumerate(p)) % (2**32) for p in parts)]
        return np.random.default_rng(words)

    def _ensure_pool(self, search_space: Mapping[str, BaseDistribution]) -> list[dict[str, Any]]:
        if self._pool is None:
            drawn = [dict(p) for p in self.pool(np.random.default_rng([self.seed, 7919]))]
            if not drawn:
                raise CodesignError("guided sampler: the candidate pool is empty")
            keys = tuple(sorted(drawn[0]))
            index: dict[tuple[Any, ...], int] = {}
            pool: list[dict[str, Any]] = []
            for p in drawn:
                key = tuple(p.get(k) for k in keys)
                if key not in index:  # a random pool may repeat a point; keep it once
                    index[key] = len(pool)
                    pool.append(p)
            featurize = self.featurize
            if featurize is None:
                categorical = {k: d for k, d in search_space.items() if isinstance(d, CategoricalDistribution)}
                featurize = one_hot_featurize({k: categorical[k] for k in keys if k in categorical})
            self._featurize_fn = featurize
            self._features = np.vstack([np.asarray(featurize(p), dtype=float).ravel() for p in pool])
            self._pool, self._pool_keys, self._pool_index = pool, keys, index
        return self._pool

    def _pool_position(self, params: Params) -> int | None:
        return self._pool_index.get(tuple(params.get(k) for k in self._pool_keys))

    def _row(self, params: Params) -> np.ndarray:
        """Feature row of a trial's params (looked up when the point is in the pool)."""
        assert self._features is not None and self._featurize_fn is not None
        position = self._pool_position(params)
        if position is not None:
            return self._features[position]
        return np.asarray(self._featurize_fn({k: params[k] for k in self._pool_keys}), dtype=float).ravel()

    def _taken(self, trials: Sequence[FrozenTrial], current: int) -> np.ndarray:
        assert self._pool is not None
        taken = np.zeros(len(self._pool), dtype=bool)
        for t in trials:
            if t.number == current or t.state == TrialState.WAITING:
                continue
            position = self._pool_position(t.params)
            if position is not None:
                taken[position] = True
        return taken

    def _random_unseen(self, search_space: Mapping[str, BaseDistribution], trials: Sequence[FrozenTrial], rng: np.random.Generator) -> dict[str, Any]:
        """The pool is used up: a random point of the search space not evaluated yet (bounded tries)."""
        keys = self._pool_keys
        seen = {tuple(t.params.get(k) for k in keys) for t in trials}
        params: dict[str, Any] = {}
        for _ in range(1000):
            params = {}
            for k in keys:
                dist = search_space[k]
                if not isinstance(dist, CategoricalDistribution):
                    return {}
                params[k] = dist.choices[int(rng.integers(len(dist.choices)))]
            if tuple(params[k] for k in keys) not in seen:
                return params
        return params

    def _refit(self, study: optuna.Study, completed: Sequence[FrozenTrial]) -> _Fit:
        assert self._features is not None
        assert self._featurize_fn is not None
        X = np.vstack([self._row(t.params) for t in completed])
        names = tuple(sorted({name for t in completed for name in t.constraints}))
        for t in completed:  # a missing constraint value is never read as feasible
            missing = [name for name in names if name not in t.constraints]
            if missing:
                raise CodesignError(
                    f"guided sampler: trial {t.number} has no value for constraint(s) {', '.join(missing)} that "
                    "other trials of the study have; the study mixes constraint sets"
                )
        targets = [np.asarray([t.values[j] for t in completed], dtype=float) for j in range(len(study.directions))]
        targets += [np.asarray([t.constraints[name] for t in completed], dtype=float) for name in names]
        k = len(study.directions)
        means: list[np.ndarray] = []
        stds: list[np.ndarray] = []
        warped_means: list[np.ndarray] = []
        warps: list[OutputWarp | None] = []
        for j, y in enumerate(targets):
            ok = np.isfinite(y)
            if ok.sum() < 3:
                # too few finite values to learn from: an uninformative, very uncertain guess
                fill = float(np.nanmax(np.where(ok, y, np.nan))) if ok.any() else 0.0
                means.append(np.full(len(self._features), fill))
                stds.append(np.full(len(self._features), 1e6))
                if j < k:
                    warped_means.append(means[-1])
                    warps.append(None)
                continue
            warp = OutputWarp.fit(y[ok]) if j < k and self.warp else None
            surrogate = Surrogate(
                n_members=self.n_members, n_estimators=self.n_estimators, max_depth=self.max_depth,
                ridge=self.ridge, seed=(self.seed * 1_000_003 + len(completed) * 101 + j) % (2**31),
            ).fit(X[ok], warp.transform(y[ok]) if warp is not None else y[ok])  # fmt: skip
            mean, std = surrogate.predict(self._features)
            if j < k:
                warped_means.append(mean)
                warps.append(warp)
            means.append(warp.inverse(mean) if warp is not None else mean)
            stds.append(std)
        return _Fit(len(completed), np.column_stack(means), np.column_stack(stds), names, np.column_stack(warped_means), tuple(warps))

    def _acquire(
        self,
        study: optuna.Study,
        completed: Sequence[FrozenTrial],
        trials: Sequence[FrozenTrial],
        current: int,
        unseen: np.ndarray,
        rng: np.random.Generator,
    ) -> int:
        fit = self._fit
        if fit is None or len(completed) >= fit.n_trained + self.batch_size or len(completed) < fit.n_trained:
            fit = self._fit = self._refit(study, completed)
        sign = np.array([1.0 if d == optuna.study.StudyDirection.MINIMIZE else -1.0 for d in study.directions])
        k = sign.size
        measured = np.asarray([t.values for t in completed], dtype=float) * sign
        feasible = np.asarray([all(v <= 0 for v in t.constraints.values()) for t in completed])
        measured_ok = measured[feasible & np.all(np.isfinite(measured), axis=1)]
        positions = [self._pool_position(t.params) for t in trials if t.state == TrialState.RUNNING and t.number != current]
        believed = [fit.mean[p, :k] * sign for p in positions if p is not None]
        front = np.vstack([measured_ok, *believed]) if believed else measured_ok
        front = front[moocore.is_nondominated(front)] if len(front) else front.reshape(0, k)
        scale = self._scale(measured)
        predicted = fit.mean[unseen, :k] * sign
        p_feasible = self._feasibility(fit, unseen)
        if not len(front):
            gain = np.zeros(unseen.size)
        else:
            reference = self._reference(front, predicted[p_feasible >= 0.5], scale)
            if self.samples:
                draws = fit.draws(unseen, self.samples, rng) * sign
                gain = expected_improvement(draws / scale, front / scale, reference / scale, p_feasible)
            else:
                gain = best_improvement(predicted / scale, front / scale, reference / scale, p_feasible)
        if np.any(gain > 0):
            score = gain
        else:
            likely = p_feasible >= 0.5 * p_feasible.max() if p_feasible.max() > 0 else np.ones(unseen.size, dtype=bool)
            score = np.where(likely, -epsilon_gap(predicted / scale, front / scale), -np.inf)
        best = np.flatnonzero(score >= score.max() - 1e-12 * max(1.0, abs(float(score.max()))))
        return int(unseen[int(rng.choice(best))])

    @staticmethod
    def _reference(front: np.ndarray, predicted: np.ndarray, scale: np.ndarray) -> np.ndarray:
        """The nadir of the front that the measured and predicted points make together, plus 10% of each
        objective's measured range: a point that would extend the front beyond its measured extremes (a
        more accurate, slower network) gains hypervolume too."""
        points = np.vstack([front, predicted[np.all(np.isfinite(predicted), axis=1)]])
        return points[moocore.is_nondominated(points)].max(axis=0) + 0.1 * scale

    @staticmethod
    def _scale(measured: np.ndarray) -> np.ndarray:
        finite = measured[np.all(np.isfinite(measured), axis=1)]
        if len(finite) < 2:
            return np.ones(measured.shape[1])
        span = finite.max(axis=0) - finite.min(axis=0)
        return np.where(span > 0, span, 1.0)

    @staticmethod
    def _feasibility(fit: _Fit, rows: np.ndarray) -> np.ndarray:
        """Probability that every constraint holds (<= 0) under a normal predictive distribution."""
        p = np.ones(rows.size)
        k = fit.mean.shape[1] - len(fit.constraint_names)
        for j in range(k, fit.mean.shape[1]):
            mean, std = fit.mean[rows, j], fit.std[rows, j]
            z = -mean / np.maximum(std, 1e-9)
            p *= np.where(std > 1e-9, ndtr(z), (mean <= 1e-9).astype(float))
        return p
