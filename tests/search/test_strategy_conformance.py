"""The shipped strategy conformance suite, run on every registered built-in strategy, and shown to reject
broken ones."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import optuna
import pytest

from codesign.config import ExperimentConfig
from codesign.core.errors import CodesignError
from codesign.core.plugins import STRATEGIES, plugin_names
from codesign.search.problem import Problem
from codesign.search.strategies import RandomStrategy, Strategy, make_strategy
from codesign.search.testing import StrategyConformance

BUILTIN = ("hao", "random", "tpe", "nsga2", "gp")


def test_every_builtin_is_registered_through_the_entry_point_group() -> None:
    assert set(BUILTIN) <= set(plugin_names(STRATEGIES))


@pytest.mark.slow
class TestBuiltinStrategies(StrategyConformance):
    @pytest.fixture(params=BUILTIN)
    def strategy(self, request: pytest.FixtureRequest) -> Strategy:
        options: dict[str, Any] = {"sampler": {"n_startup_trials": 2}} if request.param == "hao" else {}
        return make_strategy(request.param, options)


class _Unseeded(RandomStrategy):
    """Breaks determinism: the sampler ignores the experiment's seed."""

    name = "unseeded"

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.calls = 0

    def sampler(self, problem: Problem, seed: int) -> optuna.samplers.BaseSampler:
        self.calls += 1
        return optuna.samplers.RandomSampler(seed=seed + 1000 * self.calls)


class _AcceptsAnything(Strategy):
    """Breaks option checking: swallows unknown options."""

    name = "lenient"

    def __init__(self, **options: Any) -> None:
        self.options = options

    def sampler(self, problem: Problem, seed: int) -> optuna.samplers.BaseSampler:
        return optuna.samplers.RandomSampler(seed=seed)


class _Crashing(RandomStrategy):
    """Breaks evaluation: every trial fails."""

    name = "crashing"

    def evaluator(self, problem: Problem, *, cache_dir: Path | None = None):  # type: ignore[no-untyped-def]
        def evaluate(trial: optuna.Trial):  # type: ignore[no-untyped-def]
            raise RuntimeError("broken evaluator")

        return evaluate


@pytest.mark.slow
def test_suite_rejects_broken_strategies(tmp_path: Path) -> None:
    suite = StrategyConformance()

    def experiment(strategy: Strategy, where: str) -> ExperimentConfig:
        return suite.make_experiment(strategy, tmp_path / where)

    unseeded = _Unseeded()
    with pytest.raises(AssertionError):
        suite.test_same_seed_same_search(unseeded, experiment(unseeded, "a"), tmp_path / "a")
    with pytest.raises(pytest.fail.Exception):
        suite.test_unknown_option_is_rejected(_AcceptsAnything())
    crashing = _Crashing()
    with pytest.raises(CodesignError, match="in a row failed"):
        suite.test_trials_are_candidates_of_the_space(crashing, experiment(crashing, "b"), tmp_path / "b")
    with pytest.raises(AssertionError, match="Strategy"):
        suite.test_is_a_strategy(object())  # type: ignore[arg-type]
