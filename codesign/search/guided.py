"""Predictor-guided active learning as an Optuna sampler: the outer loop of the ``hao`` strategy.

Every proposal is one step of a loop over a finite pool of candidate decisions (the whole space when it is
small, e.g. all 15,625 NAS-Bench-201 cells, else a few thousand random ones):

1. fit one surrogate per objective and per constraint on the completed trials (feature rows -> values;
   :class:`codesign.search.surrogate.Surrogate`, a bootstrap ensemble of ridge regression plus boosted trees on
   its residuals, so an additive quantity such as latency is exact from a few dozen points while
   interactions are left to the trees); each objective is first warped to a near-normal distribution
   (:class:`codesign.search.surrogate.OutputWarp`: accuracy is strongly skewed, a few good networks among many
   poor ones, and the trees fit the warped values better);
2. predict every pool point that is neither completed nor running (median and standard deviation);
3. score each by the hypervolume it would add to the measured front (:mod:`codesign.search.acquisition`),
   weighted by its predicted probability of meeting every constraint: with ``samples`` = 0 (the default)
   the gain of its predicted median, else the expected gain over ``samples`` draws from the predictive
   distribution (Monte-Carlo expected hypervolume improvement). The reference point is the nadir of the
   front that the measured points and the predicted pool make together, plus 10% of each objective's
   measured range, so a point that would extend the front beyond its measured extremes (a more accurate,
   slower network) gains too. Take the best; when no point would add any, the one closest to the front
   (smallest additive epsilon).

Running trials count as taken and enter the front with their predicted median (a "kriging believer"), so
several workers do not propose the same point. Decisions outside the pool (e.g. bits chosen by a later
stage) are sampled independently at random. All draws come from generators seeded by ``seed`` and the
trial's position (:func:`codesign.search.workers.trial_position`: its number, less the retries before it):
a run is reproducible, and a resumed run proposes what an uninterrupted one would.

This is the public module: the sampler (:class:`GuidedSampler`, in ``_guided_sampler``) and its default
featurizer (:func:`one_hot_featurize`, in ``_guided_features``) are re-exported here; the ``hao``
strategy's factory :func:`guided_sampler_for` and its options (:data:`OPTION_RULES`) are defined here.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from optuna.distributions import BaseDistribution, CategoricalDistribution

from codesign.config.options import OptionRule, check_options
from codesign.core.errors import CodesignError, ConfigError
from codesign.predictors.cells import cell_search_features
from codesign.search._guided_features import Featurize, Params, Pool, one_hot_featurize
from codesign.search._guided_sampler import GuidedSampler

__all__ = [
    "MAX_ENUMERATED_POOL",
    "OPTIONS",
    "OPTION_RULES",
    "Featurize",
    "GuidedSampler",
    "Params",
    "Pool",
    "check_sampler_options",
    "guided_sampler_for",
    "one_hot_featurize",
]


MAX_ENUMERATED_POOL = 20_000
"""Spaces with at most this many architectures are enumerated whole; larger ones get a random pool."""
OPTION_RULES: Mapping[str, OptionRule] = {
    "n_startup_trials": OptionRule("int", 1),
    "batch_size": OptionRule("int", 1),
    "samples": OptionRule("int", 0, 100_000),
    "warp": OptionRule("bool"),
    "n_members": OptionRule("int", 1, 1000),
    "n_estimators": OptionRule("int", 0, 100_000),
    "max_depth": OptionRule("int", 1, 64),
    "ridge": OptionRule("number", 1e-12),
    "pool_size": OptionRule("int", 1, 1_000_000),
}
"""What each option of the ``hao`` strategy's sampler (``strategy.options.sampler``) accepts."""
OPTIONS = tuple(OPTION_RULES)
SAMPLER_PATH = "strategy.options.sampler"


def check_sampler_options(options: Any) -> dict[str, Any]:
    """``options`` of :func:`guided_sampler_for` checked against :data:`OPTION_RULES`: a
    :class:`ConfigError` at ``strategy.options.sampler[.NAME]`` names a bad one."""
    return check_options(OPTION_RULES, options, path=SAMPLER_PATH, owner="the hao sampler")


def guided_sampler_for(
    problem: Any, *, seed: int, options: Mapping[str, Any], extra_choices: Mapping[str, Sequence[Any]] | None = None
) -> GuidedSampler:
    """The ``hao`` outer sampler for a :class:`~codesign.search.problem.TableProblem` or
    :class:`~codesign.search.problem.CodesignProblem`.

    The pool covers the ``arch.*`` decisions: every architecture when the space has at most
    :data:`MAX_ENUMERATED_POOL`, else ``pool_size`` (default 2,000) random ones. Features: NAS-Bench-201
    cells get :func:`codesign.predictors.cells.cell_search_features` (graph features, live-edge one-hot,
    path encoding); other spaces the one-hot of the decisions, the space's own encoding and the
    log MACs and parameters of the 8-bit network (a cheap prior for latency). ``bits.*`` and other
    decisions are left to independent random sampling, except those named in ``extra_choices`` (name ->
    values), which join the pool. ``options`` are :data:`OPTIONS`, checked by
    :func:`check_sampler_options`.
    """
    from codesign.search.problem import ARCH_PREFIX

    settings = check_sampler_options(options)
    pool_size = int(settings.pop("pool_size", 2000))
    space = problem.space
    choices = {ARCH_PREFIX + k: list(v) for k, v in space.choices().items()}
    choices.update({k: list(v) for k, v in (extra_choices or {}).items()})
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
    memo: dict[str, np.ndarray] = {}
    if getattr(space, "name", "") == "nb201":

        def featurize(params: Params) -> np.ndarray:
            arch_id = space.arch_id(arch_of(params))
            if arch_id not in memo:  # the pool is featurized again every round: memoised per sampler
                memo[arch_id] = cell_search_features(arch_id)
            return memo[arch_id].copy()
    else:
        one_hot = one_hot_featurize({k: CategoricalDistribution(v) for k, v in choices.items()})

        def featurize(params: Params) -> np.ndarray:
            arch = arch_of(params)
            network = space.network(arch)
            prior = [math.log1p(float(network.macs)), math.log1p(float(network.params))]
            return np.concatenate([one_hot(params), np.asarray(space.encode(arch), dtype=float).ravel(), prior])

    try:
        return GuidedSampler(pool=pool, featurize=featurize, search_space=search_space, seed=seed, **settings)
    except (TypeError, ValueError, CodesignError) as exc:
        raise ConfigError(SAMPLER_PATH, f"not accepted by the hao sampler: {exc}") from None
