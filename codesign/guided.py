"""Predictor-guided active learning as an Optuna sampler: the outer loop of the ``hao`` strategy.

Every proposal is one step of a loop over a finite pool of candidate decisions (the whole space when it is
small, e.g. all 15,625 NAS-Bench-201 cells, else a few thousand random ones):

1. fit one surrogate per objective and per constraint on the completed trials (feature rows -> values);
   a surrogate is a bootstrap ensemble of a ridge model plus gradient-boosted trees on its residuals, so
   an additive quantity (latency as a sum of per-operation costs) is exact from a few dozen points while
   interactions (accuracy) are left to the trees; the spread of the members is the uncertainty;
2. predict every pool point that is neither completed nor running (mean and standard deviation);
3. pick the point whose estimate (``mean - exploration * std`` in minimised units, optimistic when
   ``exploration`` > 0) adds the most hypervolume to the measured front, weighted by its predicted
   probability of meeting every constraint;
   when no point would add any, pick the one closest to the front (smallest additive epsilon).

Running trials count as taken and enter the front with their predicted mean (a "kriging believer"), so
several workers do not propose the same point. Decisions outside the pool (e.g. bits chosen by a later
stage) are sampled independently at random. All draws come from generators seeded by ``seed`` and the
trial number: a run is reproducible and a resumed run (a new sampler on an existing study) draws anew.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import moocore
import numpy as np
import optuna
import xgboost as xgb
from optuna.distributions import BaseDistribution, CategoricalDistribution
from optuna.trial import FrozenTrial, TrialState
from scipy.special import ndtr

from codesign.errors import CodesignError

Params = Mapping[str, Any]
Featurize = Callable[[Params], np.ndarray]
Pool = Callable[[np.random.Generator], Sequence[Params]]


def one_hot_featurize(search_space: Mapping[str, CategoricalDistribution]) -> Featurize:
    """Trial params -> one-hot of every categorical parameter of ``search_space`` (missing values: zeros)."""
    names = sorted(search_space)
    offsets = np.cumsum([0] + [len(search_space[n].choices) for n in names])
    index = {n: {c: i for i, c in enumerate(search_space[n].choices)} for n in names}

    def featurize(params: Params) -> np.ndarray:
        row = np.zeros(int(offsets[-1]))
        for k, name in enumerate(names):
            position = index[name].get(params.get(name))
            if position is not None:
                row[offsets[k] + position] = 1.0
        return row

    return featurize


class Surrogate:
    """Bootstrap ensemble of ridge regression plus boosted trees on the ridge residuals.

    ``fit`` returns self; ``predict`` gives the members' mean and standard deviation (target units).
    Learned attributes: ``x_mean_``, ``x_scale_``, ``y_mean_``, ``y_scale_``, ``members_``.
    """

    def __init__(
        self,
        *,
        n_members: int = 4,
        n_estimators: int = 60,
        max_depth: int = 4,
        learning_rate: float = 0.15,
        ridge: float = 1.0,
        seed: int = 0,
    ) -> None:
        self.n_members = n_members
        self.n_estimators = n_estimators
        self.max_depth = max_depth
        self.learning_rate = learning_rate
        self.ridge = ridge
        self.seed = seed

    def fit(self, X: np.ndarray, y: np.ndarray) -> Surrogate:
        X, y = np.asarray(X, dtype=float), np.asarray(y, dtype=float).ravel()
        self.x_mean_ = X.mean(axis=0)
        std = X.std(axis=0)
        self.x_scale_ = np.where(std > 0, std, 1.0)
        self.y_mean_, self.y_scale_ = float(y.mean()), float(y.std() or 1.0)
        Xs, ys = (X - self.x_mean_) / self.x_scale_, (y - self.y_mean_) / self.y_scale_
        rng = np.random.default_rng(self.seed)
        members: list[tuple[np.ndarray, float, Any]] = []
        for m in range(self.n_members):
            rows = rng.integers(0, len(ys), len(ys)) if self.n_members > 1 else np.arange(len(ys))
            Xb, yb = Xs[rows], ys[rows]
            coef, bias = self._ridge(Xb, yb)
            residual = yb - Xb @ coef - bias
            trees = None
            if self.n_estimators > 0 and len(yb) >= 8 and float(np.std(residual)) > 1e-9:
                trees = xgb.XGBRegressor(
                    n_estimators=self.n_estimators, max_depth=self.max_depth, learning_rate=self.learning_rate,
                    subsample=0.8, colsample_bytree=0.8, min_child_weight=1.0, random_state=self.seed * 31 + m,
                    n_jobs=1, tree_method="hist",
                )  # fmt: skip
                trees.fit(Xb, residual)
            members.append((coef, bias, trees))
        self.members_ = members
        return self

    def _ridge(self, X: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, float]:
        x0, y0 = X.mean(axis=0), float(y.mean())
        Xc = X - x0
        gram = Xc.T @ Xc + self.ridge * np.eye(X.shape[1])
        coef = np.linalg.solve(gram, Xc.T @ (y - y0))
        return coef, y0 - float(x0 @ coef)

    def predict(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        Xs = (np.asarray(X, dtype=float) - self.x_mean_) / self.x_scale_
        preds = []
        for coef, bias, trees in self.members_:
            p = Xs @ coef + bias
            if trees is not None:
                p = p + trees.predict(Xs)
            preds.append(p)
        stack = np.stack(preds)
        return stack.mean(axis=0) * self.y_scale_ + self.y_mean_, stack.std(axis=0) * self.y_scale_


def hypervolume_improvement(points: np.ndarray, front: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Hypervolume each row of ``points`` (n, k; minimised) would add to ``front`` (m, k) on its own,
    bounded by ``reference``. Exact; vectorised in two dimensions."""
    points = np.asarray(points, dtype=float)
    n, k = points.shape
    out = np.zeros(n)
    inside = np.all(points < reference, axis=1)
    front = front[np.all(front < reference, axis=1)] if len(front) else front.reshape(0, k)
    if len(front):
        dominated = np.zeros(n, dtype=bool)
        for f in front:
            dominated |= np.all(f <= points, axis=1)
        inside &= ~dominated
    idx = np.flatnonzero(inside)
    if idx.size == 0:
        return out
    if len(front) == 0:
        out[idx] = np.prod(reference - points[idx], axis=1)
        return out
    if k == 2:
        front = front[moocore.is_nondominated(front)]
        front = front[np.argsort(front[:, 0])]
        # staircase: the area of the box [p, ref] minus the part the front already covers
        xs = np.concatenate([front[:, 0], [reference[0]]])
        ys = front[:, 1]
        p = points[idx]
        x_lo = np.maximum(xs[:-1][None, :], p[:, :1])
        x_hi = np.maximum(xs[1:][None, :], p[:, :1])
        heights = np.clip(reference[1] - np.maximum(ys[None, :], p[:, 1:2]), 0.0, None)
        covered = ((x_hi - x_lo) * heights).sum(axis=1)
        out[idx] = np.prod(reference - p, axis=1) - covered
        return np.clip(out, 0.0, None)
    base = float(moocore.hypervolume(front, ref=reference))
    for i in idx:
        out[i] = float(moocore.hypervolume(np.vstack([front, points[i]]), ref=reference)) - base
    return np.clip(out, 0.0, None)


