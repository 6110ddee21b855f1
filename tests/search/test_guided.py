"""The predictor-guided sampler: exact hypervolume gains, unseen proposals, determinism, resume, several
workers, constraints, and a clear win over random search on a seeded NAS-Bench-201 run."""

from __future__ import annotations

import itertools
import statistics

import moocore
import numpy as np
import optuna
import pytest
from optuna.distributions import CategoricalDistribution
from optuna.trial import TrialState

from codesign.core import pareto
from codesign.core.errors import CodesignError, ConfigError
from codesign.predictors.cells import CELL_PATHS, Cell, cell_features, cell_search_features
from codesign.search.acquisition import (
    best_improvement,
    epsilon_gap,
    expected_improvement,
    hypervolume_improvement,
)
from codesign.search.guided import GuidedSampler, guided_sampler_for

optuna.logging.set_verbosity(optuna.logging.WARNING)

LEVELS = tuple(range(6))
SPACE = {f"x{i}": CategoricalDistribution(list(LEVELS)) for i in range(3)}  # 216 points


def grid_pool(rng: np.random.Generator) -> list[dict[str, int]]:
    return [dict(zip(SPACE, p, strict=True)) for p in itertools.product(LEVELS, repeat=len(SPACE))]


def two_objectives(trial: optuna.Trial) -> tuple[float, float]:
    """A smooth trade-off: f1 falls and f2 rises with x0 + x1; x2 adds an interaction."""
    x = [trial.suggest_categorical(k, list(LEVELS)) for k in SPACE]
    s = x[0] + x[1]
    return float(10 - s + 0.3 * x[2] * (x[0] % 2)), float(s**1.5 / 3 + 0.5 * abs(x[2] - 2))


def sampler(seed: int = 0, **kwargs: object) -> GuidedSampler:
    options = {"n_startup_trials": 8, "batch_size": 2, "n_estimators": 10, "n_members": 3, **kwargs}
    return GuidedSampler(pool=grid_pool, search_space=SPACE, seed=seed, **options)  # type: ignore[arg-type]


def keys(study: optuna.Study) -> list[tuple[int, ...]]:
    return [tuple(t.params[k] for k in SPACE) for t in study.get_trials(deepcopy=False)]


def study_of(s: optuna.samplers.BaseSampler, n_objectives: int = 2) -> optuna.Study:
    return optuna.create_study(directions=["minimize"] * n_objectives, sampler=s)


@pytest.mark.parametrize("k", [2, 3])
def test_hypervolume_improvement_matches_recomputed_hypervolume(k: int) -> None:
    rng = np.random.default_rng(k)
    front = rng.random((12, k))
    front = front[moocore.is_nondominated(front)]
    points = rng.random((40, k)) * 1.1 - 0.05
    reference = np.full(k, 1.05)
    gains = hypervolume_improvement(points, front, reference)
    base = pareto.hypervolume(front, reference)
    expected = [pareto.hypervolume(np.vstack([front, p]), reference) - base for p in points]
    np.testing.assert_allclose(gains, expected, atol=1e-12)
    assert (gains > 0).any() and (gains == 0).any()


def test_shortlisted_gains_are_exact_and_keep_the_best_in_three_dimensions() -> None:
    rng = np.random.default_rng(11)
    front = rng.random((15, 3))
    front = front[moocore.is_nondominated(front)]
    points = rng.random((300, 3))
    reference = np.full(3, 1.1)
    weights = rng.random(300)
    exact = hypervolume_improvement(points, front, reference) * weights
    short = best_improvement(points, front, reference, weights, shortlist=20)
    listed = short > 0
    np.testing.assert_allclose(short[listed], exact[listed], atol=1e-12)
    assert 0 < listed.sum() <= 40
    assert int(np.argmax(short)) == int(np.argmax(exact))


def test_expected_improvement_is_the_mean_gain_over_draws() -> None:
    rng = np.random.default_rng(5)
    front = np.array([[0.2, 0.8], [0.5, 0.5], [0.8, 0.2]])
    reference = np.array([1.0, 1.0])
    weights = np.array([1.0, 0.5, 1.0, 1.0])
    draws = rng.random((6, 4, 2))
    expected = np.mean([hypervolume_improvement(d, front, reference) * weights for d in draws], axis=0)
    np.testing.assert_allclose(expected_improvement(draws, front, reference, weights), expected, atol=1e-12)
    # a point certain to be dominated gains nothing; spread around the front it gains in expectation
    certain = np.tile(np.array([[0.6, 0.6]]), (6, 1, 1))
    assert expected_improvement(certain, front, reference, np.ones(1))[0] == 0.0
    spread = np.array([[[0.6, 0.6]], [[0.3, 0.3]]])
    assert expected_improvement(spread, front, reference, np.ones(1))[0] == pytest.approx(0.5 * 0.16)  # 0.49 of box less 0.33 covered


