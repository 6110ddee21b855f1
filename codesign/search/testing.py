"""The conformance suite every search strategy runs.

A new strategy gets the whole suite by subclassing one class in a test module and overriding the
``strategy`` fixture::

    from codesign.search.testing import StrategyConformance

    class TestMyStrategy(StrategyConformance):
        @pytest.fixture
        def strategy(self):
            return MyStrategy()

It runs the strategy for real through the product's search loop (the path ``codesign run`` takes) on a
small experiment, by default a few MBConv candidates trained on scikit-learn's digits and costed on the
overlay template (override ``experiment`` for another problem). Checks: the
:class:`~codesign.search.strategies.Strategy` contract, an unknown option rejected at construction, a
seeded run repeated exactly, every trial completed with a candidate of the problem's space, and a
resumed run that keeps the trials it had and adds new ones.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import optuna
import pytest
from optuna.trial import TrialState

from codesign.config import ExperimentConfig, config_from_mapping
from codesign.core.errors import CodesignError
from codesign.core.values import Candidate
from codesign.search.build import build_problem
from codesign.search.loop import prepare_study, run_trials
from codesign.search.storage import ATTR_CANDIDATE
from codesign.search.strategies import Strategy

TRIALS = 4


def run_strategy(strategy: Strategy, config: ExperimentConfig, out_dir: Path, trials: int) -> optuna.Study:
    """Search with ``strategy`` until the study in ``out_dir`` holds ``trials`` completed trials."""
    problem = build_problem(config)
    prepared = prepare_study(
        config, storage=None, out_dir=out_dir, make_sampler=lambda seed: strategy.sampler(problem, seed)
    )
    evaluate = strategy.evaluator(problem, cache_dir=config.resolve(config.accuracy.cache_dir))
    run_trials(config, prepared.study, evaluate, lock=prepared.lock, target=trials)
    return prepared.study


def _trace(study: optuna.Study) -> list[tuple[int, dict[str, Any], tuple[float, ...]]]:
    return [
        (t.number, dict(t.params), tuple(t.values))
        for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    ]


class StrategyConformance:
    """Subclass in a test module; override the ``strategy`` fixture (and ``experiment``)."""

    @pytest.fixture
    def strategy(self) -> Strategy:
        raise NotImplementedError("override the strategy fixture")

    @pytest.fixture
    def experiment(self, strategy: Strategy, tmp_path: Path) -> ExperimentConfig:
        return self.make_experiment(strategy, tmp_path)

    def make_experiment(self, strategy: Strategy, tmp_path: Path) -> ExperimentConfig:
        """The default problem: a few small MBConv candidates on digits, costed on the overlay template."""
        return config_from_mapping(
            {
                "name": f"conformance-{type(strategy).__name__.lower()}",
                "space": {
                    "architecture": "mbconv_digits",
                    "weight_bits": [4, 8],
                    "act_bits": [8],
                    "options": {"depths": [1], "expansions": [1, 2]},
                },
                "hardware": {"model": "overlay", "device": "xczu3eg", "clock_mhz": 200},
                "accuracy": {"method": "scratch", "dataset": "digits", "epochs": 1, "cache_dir": str(tmp_path / "cache")},
                "objectives": {"accuracy": "maximize", "latency_ms": "minimize"},
                "strategy": {"name": strategy.name or "custom"},
                "budget": {"trials": TRIALS, "seed": 0},
            }
        )

    def test_is_a_strategy(self, strategy: Strategy) -> None:
        assert isinstance(strategy, Strategy), "subclass codesign.search.strategies.Strategy"
        assert isinstance(strategy.name, str) and strategy.name

    def test_unknown_option_is_rejected(self, strategy: Strategy) -> None:
        with pytest.raises(CodesignError, match="no_such_option"):
            type(strategy)(no_such_option=1)

    def test_same_seed_same_search(self, strategy: Strategy, experiment: ExperimentConfig, tmp_path: Path) -> None:
        first = _trace(run_strategy(strategy, experiment, tmp_path / "a", TRIALS))
        second = _trace(run_strategy(strategy, experiment, tmp_path / "b", TRIALS))
        assert first == second
        assert len(first) == TRIALS

    def test_trials_are_candidates_of_the_space(
        self, strategy: Strategy, experiment: ExperimentConfig, tmp_path: Path
    ) -> None:
        study = run_strategy(strategy, experiment, tmp_path / "run", TRIALS)
        problem = build_problem(experiment)
        trials = study.get_trials(deepcopy=False)
        assert [t.state for t in trials] == [TrialState.COMPLETE] * TRIALS, [t.user_attrs for t in trials]
        for trial in trials:
            candidate = Candidate.from_dict(trial.user_attrs[ATTR_CANDIDATE])
            assert candidate.space == problem.space.name
            problem.space.from_id(candidate.arch_id)  # raises for an id outside the space

    def test_resume_keeps_and_adds_trials(self, strategy: Strategy, experiment: ExperimentConfig, tmp_path: Path) -> None:
        out = tmp_path / "resume"
        before = _trace(run_strategy(strategy, experiment, out, 2))
        after = _trace(run_strategy(strategy, experiment, out, TRIALS))
        assert after[: len(before)] == before
        assert [n for n, _, _ in after] == list(range(TRIALS))