def best_improvement(
    points: np.ndarray, front: np.ndarray, reference: np.ndarray, weights: np.ndarray, *, shortlist: int = 200
) -> np.ndarray:
    """``weights * hypervolume_improvement`` for the rows that can be the arg-max. Exact for every row in
    two dimensions; in more, exact only for a shortlist: the ``shortlist`` best rows by the summed
    two-dimensional gains over every pair of objectives (vectorised) and by the weighted volume of the box
    between the point and the reference (an upper bound); the other rows score 0."""
    k = points.shape[1]
    if k == 2 or len(front) == 0:
        return hypervolume_improvement(points, front, reference) * weights
    proxy = np.zeros(len(points))
    for a in range(k):
        for b in range(a + 1, k):
            cols = [a, b]
            proxy += hypervolume_improvement(points[:, cols], front[:, cols], reference[cols])
    bound = np.prod(np.clip(reference - points, 0.0, None), axis=1)
    rows = np.union1d(np.argsort(-proxy * weights, kind="stable")[:shortlist], np.argsort(-bound * weights, kind="stable")[:shortlist])
    rows = rows[(proxy[rows] > 0) | (bound[rows] > 0)]
    out = np.zeros(len(points))
    if rows.size:
        out[rows] = hypervolume_improvement(points[rows], front, reference) * weights[rows]
    return out