def test_reference_point_reaches_the_predicted_extremes() -> None:
    front = np.array([[0.0, 1.0], [1.0, 0.0]])
    scale = np.array([1.0, 2.0])
    # a predicted point that would extend the front (more accurate, slower) moves the reference out to it
    reference = GuidedSampler._reference(front, np.array([[-0.5, 3.0], [2.0, 2.0], [np.nan, 0.0]]), scale)
    np.testing.assert_allclose(reference, [1.1, 3.2])
    # dominated predictions do not
    np.testing.assert_allclose(GuidedSampler._reference(front, np.array([[2.0, 2.0]]), scale), [1.1, 1.2])


def test_cell_search_features_ignore_dead_operations_beyond_their_counts() -> None:
    # node 2 is never used: the op on edge 0->2 and on 1->2 is dead, so both cells compute the same function
    a = "|nor_conv_3x3~0|+|avg_pool_3x3~0|nor_conv_1x1~1|+|skip_connect~0|nor_conv_3x3~1|none~2|"
    b = "|nor_conv_3x3~0|+|nor_conv_3x3~0|skip_connect~1|+|skip_connect~0|nor_conv_3x3~1|none~2|"
    fa, fb = cell_search_features(a), cell_search_features(b)
    n_cell = cell_features([a]).shape[1]
    assert not np.array_equal(fa[:n_cell], fb[:n_cell])  # the op counts (latency) differ
    np.testing.assert_array_equal(fa[n_cell:], fb[n_cell:])  # live edges and paths agree
    assert fa[-len(CELL_PATHS) :].sum() == len(Cell.parse(a).paths()) == 2  # skip; conv3 -> conv3
    c = "|nor_conv_3x3~0|+|avg_pool_3x3~0|nor_conv_1x1~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|"
    assert cell_search_features(c)[-len(CELL_PATHS) :].sum() == 4  # node 2 now feeds the output: two more paths


def test_epsilon_gap_is_the_shift_that_removes_domination() -> None:
    front = np.array([[0.0, 1.0], [1.0, 0.0]])
    points = np.array([[0.5, 0.5], [1.5, 1.2], [2.0, 0.5]])
    np.testing.assert_allclose(epsilon_gap(points, front), [0.0, 0.5, 0.5])
    for p, gap in zip(points, epsilon_gap(points, front), strict=True):
        shifted = p - gap - 1e-9
        assert not np.any(np.all(front <= shifted, axis=1))


def test_proposes_only_unseen_points_until_the_space_is_used_up() -> None:
    study = study_of(sampler())
    study.optimize(two_objectives, n_trials=70)
    seen = keys(study)
    assert len(set(seen)) == len(seen) == 70


def test_exhausted_pool_still_proposes_every_point_once() -> None:
    small = {f"x{i}": CategoricalDistribution([0, 1, 2]) for i in range(2)}

    def pool(rng: np.random.Generator) -> list[dict[str, int]]:
        return [{"x0": a, "x1": b} for a in range(3) for b in range(3)]

    def f(trial: optuna.Trial) -> tuple[float, float]:
        a, b = (trial.suggest_categorical(k, [0, 1, 2]) for k in small)
        return float(a - b), float(b * b - a)

    study = study_of(GuidedSampler(pool=pool, search_space=small, n_startup_trials=3, n_estimators=5, seed=1))
    study.optimize(f, n_trials=10)
    params = [tuple(t.params.values()) for t in study.trials]
    assert len(set(params[:9])) == 9  # all nine, each once, before any repeat


@pytest.mark.parametrize("samples", [0, 4])
def test_same_seed_same_run_and_other_seed_other_run(samples: int) -> None:
    runs = []
    for seed in (3, 3, 4):
        study = study_of(sampler(seed, samples=samples))
        study.optimize(two_objectives, n_trials=24)
        runs.append(keys(study))
    assert runs[0] == runs[1]
    assert runs[0] != runs[2]


def test_resume_with_a_new_sampler_does_not_replay() -> None:
    storage = optuna.storages.InMemoryStorage()
    first = optuna.create_study(study_name="s", storage=storage, directions=["minimize"] * 2, sampler=sampler(5, n_startup_trials=30))
    first.optimize(two_objectives, n_trials=12)
    resumed = optuna.create_study(study_name="s", storage=storage, load_if_exists=True, directions=["minimize"] * 2, sampler=sampler(5, n_startup_trials=30))
    resumed.optimize(two_objectives, n_trials=12)
    seen = keys(resumed)
    assert len(seen) == 24 and len(set(seen)) == 24
    # the same seed in a fresh study would have drawn the first trials again
    fresh = study_of(sampler(5, n_startup_trials=30))
    fresh.optimize(two_objectives, n_trials=12)
    assert keys(fresh) == seen[:12]