def epsilon_gap(points: np.ndarray, front: np.ndarray) -> np.ndarray:
    """The additive amount each row of ``points`` must improve in every objective to no longer be
    dominated by ``front`` (0 for non-dominated rows)."""
    if len(front) == 0:
        return np.zeros(len(points))
    gaps = np.full(len(points), -np.inf)
    for f in front:
        gaps = np.maximum(gaps, np.min(points - f[None, :], axis=1))
    return np.clip(gaps, 0.0, None)


@dataclass(frozen=True)
class _Fit:
    """Surrogate predictions over the pool, valid until the next refit."""

    n_trained: int
    mean: np.ndarray  # (pool, objectives + constraints)
    std: np.ndarray
    constraint_names: tuple[str, ...]


class GuidedSampler(optuna.samplers.BaseSampler):
    """Proposes the pool point with the largest optimistic hypervolume gain (see the module docstring).

    ``featurize`` maps trial params to a feature row (default: one-hot of every categorical parameter of
    ``search_space``); ``pool`` draws the candidate param dicts (called once per sampler, with a generator
    seeded from ``seed``); ``search_space`` names the pool's distributions (default: inferred from the
    completed trials, so the first trials are sampled independently). The first ``n_startup_trials``
    completed trials are random unseen pool points; surrogates are refitted every ``batch_size`` completed
    trials; ``exploration`` weighs the predicted standard deviation in the optimistic estimate (default 0,
    greedy on the mean: on NAS-Bench-201 at 300 look-ups it reached a median 0.978 of the true hypervolume
    against 0.973 at 0.5 and less at 1 and 2; the bootstrap ensembles already vary from refit to refit).
    """

    def __init__(
        self,
        *,
        pool: Pool,
        featurize: Featurize | None = None,
        search_space: Mapping[str, BaseDistribution] | None = None,
        n_startup_trials: int = 10,
        batch_size: int = 10,
        exploration: float = 0.0,
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
        if not (math.isfinite(exploration) and exploration >= 0):
            raise CodesignError(f"guided sampler: exploration must be a finite number >= 0, got {exploration}")
        if n_members < 1:
            raise CodesignError(f"guided sampler: n_members must be >= 1, got {n_members}")
        self.pool = pool
        self.featurize = featurize
        self.search_space = dict(search_space) if search_space is not None else None
        self.n_startup_trials = n_startup_trials
        self.batch_size = batch_size
        self.exploration = exploration
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
            rng = self._rng(trial.number, "relative")
            trials = study.get_trials(deepcopy=False)
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
        seed = int(self._rng(trial.number, "independent", param_name).integers(2**31 - 1))
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
        targets = [np.asarray([t.values[j] for t in completed], dtype=float) for j in range(len(study.directions))]
        targets += [np.asarray([t.constraints.get(name, 0.0) for t in completed], dtype=float) for name in names]
        means, stds = [], []
        for j, y in enumerate(targets):
            ok = np.isfinite(y)
            if ok.sum() < 3:
                # too few finite values to learn from: an uninformative, very uncertain guess
                fill = float(np.nanmax(np.where(ok, y, np.nan))) if ok.any() else 0.0
                means.append(np.full(len(self._features), fill))
                stds.append(np.full(len(self._features), 1e6))
                continue
            surrogate = Surrogate(
                n_members=self.n_members, n_estimators=self.n_estimators, max_depth=self.max_depth,
                ridge=self.ridge, seed=(self.seed * 1_000_003 + len(completed) * 101 + j) % (2**31),
            ).fit(X[ok], y[ok])  # fmt: skip
            mean, std = surrogate.predict(self._features)
            means.append(mean)
            stds.append(std)
        return _Fit(len(completed), np.column_stack(means), np.column_stack(stds), names)

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
        mean = fit.mean[unseen, :k] * sign
        optimistic = mean - self.exploration * fit.std[unseen, :k]
        p_feasible = self._feasibility(fit, unseen)
        if len(front):
            reference = front.max(axis=0) + 0.1 * scale
            gain = best_improvement(optimistic / scale, front / scale, reference / scale, p_feasible)
        else:
            gain = np.zeros(unseen.size)
        if np.any(gain > 0):
            score = gain
        else:
            likely = p_feasible >= 0.5 * p_feasible.max() if p_feasible.max() > 0 else np.ones(unseen.size, dtype=bool)
            score = np.where(likely, -epsilon_gap(optimistic / scale, front / scale), -np.inf)
        best = np.flatnonzero(score >= score.max() - 1e-12 * max(1.0, abs(float(score.max()))))
        return int(unseen[int(rng.choice(best))])

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




MAX_ENUMERATED_POOL = 20_000
"""Spaces with at most this many architectures are enumerated whole; larger ones get a random pool."""
OPTIONS = ("n_startup_trials", "batch_size", "exploration", "n_members", "n_estimators", "max_depth", "ridge", "pool_size")


def guided_sampler_for(problem: Any, *, seed: int, options: Mapping[str, Any]) -> GuidedSampler:
    """The ``hao`` outer sampler for a :class:`~codesign.problem.TableProblem` or
    :class:`~codesign.problem.CodesignProblem`.

    The pool covers the ``arch.*`` decisions: every architecture when the space has at most
    :data:`MAX_ENUMERATED_POOL`, else ``pool_size`` (default 2,000) random ones. Features: NAS-Bench-201
    cells get the graph features of :func:`codesign.predictors.cells.cell_features` (which include the
    one-hot of each edge); other spaces the one-hot of the decisions, the space's own encoding and the
    log MACs and parameters of the 8-bit network (a cheap prior for latency). ``bits.*`` and other
    decisions are left to independent random sampling. ``options`` are :data:`OPTIONS`.
    """
    from codesign.problem import ARCH_PREFIX

    unknown = sorted(set(options) - set(OPTIONS))
    if unknown:
        from codesign.errors import ConfigError

        raise ConfigError("strategy.options", f"unknown option(s) {', '.join(unknown)} for strategy 'hao'; known: {', '.join(OPTIONS)}")
    settings = dict(options)
    pool_size = int(settings.pop("pool_size", 2000))
    space = problem.space
    choices = {ARCH_PREFIX + k: list(v) for k, v in space.choices().items()}
    search_space: dict[str, BaseDistribution] = {k: CategoricalDistribution(v) for k, v in choices.items()}
    names = list(choices)
    size = math.prod(len(v) for v in choices.values())

    def pool(rng: np.random.Generator) -> list[dict[str, Any]]:
        if size <= MAX_ENUMERATED_POOL:
            grid = np.indices([len(choices[n]) for n in names]).reshape(len(names), -1).T
        else:
            grid = np.column_stack([rng.integers(len(choices[n]), size=pool_size) for n in names])
        return [{n: choices[n][int(i)] for n, i in zip(names, row, strict=True)} for row in grid]

    def arch_of(params: Params) -> Any:
        return space.from_choices({k.removeprefix(ARCH_PREFIX): v for k, v in params.items() if k.startswith(ARCH_PREFIX)})

    featurize: Featurize
    if getattr(space, "name", "") == "nb201":
        from codesign.predictors.cells import cell_features

        def featurize(params: Params) -> np.ndarray:
            return cell_features([space.arch_id(arch_of(params))])[0]
    else:
        one_hot = one_hot_featurize({k: CategoricalDistribution(v) for k, v in choices.items()})

        def featurize(params: Params) -> np.ndarray:
            arch = arch_of(params)
            network = space.network(arch)
            prior = [math.log1p(float(network.macs)), math.log1p(float(network.params))]
            return np.concatenate([one_hot(params), np.asarray(space.encode(arch), dtype=float).ravel(), prior])

    try:
        return GuidedSampler(pool=pool, featurize=featurize, search_space=search_space, seed=seed, **settings)
    except TypeError as exc:
        from codesign.errors import ConfigError

        raise ConfigError("strategy.options", f"not accepted by strategy 'hao': {exc}") from None