def test_running_trials_are_taken() -> None:
    study = study_of(sampler(0, n_startup_trials=4))
    study.optimize(two_objectives, n_trials=10)
    pending = [study.ask(fixed_distributions=dict(SPACE)) for _ in range(5)]
    proposed = [tuple(t.params[k] for k in SPACE) for t in pending]
    assert len(set(proposed)) == 5
    assert not set(proposed) & set(keys(study)[:10])


@pytest.mark.parametrize("options", [{}, {"samples": 8}, {"warp": False}])
def test_guided_search_beats_random_on_a_synthetic_trade_off(options: dict[str, object]) -> None:
    def hv(study: optuna.Study) -> float:
        losses = np.asarray([t.values for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))])
        return pareto.hypervolume(losses[pareto.pareto_mask(losses)], [11.0, 12.0])

    guided, random = [], []
    for seed in range(3):
        g = study_of(sampler(seed, **options))
        g.optimize(two_objectives, n_trials=30)
        r = study_of(optuna.samplers.RandomSampler(seed=seed))
        r.optimize(two_objectives, n_trials=30)
        guided.append(hv(g))
        random.append(hv(r))
    assert statistics.median(guided) > statistics.median(random)


def test_constraints_steer_proposals_to_the_feasible_region() -> None:
    """Feasible only when x0 <= 2: after the random start, guided proposals are nearly all feasible."""

    def constrained(trial: optuna.Trial) -> tuple[float, float]:
        values = two_objectives(trial)
        trial.set_constraint("x0_limit", float(trial.params["x0"] - 2))
        return values

    study = study_of(sampler(2, n_startup_trials=10))
    study.optimize(constrained, n_trials=40)
    guided = [t for t in study.trials if t.number >= 10]
    feasible = sum(t.params["x0"] <= 2 for t in guided)
    assert feasible >= 0.8 * len(guided)  # random proposals are feasible half the time


def test_a_missing_constraint_value_is_an_error_not_feasible() -> None:
    """A trial without a constraint that the others have is never read as feasible."""

    def constrained(trial: optuna.Trial) -> tuple[float, float]:
        values = two_objectives(trial)
        if trial.number != 3:  # trial 3 lacks the constraint
            trial.set_constraint("x0_limit", float(trial.params["x0"] - 2))
        return values

    study = study_of(sampler(0, n_startup_trials=5))
    with pytest.raises(CodesignError, match="trial 3 has no value for constraint"):
        study.optimize(constrained, n_trials=8, catch=())


def test_bad_settings_are_named() -> None:
    with pytest.raises(CodesignError, match="batch_size"):
        GuidedSampler(pool=grid_pool, batch_size=0)
    with pytest.raises(CodesignError, match="samples must be an integer >= 0, got -1"):
        GuidedSampler(pool=grid_pool, samples=-1)


def test_factory_rejects_unknown_options() -> None:
    from search_spaces.nb201 import NB201Space

    class _Problem:
        space = NB201Space()

    with pytest.raises(ConfigError, match="colour"):
        guided_sampler_for(_Problem(), seed=0, options={"colour": 1})


def test_factory_on_a_macro_space_pools_architectures_and_leaves_other_decisions_independent() -> None:
    from codesign.search.problem import suggest_arch
    from search_spaces.registry import make_space

    class _Problem:
        space = make_space("mbconv_digits")

    problem = _Problem()
    s = guided_sampler_for(problem, seed=0, options={"pool_size": 40, "n_startup_trials": 4, "batch_size": 2, "n_estimators": 5})

    def objective(trial: optuna.Trial) -> tuple[float, float]:
        network = problem.space.network(suggest_arch(problem.space, trial))
        bits = trial.suggest_categorical("bits.w:first", [4, 8])
        return float(network.macs) * bits, -float(network.params)

    study = study_of(s)
    study.optimize(objective, n_trials=10)
    arch_keys = [tuple(v for k, v in sorted(t.params.items()) if k.startswith("arch.")) for t in study.trials]
    assert len(set(arch_keys)) == 10
    assert {t.params["bits.w:first"] for t in study.trials} == {4, 8}
    pool_keys = {tuple(p[k] for k in sorted(p)) for p in s._pool or []}
    assert set(arch_keys) <= pool_keys
